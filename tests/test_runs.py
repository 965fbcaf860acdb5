"""Runs a user can trust, tried as a user would: ``contrast ...`` in a subprocess.

Resume that resumes (``--ckpt_path last`` finds the run, SIGKILL mid-epoch then resume gives
bit-identical weights), checkpoints on SIGINT / SIGTERM, a checkpoint that must fit the config,
output where the user says, errors a person can read.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
QUICK = [
    "--config",
    str(ROOT / "configs/quickstart.yaml"),
    "--data.train_subset",
    "320",  # 10 steps of 32 per epoch
    "--data.eval_subset",
    "64",
    "--data.batch_size",
    "32",
    "--trainer.max_epochs",
    "3",
    "--trainer.enable_progress_bar",
    "false",
]
MOCO = ["--model", "contrast.methods.MoCoV2", "--model.init_args.queue_size", "128"]


def contrast(*args: str, cwd: Path, check: int | None = 0) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))  # the tests' callbacks (tests.fit_callbacks.*)
    result = subprocess.run(
        [sys.executable, "-m", "contrast.cli", *args], cwd=cwd, env=env, capture_output=True, text=True
    )
    if check is not None:
        assert result.returncode == check, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def callback(name: str, **init_args) -> list[str]:
    args = ["--trainer.callbacks+", f"tests.fit_callbacks.{name}"]
    for key, value in init_args.items():
        args += [f"--trainer.callbacks.{key}", str(value)]
    return args


def every(steps: int) -> list[str]:
    return [
        "--trainer.callbacks+",
        "contrast.checkpoint.LastCheckpoint",
        "--trainer.callbacks.every_n_steps",
        str(steps),
    ]


def assert_same_weights(a: Path, b: Path) -> None:
    first, second = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
    assert first["global_step"] == second["global_step"] == 30
    assert first["state_dict"].keys() == second["state_dict"].keys()
    for name, value in first["state_dict"].items():
        assert torch.equal(value, second["state_dict"][name]), name


@pytest.mark.parametrize(
    "method",
    [
        "simclr",
        pytest.param("moco_v2", marks=pytest.mark.slow),
        pytest.param("simclr_cpu_views", marks=pytest.mark.slow),
        pytest.param("simclr_packed_split_views", marks=pytest.mark.slow),
    ],
)
def test_sigkill_mid_epoch_then_ckpt_path_last_resumes_exactly(tmp_path, method):
    """Batched views seeded per step; per-sample views in 2 DataLoader workers seeded per sample;
    views cut from packed JPEGs (the split path) in 2 workers."""
    extra = QUICK + (MOCO if method == "moco_v2" else []) + every(4)
    if method == "simclr_cpu_views":
        extra += ["--data.views", "cpu", "--data.num_workers", "2"]
    if method == "simclr_packed_split_views":
        _shapes_pack(tmp_path / "packs")
        extra += [
            "--data.dataset",
            "packed",
            "--data.root",
            "packs",
            "--data.views",
            "split",
            "--data.num_workers",
            "2",
        ]
    straight = contrast(
        "fit", *extra, *callback("SaveWeights", path=tmp_path / "straight.pt"), "--run_dir", "straight", cwd=tmp_path
    )
    # Killed at step 14 (epoch 1, batch 4 of 10); the last checkpoint is step 12's, mid-epoch.
    killed = contrast("fit", *extra, *callback("KillAtStep", step=14), cwd=tmp_path, check=None)
    assert killed.returncode == -signal.SIGKILL
    run = tmp_path / "runs/lightning_logs/version_0"
    assert (run / "checkpoints/last.ckpt").is_file()
    resumed = contrast(
        "fit", *extra, *callback("SaveWeights", path=tmp_path / "resumed.pt"), "--ckpt_path", "last", cwd=tmp_path
    )
    assert f"resuming from {Path('runs/lightning_logs/version_0/checkpoints/last.ckpt')}: epoch 1, global step 12" in (
        resumed.stderr
    )
    assert not (tmp_path / "runs/lightning_logs/version_1").exists()  # the same run folder, not a new one
    assert_same_weights(tmp_path / "straight.pt", tmp_path / "resumed.pt")
    if method == "moco_v2":  # the queue came back too: it is in the state dicts compared above
        assert "queue.bank" in torch.load(tmp_path / "resumed.pt", weights_only=True)["state_dict"]
    # The untrained encoder's kNN is reprinted from the checkpoint, not computed on the resumed weights;
    # the final kNN is the uninterrupted run's.
    untrained = re.compile(r"top-1 ([\d.]+)% \(untrained encoder: ([\d.]+)%\)")
    assert untrained.search(resumed.stdout).groups() == untrained.search(straight.stdout).groups()


@pytest.mark.parametrize(
    "views",
    [
        "batched",
        pytest.param("cpu", marks=pytest.mark.slow),
        pytest.param("split", marks=pytest.mark.slow),
    ],
)
@pytest.mark.slow  # three end-to-end runs each
def test_sigkill_at_epoch_end_with_workers_resumes_exactly(tmp_path, views):
    """Killed after the step checkpoint of epoch 0's last batch, before the epoch-end checkpoint (as
    during the epoch-end kNN), with 2 DataLoader workers: the resumed run trains epochs 1 and 2 in
    full. The workers draw their first indices when Lightning makes the loader's iterator, before it
    sets the next epoch; the resumed sampler must already be at epoch 1 then."""
    extra = QUICK + every(5) + ["--data.views", views, "--data.num_workers", "2"]
    if views == "split":
        _shapes_pack(tmp_path / "packs")
        extra += ["--data.dataset", "packed", "--data.root", "packs"]
    save = callback("SaveWeights", path=tmp_path / "straight.pt")
    contrast("fit", *extra, *save, "--run_dir", "straight", cwd=tmp_path)
    killed = contrast("fit", *extra, *callback("KillAtEpochEnd", epoch=0), cwd=tmp_path, check=None)
    assert killed.returncode == -signal.SIGKILL
    resumed = contrast(
        "fit", *extra, *callback("SaveWeights", path=tmp_path / "resumed.pt"), "--ckpt_path", "last", cwd=tmp_path
    )
    assert "epoch 0, global step 10" in resumed.stderr
    assert "run finished: 3 epochs, 30 steps" in resumed.stdout
    assert_same_weights(tmp_path / "straight.pt", tmp_path / "resumed.pt")


@pytest.mark.slow  # three end-to-end runs
def test_sigkill_on_shards_resumes_exactly_with_another_worker_count(tmp_path):
    """Two-tower training on img2dataset-layout tar shards (4 shards of 80 pairs, 2 workers, open_clip's
    random crop drawn per sample before the decode) killed mid-epoch at step 14, resumed with 1 worker:
    the final weights are the uninterrupted run's."""
    pytest.importorskip("webdataset", reason="webdataset writes the shards (the bench extra)")
    from tests.data.test_shards import write_shards

    write_shards(tmp_path / "shards/train", 320, per_shard=80, seed=0, fmt="jpg")
    write_shards(tmp_path / "shards/test", 64, per_shard=80, seed=1, fmt="jpg")
    shards = [
        "--config",
        str(ROOT / "configs/crossmodal_shapes.yaml"),
        "--data.dataset",
        "webdataset",
        "--data.root",
        "shards",
        "--data.batch_size",
        "32",
        "--data.recipe",
        "clip",
        "--trainer.max_epochs",
        "3",
        "--trainer.enable_progress_bar",
        "false",
        *every(4),
    ]
    workers = ["--data.num_workers", "2"]
    contrast(
        "fit",
        *shards,
        *workers,
        *callback("SaveWeights", path=tmp_path / "straight.pt"),
        "--run_dir",
        "straight",
        cwd=tmp_path,
    )
    killed = contrast("fit", *shards, *workers, *callback("KillAtStep", step=14), cwd=tmp_path, check=None)
    assert killed.returncode == -signal.SIGKILL
    resumed = contrast(
        "fit",
        *shards,
        "--data.num_workers",
        "1",
        *callback("SaveWeights", path=tmp_path / "resumed.pt"),
        "--ckpt_path",
        "last",
        cwd=tmp_path,
    )
    assert "epoch 1, global step 12" in resumed.stderr
    assert_same_weights(tmp_path / "straight.pt", tmp_path / "resumed.pt")


