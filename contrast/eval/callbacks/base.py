"""What every evaluation callback does the same way: when it scores, the untrained baseline, the
logging, the final weights, the summary line."""

from __future__ import annotations

from typing import ClassVar

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info

from contrast.checks import boolean, int_at_least


class EvaluationCallback(L.Callback):
    """Scores the model on the data module's test split every ``every_n_epochs`` epochs and after
    the last (and once more at the end of a run stopped mid-epoch, so the summary has the final
    weights' figures); ``baseline=True`` also scores the untrained model once at a fresh start,
    kept in the checkpoint, so a resumed run reprints it instead of scoring the resumed weights.
    Figures are logged as ``<name>/<figure>`` (the baseline's as ``<name>/<figure>_init``).

    A subclass states only what differs: :attr:`name`, :meth:`evaluate` (the figures), :meth:`words`
    (them in a line) and :meth:`summary`; where needed :meth:`active` (whether there is data to
    score), :meth:`start` (checks and records at the start of the fit), :meth:`after` (more work
    from one evaluation) and :meth:`report` (the lines printed at the end). A new evaluation is one
    file with a subclass and one line in :data:`contrast.eval.callbacks.EVAL_CALLBACKS`.
    """

    name: ClassVar[str]  # the prefix of the logged figures
    off: ClassVar[str] = ""  # said at the start of a fit with nothing to score
    logged: ClassVar[tuple[str, ...] | None] = None  # the figures logged (None: all of evaluate's)

    def __init__(self, every_n_epochs: int = 1, baseline: bool = False) -> None:
        int_at_least("every_n_epochs", every_n_epochs)
        self.every_n_epochs, self.baseline = every_n_epochs, boolean("baseline", baseline)
        self.results: dict[str, float] = {}  # the last figures
        self.initial: dict[str, float] = {}  # the untrained model's
        self._evaluated_at_step = -1

    # ------------------------------------------------------------------ what a subclass states
    def evaluate(self, trainer: L.Trainer, module: L.LightningModule) -> dict[str, float]:
        raise NotImplementedError

    def words(self, figures: dict[str, float]) -> str:
        """The figures in a line, with their protocol."""
        raise NotImplementedError

    def summary(self) -> str | None:
        """The final figure for the run's summary line (None when nothing was scored)."""
        raise NotImplementedError

    def active(self, trainer: L.Trainer) -> bool:
        """Whether there is data to score on; a data module or model it cannot score is refused here."""
        return True

    def start(self, trainer: L.Trainer) -> None:
        """At the start of the fit, before the baseline (checks, the protocol as hyper-parameters)."""

    def after(self, trainer: L.Trainer, epoch: int) -> None:
        """After an epoch's evaluation (e.g. pictures from its features)."""

    def report(self) -> str:
        """The lines printed at the end of the fit."""
        lines = [f"{self.words(self.results)} (trained)"]
        if self.initial:
            lines.append(f"{self.words(self.initial)} (untrained)")
        return "\n".join(lines)

    # ------------------------------------------------------------------ the schedule, the same for all
    def state_dict(self) -> dict:
        return {"initial": dict(self.initial)}

    def load_state_dict(self, state_dict: dict) -> None:
        self.initial = dict(state_dict.get("initial", {}))

    def _score(self, trainer: L.Trainer, module: L.LightningModule) -> dict[str, float]:
        with torch.no_grad():
            figures = self.evaluate(trainer, module)
        self._evaluated_at_step = trainer.global_step
        return figures

    def on_fit_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not self.active(trainer):
            rank_zero_info(self.off)
            return
        self.start(trainer)
        if self.baseline and trainer.ckpt_path is None:  # a fresh start: the weights are the untrained model's
            self.initial = self._score(trainer, module)
        if self.initial:
            rank_zero_info(f"{self.words(self.initial)} (untrained)")

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        last = trainer.max_epochs is not None and epoch >= trainer.max_epochs
        if (epoch % self.every_n_epochs and not last) or not self.active(trainer):
            return
        self.results = self._score(trainer, module)
        for key in self.logged or tuple(self.results):
            module.log(f"{self.name}/{key}", self.results[key], rank_zero_only=True)
        for key in self.logged or tuple(self.initial):
            if key in self.initial:
                module.log(f"{self.name}/{key}_init", self.initial[key], rank_zero_only=True)
        rank_zero_info(f"epoch {epoch}: {self.words(self.results)}")
        self.after(trainer, epoch)

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        # Stopped mid-epoch (max_steps, early stopping), or resumed from the last step's checkpoint of
        # a run stopped during its final evaluation: score the final weights, so the summary has them.
        if self._evaluated_at_step != trainer.global_step and trainer.global_step > 0 and self.active(trainer):
            self.results = self._score(trainer, module)

    def on_fit_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if self.results and trainer.is_global_zero:
            print(self.report(), flush=True)
