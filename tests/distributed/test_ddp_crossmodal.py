"""CrossModal under DDP (2 gloo processes): W ranks × B pairs give the loss and gradients of one
process with W·B pairs, for the clip local loss, SigLIP with gathered texts, the gathered cross-modal
triplet and ACMR; and so do W ranks that encode their B pairs in micro-batches (``accumulate_pairs``)."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from contrast.methods import CrossModal
from tests.distributed.gloo import run_on_ranks

ROOT = Path(__file__).resolve().parents[2]
WORLD, B = 2, 6
OBJECTIVES = {
    "clip": {"clip": 1.0},
    "siglip": {"siglip": 1.0},
    "triplet": {"triplet": 1.0},
    "all": {"clip": 1.0, "siglip": 0.5, "triplet": 0.5, "acmr": 0.3},
}


def _model(objectives, accumulate_pairs=1) -> CrossModal:
    torch.manual_seed(0)
    model = CrossModal(
        backbone="none",
        embed_dim=8,
        head_hidden=16,
        objectives=objectives,
        image_dim=6,
        text_dim=5,
        num_classes=3,
        accumulate_pairs=accumulate_pairs,
    )
    return model.double()


def _global_batch():
    g = torch.Generator().manual_seed(1)
    images = torch.randn(WORLD * B, 6, generator=g, dtype=torch.float64)
    texts = torch.randn(WORLD * B, 5, generator=g, dtype=torch.float64)
    return images, texts, torch.arange(WORLD * B) % 3


def _step(model, batch):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log without a trainer
        loss = model.training_step(batch, 0)
    loss.backward()
    return loss.detach(), {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def _worker(rank: int) -> dict:
    """Runs in one of the WORLD gloo processes."""
    images, texts, labels = _global_batch()
    rows = slice(rank * B, (rank + 1) * B)
    results = {}
    for name, objectives in OBJECTIVES.items():
        for k in (1, 3):  # the whole local batch at once, and in 3 micro-batches (accumulate_pairs, GradCache)
            loss, grads = _step(_model(objectives, k), (images[rows], texts[rows], labels[rows]))
            dist.all_reduce(loss)
            for grad in grads.values():  # what DDP does to parameter gradients: the mean over ranks
                dist.all_reduce(grad)
                grad /= WORLD
            results[name, k] = (loss / WORLD, grads)
    return results


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    return run_on_ranks(_worker, WORLD, tmp_path_factory.mktemp("ddp_crossmodal"))


@pytest.mark.parametrize("k", [1, 3], ids=["whole", "accumulate_pairs=3"])
@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_two_ranks_equal_one_process_with_the_whole_batch(ranks, name, k):
    loss, grads = _step(_model(OBJECTIVES[name]), _global_batch())
    for rank in ranks:
        rank_loss, rank_grads = rank[name, k]
        if name != "triplet":  # the clip local loss and ACMR's classifiers: the mean of the ranks' losses
            assert rank_loss.item() == pytest.approx(loss.item(), abs=1e-12)
        assert set(rank_grads) == set(grads)
        for key, grad in grads.items():
            assert torch.allclose(rank_grads[key], grad, atol=1e-12), key


def _fit(tmp_path: Path, name: str, accumulate: int, ddp: bool) -> dict:
    """A short two-tower fit from the command line (2 processes under torchrun when ``ddp``); its final weights."""
    args = [
        "-m",
        "contrast.cli",
        "fit",
        "--config",
        str(ROOT / "configs/crossmodal_shapes.yaml"),
        "--model.init_args.freeze_image",
        "true",
        "--model.init_args.text_encoder",
        "transformer",
        "--model.init_args.accumulate_pairs",
        str(accumulate),
        "--model.init_args.optimizer",
        "sgd",  # Adam would blow the rounding noise of gradients that are 0 in exact arithmetic (attention's
        # key bias) up to a whole step: compare where the update follows the gradient
        "--data.train_size",
        "256",
        "--data.test_size",
        "32",
        "--data.batch_size",
        "32" if ddp else "64",  # per process: the global batch is 64 either way
        "--trainer.max_steps",
        "3",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.callbacks+",
        "tests.fit_callbacks.SaveWeights",
        "--trainer.callbacks.path",
        str(tmp_path / f"{name}.pt"),
        "--run_dir",
        name,
    ]
    if ddp:
        args += ["--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp"]
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]
    else:
        command = [sys.executable, *args]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return torch.load(tmp_path / f"{name}.pt", weights_only=True)["state_dict"]


@pytest.mark.slow  # four short fits, two under torchrun
def test_lightning_fits_with_accumulate_pairs_train_as_the_whole_batch_in_one_process_and_under_ddp(tmp_path):
    """Lightning zeroes the gradients before the step when accumulate_pairs > 1 (the micro-batches
    accumulate into .grad inside it); under DDP their backward passes stay local and the step's own
    backward synchronises them: three steps give the weights of the whole-batch run."""
    whole = _fit(tmp_path, "whole", 1, ddp=False)
    for name, accumulate, ddp in (("micro", 4, False), ("ddp_whole", 1, True), ("ddp_micro", 2, True)):
        weights = _fit(tmp_path, name, accumulate, ddp)
        assert weights.keys() == whole.keys()
        for key, value in whole.items():
            torch.testing.assert_close(weights[key], value, rtol=1e-4, atol=1e-5, msg=f"{name}: {key}")