def _shapes_pack(root: Path) -> None:
    """Shapes-10 as JPEG folders, packed: train (400) and val (100)."""
    from torchvision.io import write_jpeg

    from contrast.data import generate_shapes
    from contrast.data.pack import pack

    for split, n, seed in (("train", 400, 0), ("val", 100, 1)):
        images, labels = generate_shapes(n, seed=seed)
        for i, (image, label) in enumerate(zip(images, labels.tolist())):
            folder = root.parent / "shapes" / split / f"class_{label}"
            folder.mkdir(parents=True, exist_ok=True)
            write_jpeg(image, str(folder / f"{i}.jpg"), quality=95)
        pack(root.parent / "shapes" / split, root / split, progress=False)


@pytest.mark.slow
def test_sigterm_writes_a_checkpoint_and_the_resumed_run_is_exact(tmp_path):
    contrast("fit", *QUICK, *callback("SaveWeights", path=tmp_path / "straight.pt"), "--run_dir", "a", cwd=tmp_path)
    stopped = contrast(
        "fit",
        *QUICK,
        *callback("SignalAtStep", step=13, signum=int(signal.SIGTERM)),
        "--run_dir",
        "b",
        cwd=tmp_path,
        check=128 + signal.SIGTERM,
    )
    assert "stopped by SIGTERM after step 14" in stopped.stderr and "--ckpt_path last" in stopped.stderr
    checkpoint = torch.load(tmp_path / "b/checkpoints/last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 14  # the step under way finished, then the checkpoint was written
    contrast(
        "fit",
        *QUICK,
        *callback("SaveWeights", path=tmp_path / "resumed.pt"),
        "--run_dir",
        "b",
        "--ckpt_path",
        "last",
        cwd=tmp_path,
    )
    assert_same_weights(tmp_path / "straight.pt", tmp_path / "resumed.pt")


def test_sigint_writes_a_checkpoint_and_exits_130(tmp_path):
    stopped = contrast("fit", *QUICK, *callback("SignalAtStep", step=3), "--run_dir", "r", cwd=tmp_path, check=130)
    assert "Previous log files" not in stopped.stderr  # a fresh --run_dir holds no previous logs
    assert "SIGINT received: writing a checkpoint after this step" in stopped.stderr
    assert torch.load(tmp_path / "r/checkpoints/last.ckpt", weights_only=True)["global_step"] == 4


def test_every_epoch_writes_last_ckpt_and_the_run_ends_with_a_summary(tmp_path):
    root = tmp_path / "elsewhere"
    done = contrast(
        "fit",
        *QUICK,
        "--trainer.max_epochs",
        "1",
        *callback("KillAtStep", step=999),
        "--trainer.default_root_dir",
        str(root),
        cwd=tmp_path,
    )
    checkpoint = root / "lightning_logs/version_0/checkpoints/last.ckpt"
    assert checkpoint.is_file() and not (tmp_path / "runs").exists()  # the default_root_dir decides
    assert torch.load(checkpoint, weights_only=True)["global_step"] == 10  # written at the end of the epoch
    summary = done.stdout.strip().splitlines()[-1]
    assert summary.startswith("run finished: 1 epochs, 10 steps; checkpoint ") and str(checkpoint) in summary
    assert "kNN (weighted, k=200, τ=0.1, backbone features) top-1" in summary
    assert "LightningCLI's args parameter" not in done.stderr


def test_ckpt_path_last_with_nothing_to_resume_is_an_error(tmp_path):
    result = contrast("fit", *QUICK, "--ckpt_path", "last", cwd=tmp_path, check=2)
    assert "nothing to resume" in result.stderr and "runs/lightning_logs/version_*" in result.stderr
    result = contrast("fit", *QUICK, "--run_dir", "x", "--ckpt_path", "last", cwd=tmp_path, check=2)
    assert "nothing to resume" in result.stderr


@pytest.mark.slow
def test_a_checkpoint_of_another_model_is_refused_with_the_differences(tmp_path):
    contrast("fit", *QUICK, "--trainer.max_steps", "2", "--run_dir", "r", cwd=tmp_path)
    other = contrast(
        "fit",
        *QUICK,
        "--run_dir",
        "r",
        "--ckpt_path",
        "last",
        "--model.init_args.backbone",
        "tiny_cnn_w8",
        "--model.init_args.lr",
        "0.3",
        cwd=tmp_path,
        check=2,
    )
    assert "does not fit the config" in other.stderr
    assert "model.backbone: checkpoint 'tiny_cnn', config 'tiny_cnn_w8'" in other.stderr
    assert "model.lr: checkpoint 0.1, config 0.3" in other.stderr
    allowed = contrast(
        "fit",
        *QUICK,
        "--run_dir",
        "r",
        "--ckpt_path",
        "last",
        "--model.init_args.lr",
        "0.3",
        "--allow_mismatch",
        "true",
        "--trainer.max_steps",
        "4",
        cwd=tmp_path,
    )
    assert "settings differ, allowed" in allowed.stderr
    fresh_into_old = contrast("fit", *QUICK, "--run_dir", "r", cwd=tmp_path, check=2)
    assert "already holds" in fresh_into_old.stderr


@pytest.mark.parametrize(
    "args,expected",
    [
        (["--model.init_args.lr", "-1"], "--model.init_args.lr: lr must be a finite number > 0, got -1.0"),
        (["--model.init_args.temperature", "0"], "--model.init_args.temperature: temperature must be"),
        (["--model.init_args.backbone", "resnet99"], "--model.init_args.backbone: unknown backbone 'resnet99'"),
        (["--model.init_args.lrr", "0.1"], "unknown option '--model.init_args.lrr'; did you mean 'lr'?"),
        (["--data.batch_size", "1"], "--data.batch_size: batch_size must be an int >= 2"),
        (["--data.batch_size", "abc"], "--data.batch_size: expected an int, got 'abc'"),
        (["--data.datset", "x"], "unknown option '--data.datset'"),
        # it trained and saved, then exited 2 (".temp.ckpt ... not a training checkpoint")
        (["--trainer.strategy", "ddp_spawn"], "--trainer.strategy ddp_spawn is not supported: use ddp"),
    ],
)
def test_common_mistakes_give_one_short_error(tmp_path, args, expected):
    result = contrast("fit", *QUICK, *args, cwd=tmp_path, check=2)
    errors = [line for line in result.stderr.splitlines() if line.startswith("contrast fit: error:")]
    assert len(errors) == 1 and expected in errors[0], result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) <= 4, result.stderr


