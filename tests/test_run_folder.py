"""A run's folder does not depend on its logger, and one folder holds one run at a time.

Found by an audit: with ``--trainer.logger WandbLogger`` (or no logger) every run wrote
``runs/checkpoints/last.ckpt``, so the next run replaced the last one's checkpoint; two runs into
one ``--run_dir`` at once both exited 0 with their files mixed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.test_runs import QUICK, ROOT, contrast

TINY = [*QUICK, "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2"]


@pytest.mark.slow
def test_runs_without_a_logger_get_a_folder_each_and_resume_their_own(tmp_path):
    first = contrast("fit", *TINY, "--trainer.logger", "false", cwd=tmp_path)
    second = contrast("fit", *TINY, "--trainer.logger", "false", cwd=tmp_path)
    assert "checkpoint runs/lightning_logs/version_0/checkpoints/last.ckpt" in first.stdout
    assert "checkpoint runs/lightning_logs/version_1/checkpoints/last.ckpt" in second.stdout
    assert (tmp_path / "runs/lightning_logs/version_0/config.yaml").is_file()
    resumed = contrast("fit", *TINY, "--trainer.logger", "false", "--ckpt_path", "last", cwd=tmp_path)
    assert "resuming from runs/lightning_logs/version_1/checkpoints/last.ckpt" in resumed.stderr
    assert not (tmp_path / "runs/checkpoints").exists()


def test_a_wandb_run_writes_into_its_run_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")  # the subprocess inherits it; restored afterwards
    result = contrast("fit", *TINY, "--trainer.logger", "WandbLogger", "--run_dir", "runs/wb", cwd=tmp_path)
    assert "checkpoint runs/wb/checkpoints/last.ckpt" in result.stdout
    assert (tmp_path / "runs/wb/config.yaml").is_file() and (tmp_path / "runs/wb/wandb").is_dir()
    assert not (tmp_path / "runs/checkpoints").exists()


@pytest.mark.slow  # two or three end-to-end runs
def test_a_run_folder_in_use_is_refused_and_a_stale_lock_is_taken_over(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    first = subprocess.Popen(
        [sys.executable, "-m", "contrast.cli", "fit", *QUICK, "--trainer.max_epochs", "200", "--run_dir", "shared"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        lock = tmp_path / "shared" / ".lock"
        deadline = time.monotonic() + 120
        while not lock.is_file() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert lock.is_file(), first.communicate()
        second = contrast("fit", *TINY, "--run_dir", "shared", cwd=tmp_path, check=2)
        assert f"the run folder shared is in use by process {first.pid}" in second.stderr
    finally:
        first.send_signal(signal.SIGINT)  # a long run (it must outlast the second's start), stopped as by Ctrl-C
        first.wait(timeout=300)
    assert first.returncode == 130 and not lock.exists()  # released when the run ended
    # a lock left by a killed run: its process is gone, so the lock is stale and taken over
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / ".lock").write_text(f"{first.pid} {os.uname().nodename}\n")
    contrast("fit", *TINY, "--run_dir", "other", cwd=tmp_path)
    assert not (tmp_path / "other" / ".lock").exists()


@pytest.mark.slow  # two or three end-to-end runs
def test_resuming_with_another_seed_is_refused_before_the_run_s_config_is_rewritten(tmp_path):
    """--ckpt_path last resumed the newest run whatever its seed, and rewrote that run's config.yaml."""
    contrast("fit", *TINY, "--run_dir", "r", cwd=tmp_path)
    before = (tmp_path / "r" / "config.yaml").read_text()
    other = contrast(
        "fit", *TINY, "--run_dir", "r", "--ckpt_path", "last", "--seed_everything", "7", cwd=tmp_path, check=2
    )
    assert "seed_everything: checkpoint 0, config 7" in other.stderr
    assert (tmp_path / "r" / "config.yaml").read_text() == before
