"""DDP on CPU with gloo and 2 processes: the gathered losses, the MoCo queue, and a Lightning fit
equal their single-process counterparts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from contrast import distributed
from contrast.losses import DCLLoss, InfoNCE, NTXent, SupConLoss
from contrast.models import Queue
from tests.distributed.gloo import run_on_ranks

WORLD, B, D = 2, 6, 5
ROOT = Path(__file__).resolve().parents[2]


def _global_batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(WORLD * B, D, generator=g, dtype=torch.float64), torch.randn(
        WORLD * B, D, generator=g, dtype=torch.float64
    )


LABELS = torch.arange(WORLD * B) % 4  # class ids of the global batch (SupCon)


def _losses(rows=slice(None)):
    """name -> loss of (q, k) for the global batch's ``rows``."""
    supcon = SupConLoss(0.3)
    return {
        "nt_xent": NTXent(0.3),
        "info_nce": InfoNCE(0.2),
        "info_nce_symmetric": InfoNCE(0.2, symmetric=True),
        "sup_con": lambda q, k: supcon(q, k, LABELS[rows]),
        "dcl": DCLLoss(0.2),
        "dclw": DCLLoss(0.2, weighting="vmf"),
    }


def _worker(rank: int) -> dict:
    """Runs in one of the WORLD gloo processes."""
    q_all, k_all = _global_batch()
    results = {}
    for name, loss_fn in _losses(slice(rank * B, (rank + 1) * B)).items():
        q = q_all[rank * B : (rank + 1) * B].clone().requires_grad_()
        k = k_all[rank * B : (rank + 1) * B].clone().requires_grad_()
        loss = loss_fn(q, k)
        loss.backward()
        # What DDP does to parameter gradients: average over ranks.
        results[name] = (loss.detach(), q.grad / WORLD, k.grad / WORLD)
    queue = Queue(size=4 * WORLD * B, dim=D)
    torch.manual_seed(rank)  # different local keys per rank
    for _ in range(6):
        queue.push(distributed.gather_no_grad(torch.randn(B, D) + rank))
    results["queue"] = queue.bank.clone()
    # MoCo's shuffled BN: the global batch is permuted across ranks and put back.
    x = torch.arange(B * D, dtype=torch.float64).view(B, D) + 1000 * rank
    shuffled, permutation = distributed.batch_shuffle(x, torch.Generator().manual_seed(5))
    results["shuffle"] = (x, shuffled, distributed.batch_unshuffle(3 * shuffled + 1, permutation))
    results["pointer"] = int(queue.pointer)
    return results


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    return run_on_ranks(_worker, WORLD, tmp_path_factory.mktemp("ddp"))


def _rel(a, b):
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("name", ["nt_xent", "info_nce", "info_nce_symmetric", "sup_con", "dcl", "dclw"])
def test_gathered_loss_and_gradients_equal_the_single_process_ones(ranks, name):
    q_all, k_all = _global_batch()
    q, k = q_all.clone().requires_grad_(), k_all.clone().requires_grad_()
    loss = _losses()[name](q, k)
    loss.backward()
    # The global loss is the mean of the ranks' losses (equal shard sizes), and each rank's
    # DDP-averaged gradient equals the single-process gradient of its shard.
    mean_loss = sum(r[name][0] for r in ranks) / WORLD
    assert _rel(mean_loss, loss.detach()) < 1e-5
    for rank, result in enumerate(ranks):
        shard = slice(rank * B, (rank + 1) * B)
        assert _rel(result[name][1], q.grad[shard]) < 1e-5
        assert _rel(result[name][2], k.grad[shard]) < 1e-5


def test_moco_queue_is_identical_on_both_ranks_and_equals_the_single_process_queue(ranks):
    assert torch.equal(ranks[0]["queue"], ranks[1]["queue"])
    single = Queue(size=4 * WORLD * B, dim=D)
    generators = []
    for rank in range(WORLD):
        torch.manual_seed(rank)
        generators.append([torch.randn(B, D) + rank for _ in range(6)])
    for step in range(6):
        single.push(torch.cat([generators[rank][step] for rank in range(WORLD)]))
    assert torch.equal(single.bank, ranks[0]["queue"]) and int(single.pointer) == ranks[0]["pointer"]