@pytest.mark.slow  # several end-to-end starts
def test_files_that_are_not_checkpoints(tmp_path, monkeypatch, capsys):
    from contrast.cli import main

    empty = tmp_path / "empty.ckpt"
    empty.write_bytes(b"")
    text = tmp_path / "notes.ckpt"
    text.write_text("not a checkpoint")
    weights = tmp_path / "weights.pt"
    torch.save({"conv.weight": torch.zeros(1)}, weights)
    cases = (
        (empty, "is empty (0 bytes)"),
        (text, "is not a readable PyTorch checkpoint"),
        (weights, "not a training checkpoint"),
    )
    for path, message in cases:
        result = contrast("fit", *QUICK, "--ckpt_path", str(path), cwd=tmp_path, check=2)
        assert message in result.stderr and str(path) in result.stderr, result.stderr
    monkeypatch.chdir(tmp_path)  # the other commands in this process: the same code as `contrast knn ...`
    for path, message in cases:
        for command in (["knn", "--ckpt", str(path)], ["export", "--ckpt", str(path), "--out", "x"]):
            assert main(command) == 2
            error = capsys.readouterr().err
            assert message in error and str(path) in error, (command, error)


def test_contrast_test_is_refused_and_help_lists_every_command(tmp_path):
    result = contrast("test", "--config", "x.yaml", cwd=tmp_path, check=2)
    assert "not supported" in result.stderr
    out = contrast("--help", cwd=tmp_path).stdout
    for command in ("fit", "validate", "test", "export", "knn", "probe", "sweep"):
        assert f"    {command}" in out, command


