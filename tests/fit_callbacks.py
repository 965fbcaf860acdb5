"""Callbacks the end-to-end tests hand to ``contrast fit`` (``--trainer.callbacks+ tests.fit_callbacks.X``)."""

from __future__ import annotations

import os
import signal

import lightning as L


class KillAtStep(L.Callback):
    """SIGKILL this process when training reaches ``step`` (nothing runs after it: no hook, no save)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class SignalAtStep(L.Callback):
    """Send ``signum`` (SIGINT or SIGTERM) to this process as step ``step`` starts, as a user's Ctrl-C
    or a scheduler's pre-emption would."""

    def __init__(self, step: int, signum: int = int(signal.SIGINT)) -> None:
        self.step, self.signum = step, signum

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)


class SaveWeights(L.Callback):
    """Write the final state_dict, the global step and the last logged metrics to ``path`` (to compare a
    resumed run with an uninterrupted one, or two launches); under DDP only global rank 0 writes."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_end(self, trainer, module) -> None:
        import torch

        if not trainer.is_global_zero:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if getattr(v, "numel", lambda: 1)() == 1}
        state = {
            "state_dict": module.state_dict(),
            "global_step": trainer.global_step,
            "metrics": metrics,
            "world_size": trainer.world_size,
        }
        torch.save(state, self.path)


class KillAtEpochEnd(L.Callback):
    """SIGKILL this process at the end of epoch ``epoch``, before the epoch-end checkpoint (as a kill
    during the epoch-end kNN would): the run's last checkpoint is the one written after the epoch's
    last step."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_end(self, trainer, module) -> None:
        if trainer.current_epoch == self.epoch:
            os.kill(os.getpid(), signal.SIGKILL)


class FailAtEpochEnd(L.Callback):
    """Raise at the end of epoch ``epoch``, before the epoch-end checkpoint: in-process, what a kill
    during the final evaluation leaves (the last checkpoint is the one after the epoch's last step)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_end(self, trainer, module) -> None:
        if trainer.current_epoch == self.epoch:
            raise RuntimeError("stopped at the epoch's end")
