"""Run by the tests under ``torchrun --nproc_per_node 2``: a short Lightning DDP fit on CPU (gloo).

Each rank writes its final state_dict, its MoCo queue (if any) and its kNN result to --out.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import lightning as L
import torch

from contrast.data import ContrastiveData
from contrast.eval import KNNCallback
from contrast.methods import MoCoV2, SimCLR


class LocalLoss(SimCLR):
    """SimCLR that keeps each step's loss of this rank's shard."""

    def contrastive_step(self, q, k):
        loss, features = super().contrastive_step(q, k)
        self.local_losses.append(float(loss))
        return loss, features


class RecordLoss(L.Callback):
    """Each step: this rank's own loss, and the train/loss the logger received."""

    def __init__(self) -> None:
        self.local, self.logged = [], []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.local.append(module.local_losses[-1] if hasattr(module, "local_losses") else None)
        self.logged.append(float(trainer.callback_metrics["train/loss"]))


class SaveState(L.Callback):
    def __init__(self, out: Path) -> None:
        self.out = out

    def on_train_end(self, trainer, module) -> None:
        torch.save(module.state_dict(), self.out / f"rank{trainer.global_rank}.pt")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--method", choices=["simclr", "moco_v2"], required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    L.seed_everything(0)
    data = ContrastiveData(batch_size=16, train_subset=128, eval_subset=96, views="batched", seed=1)
    # lr for a global batch of 64; the run's is 16 × 2 ranks = 32: a peak learning rate of 0.05
    common = dict(backbone="tiny_cnn", num_classes=10, lr=0.1, lr_batch_size=64, projector_hidden=64, projector_dim=32)
    if args.method == "simclr":
        model = LocalLoss(**common)
        model.local_losses = []
    else:
        model = MoCoV2(queue_size=128, **common)
    knn, losses = KNNCallback(every_n_epochs=1, k=20), RecordLoss()
    trainer = L.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        max_epochs=1,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[knn, losses, SaveState(args.out)],  # SyncBatchNorm is GPU-only in torch: off on CPU
        log_every_n_steps=2,
    )
    trainer.fit(model, data)
    (args.out / f"knn{trainer.global_rank}.json").write_text(json.dumps(knn.results))
    peak = trainer.optimizers[0].param_groups[0]["initial_lr"]
    record = {"local": losses.local, "logged": losses.logged, "peak_lr": peak}
    (args.out / f"loss{trainer.global_rank}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main()
