"""The run's loggers: wandb offline where it cannot reach its service."""

from __future__ import annotations

import os

from contrast.loggers import wandb_offline_unless_reachable


def test_wandb_goes_offline_without_a_key(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    wandb_offline_unless_reachable(["fit", "--trainer.logger", "WandbLogger"])
    assert os.environ["WANDB_MODE"] == "offline"
    monkeypatch.delenv("WANDB_MODE")
    wandb_offline_unless_reachable(["fit", "--trainer.logger", "CSVLogger"])
    assert "WANDB_MODE" not in os.environ
