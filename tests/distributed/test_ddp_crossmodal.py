"""CrossModal under DDP (2 gloo processes): W ranks × B pairs give the loss and gradients of one
process with W·B pairs, for the clip local loss, SigLIP with gathered texts, the gathered cross-modal
triplet and ACMR; and so do W ranks that encode their B pairs in micro-batches (``accumulate_pairs``)."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.distributed as dist

from contrast.methods import CrossModal
from tests.distributed.gloo import run_on_ranks

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
