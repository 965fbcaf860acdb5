"""MoCo v3 (Chen et al. 2021) with a ViT: a few training steps."""

from __future__ import annotations

import lightning as L
import torch

from contrast.data import ContrastiveData
from tests.conftest import require
from tests.methods.test_methods import _quiet_trainer

SMALL = dict(projector_hidden=64, projector_dim=32)


def test_moco_v3_with_a_vit_s4_runs_a_few_steps(tmp_path):
    require("timm")
    from contrast.methods import MoCoV3

    L.seed_everything(0)
    data = ContrastiveData(batch_size=8, train_subset=32, eval_subset=16, views="batched")
    model = MoCoV3(
        backbone="timm/vit_small_patch16_224", cifar_stem=True, optimizer="adamw", lr=1e-4, predictor_hidden=64, **SMALL
    )
    trainer = _quiet_trainer(max_steps=3, enable_checkpointing=False, default_root_dir=tmp_path)
    trainer.fit(model, data)
    assert trainer.global_step == 3 and torch.isfinite(trainer.callback_metrics["train/loss"])