def test_a_full_disk_is_reported_as_such(tmp_path, monkeypatch):
    """torch's zip writer reports ENOSPC as 'unexpected pos ...'; the error names the disk and the path."""
    from contrast import checkpoint

    real_fdopen = os.fdopen
    monkeypatch.setattr(
        checkpoint.os,
        "fdopen",
        lambda fd, mode: (os.close(fd), real_fdopen(os.open("/dev/full", os.O_WRONLY), mode))[1],
    )
    with pytest.raises(OSError, match="No space left on device while writing .*last.ckpt"):
        checkpoint.atomic_save({"weights": torch.zeros(1 << 16)}, tmp_path / "last.ckpt")
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind


def test_every_minutes_writes_within_an_epoch(tmp_path, monkeypatch):
    import lightning as L

    from contrast.checkpoint import AtomicCheckpointIO, LastCheckpoint
    from contrast.data import ContrastiveData
    from contrast.methods import SimCLR

    clock = iter(range(0, 10_000, 30))  # every call to the clock: 30 s later
    monkeypatch.setattr("contrast.checkpoint.time.monotonic", lambda: next(clock))
    saved = []
    checkpoint = LastCheckpoint(every_minutes=1, dirpath=str(tmp_path))
    monkeypatch.setattr(
        L.Trainer, "save_checkpoint", lambda trainer, path, weights_only=None: saved.append(trainer.global_step)
    )
    trainer = L.Trainer(
        max_steps=6,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[checkpoint],
        plugins=[AtomicCheckpointIO()],
    )
    data = ContrastiveData(batch_size=16, train_subset=256, eval_subset=32, views="batched")
    trainer.fit(SimCLR(backbone="tiny_cnn", projector_hidden=32, projector_dim=16), data)
    # One clock reading per step (and one per write), 30 s apart: a write whenever a minute has
    # passed since the last, i.e. every 2nd step; the run's end (step 6) writes as an epoch end does.
    assert saved == [2, 4, 6, 6], saved