def test_batch_shuffle_across_ranks_is_undone_exactly(ranks):
    originals = torch.cat([r["shuffle"][0] for r in ranks])  # (W·B, D), rank order
    shuffled = torch.cat([r["shuffle"][1] for r in ranks])
    for r in ranks:  # a row-wise function of the shuffled rows comes back to the row it belongs to
        x, _, back = r["shuffle"]
        assert torch.equal(back, 3 * x + 1)
    # Each rank received a slice of one permutation of the global batch, rows of the other rank among them.
    assert sorted(map(tuple, shuffled.tolist())) == sorted(map(tuple, originals.tolist()))
    assert not torch.equal(ranks[0]["shuffle"][1].sort(0).values, ranks[0]["shuffle"][0])


def _torchrun(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``args`` under ``torchrun --standalone --nproc_per_node 2``; fail with its stderr."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


@pytest.mark.parametrize("method", ["simclr", "moco_v2"])
def test_two_process_lightning_fit(method, tmp_path):
    _torchrun(str(ROOT / "tests/distributed/ddp_fit.py"), "--method", method, "--out", str(tmp_path), cwd=tmp_path)
    states = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    # Identical parameters on both ranks, and an identical MoCo queue. (BatchNorm running statistics
    # are per rank without SyncBatchNorm; DDP re-broadcasts rank 0's before every forward.)
    from contrast.methods import MoCoV2, SimCLR

    common = dict(backbone="tiny_cnn", num_classes=10, projector_hidden=64, projector_dim=32)
    model = SimCLR(**common) if method == "simclr" else MoCoV2(queue_size=128, **common)
    compared = [name for name, _ in model.named_parameters()] + (["queue.bank", "queue.pointer"] * (method != "simclr"))
    for name in compared:
        assert torch.equal(states[0][name], states[1][name]), name
    knn = [json.loads((tmp_path / f"knn{r}.json").read_text()) for r in range(2)]
    assert knn[0] == knn[1]
    # train/loss at the logged steps (every 2nd) is the mean of both ranks' losses, not rank 0's own.
    losses = [json.loads((tmp_path / f"loss{r}.json").read_text()) for r in range(2)]
    # lr 0.1 given for a global batch of 64 (lr_batch_size); the global batch is 16 × 2 ranks
    assert losses[0]["peak_lr"] == losses[1]["peak_lr"] == pytest.approx(0.1 * 32 / 64)
    if method == "simclr":
        logged_steps = [s for s in range(len(losses[0]["local"])) if (s + 1) % 2 == 0]
        assert logged_steps
        for s in logged_steps:
            mean = (losses[0]["local"][s] + losses[1]["local"][s]) / 2
            assert losses[0]["logged"][s] == pytest.approx(mean, rel=1e-6) == losses[1]["logged"][s]
            assert losses[0]["local"][s] != pytest.approx(mean, rel=1e-6)  # the ranks' losses differ
    # kNN under DDP (sharded extraction, gathered features) equals a single-process evaluation.
    from contrast.data import ContrastiveData
    from contrast.eval import KNNEvaluator, extract_features
    from contrast.models import build_backbone

    backbone = build_backbone("tiny_cnn")
    backbone.load_state_dict({k[9:]: v for k, v in states[0].items() if k.startswith("backbone.")})
    data = ContrastiveData(batch_size=16, train_subset=128, eval_subset=96, views="batched", seed=1)
    train = extract_features(backbone, data.eval_dataloader(True))
    test = extract_features(backbone, data.eval_dataloader(False))
    single = KNNEvaluator(k=20, temperature=0.1).fit(*train).score(*test)
    assert single["top1"] == pytest.approx(knn[0]["top1"]) and single["top5"] == pytest.approx(knn[0]["top5"])


def test_ddp_config_with_torchrun_and_the_cli(tmp_path):
    """The README's multi-process command line, on 2 CPU processes (SyncBatchNorm is GPU-only)."""
    proc = _torchrun(
        "-m",
        "contrast.cli",
        "fit",
        "--config",
        str(ROOT / "configs/quickstart.yaml"),
        "--config",
        str(ROOT / "configs/ddp.yaml"),
        "--trainer.accelerator",
        "cpu",
        "--trainer.devices",
        "2",
        "--trainer.sync_batchnorm",
        "false",
        "--trainer.max_steps",
        "2",
        "--trainer.limit_val_batches",
        "1",
        "--data.train_subset",
        "128",
        "--data.eval_subset",
        "64",
        "--data.batch_size",
        "16",
        "--trainer.default_root_dir",
        str(tmp_path),
        cwd=tmp_path,
    )
    assert "kNN accuracy" in proc.stdout


@pytest.mark.slow
def test_linear_evaluation_on_two_ranks_equals_one_process(tmp_path):
    """LinearEval under torchrun on 2 gloo ranks (16 images each) and in one process (32): the same
    samples in each global batch with the same views (seeded per sample), the gradients averaged over
    the ranks, the test counts summed over them; the head and the figures are the single process's."""
    import re

    from tests.methods.test_linear_eval import _export

    weights = _export(tmp_path / "export")
    common = [
        "fit",
        "--config",
        str(ROOT / "configs/linear_quickstart.yaml"),
        "--model.init_args.weights",
        str(weights),
        "--model.init_args.head_norm",
        "false",  # BatchNorm in the head would see each rank's half batch
        "--data.views",
        "cpu",
        "--data.train_subset",
        "128",
        "--data.eval_subset",
        "100",
        "--trainer.max_epochs",
        "2",
        "--trainer.check_val_every_n_epoch",
        "2",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.accelerator",
        "cpu",
        "--trainer.callbacks+",
        "tests.fit_callbacks.SaveWeights",
    ]
    two = _torchrun(
        "-m",
        "contrast.cli",
        *common,
        "--trainer.callbacks.path",
        str(tmp_path / "two.pt"),
        "--trainer.devices",
        "2",
        "--trainer.strategy",
        "ddp",
        "--data.batch_size",
        "16",
        "--run_dir",
        str(tmp_path / "two"),
        cwd=tmp_path,
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    one = subprocess.run(
        [
            sys.executable,
            "-m",
            "contrast.cli",
            *common,
            "--trainer.callbacks.path",
            str(tmp_path / "one.pt"),
            "--data.batch_size",
            "32",
            "--run_dir",
            str(tmp_path / "one"),
        ],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert one.returncode == 0, one.stderr[-3000:]
    heads = [torch.load(tmp_path / f"{name}.pt", weights_only=True)["state_dict"] for name in ("one", "two")]
    assert heads[0]["head.weight"].abs().sum() > 0
    for name in ("head.weight", "head.bias"):
        torch.testing.assert_close(heads[1][name], heads[0][name], rtol=1e-5, atol=1e-6)
    figures = [re.search(r"top-1 ([0-9.]+)%  top-5 ([0-9.]+)% on (\d+) test images", p.stdout) for p in (one, two)]
    assert figures[0] and figures[1], (one.stdout[-500:], two.stdout[-500:])
    assert figures[0].groups() == figures[1].groups() and figures[0].group(3) == "100"


@pytest.mark.slow
def test_torchrun_and_lightnings_own_launcher_train_the_same(tmp_path):
    """The two ways to start 2 processes give the same run: ``torchrun --nproc_per_node 2 contrast fit``
    (the multi-node launch, ranks from torchrun's environment) and ``contrast fit --trainer.devices 2``
    (Lightning starts the second process itself): the same weights bit for bit and the same logged loss."""
    common = [
        "-m",
        "contrast.cli",
        "fit",
        "--config",
        str(ROOT / "configs/quickstart.yaml"),
        "--trainer.accelerator",
        "cpu",
        "--trainer.devices",
        "2",
        "--trainer.strategy",
        "ddp",
        "--trainer.max_steps",
        "4",
        "--trainer.log_every_n_steps",
        "1",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.limit_val_batches",
        "0",
        "--trainer.callbacks",
        "[]",  # no kNN: the comparison is of training alone
        "--trainer.callbacks+",
        "tests.fit_callbacks.SaveWeights",
        "--data.train_subset",
        "128",
        "--data.batch_size",
        "16",
    ]
    _torchrun(*common, "--trainer.callbacks.path", str(tmp_path / "torchrun.pt"), "--run_dir", "torchrun", cwd=tmp_path)
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    own = subprocess.run(
        [sys.executable, *common, "--trainer.callbacks.path", str(tmp_path / "own.pt"), "--run_dir", "own"],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert own.returncode == 0, own.stderr[-3000:]
    runs = [torch.load(tmp_path / f"{name}.pt", weights_only=True) for name in ("torchrun", "own")]
    assert runs[0]["global_step"] == runs[1]["global_step"] == 4
    assert runs[0]["world_size"] == runs[1]["world_size"] == 2
    loss = [run["metrics"]["train/loss"] for run in runs]
    assert loss[0] == loss[1] and loss[0] > 0
    for name, value in runs[0]["state_dict"].items():
        assert torch.equal(value, runs[1]["state_dict"][name]), name
