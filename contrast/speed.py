"""Training throughput, measured without slowing the training down."""

from __future__ import annotations

import time

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info


class Throughput(L.Callback):
    """Measures training samples per second over all ranks and logs ``speed/samples_per_s``.

    The clock starts after ``warmup`` optimizer steps of each epoch (compilation, cuDNN autotuning,
    worker start-up) and stops at the end of the epoch; the device is synchronised only at those
    two points, so no step waits for the GPU because of the measurement. A sample is one image of
    the training set (its two views count once); the batch size is the data module's per-device
    ``batch_size`` times the number of processes.
    """

    def __init__(self, warmup: int = 20) -> None:
        if not isinstance(warmup, int) or warmup < 0:
            raise ValueError(f"warmup must be an int >= 0, got {warmup!r}")
        self.warmup = warmup
        self.samples_per_s: list[float] = []  # one figure per measured epoch
        self._start: float | None = None
        self._first_step = self._epoch_first_step = 0

    def _sync(self, module: L.LightningModule) -> None:
        if module.device.type == "cuda":
            torch.cuda.synchronize(module.device)

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._start, self._epoch_first_step = None, trainer.global_step

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx: int) -> None:
        if self._start is None and trainer.global_step - self._epoch_first_step >= self.warmup:
            self._sync(module)
            self._start, self._first_step = time.perf_counter(), trainer.global_step

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._finish(trainer, module, log=True)

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._finish(trainer, module)  # stopped by max_steps inside an epoch

    def _finish(self, trainer: L.Trainer, module: L.LightningModule, log: bool = False) -> None:
        if self._start is None:
            return
        self._sync(module)
        steps = trainer.global_step - self._first_step
        seconds = time.perf_counter() - self._start
        self._start = None
        batch_size = getattr(trainer.datamodule, "batch_size", None)
        if steps <= 0 or seconds <= 0 or batch_size is None:
            return
        rate = steps * trainer.accumulate_grad_batches * batch_size * trainer.world_size / seconds
        self.samples_per_s.append(rate)
        if log:  # Lightning allows logging in on_train_epoch_end, not in on_train_end
            module.log("speed/samples_per_s", rate, rank_zero_only=True)
        rank_zero_info(
            f"throughput: {rate:,.0f} samples/s ({steps} steps of {batch_size} × {trainer.world_size} "
            f"process(es) in {seconds:.1f} s, after {self.warmup} warm-up steps)"
        )
