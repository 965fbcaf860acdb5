"""Retrieval both ways of a two-tower model during training."""

from __future__ import annotations

import lightning as L

from contrast.checks import ConfigError
from contrast.eval.callbacks.base import EvaluationCallback
from contrast.eval.crossmodal import format_scores, retrieval_scores


class RetrievalCallback(EvaluationCallback):
    """Embed the test split and log retrieval both ways (``retrieval/i2t/R@5``, ...) (the schedule
    and the baseline: :class:`EvaluationCallback`; the untrained model is scored by default)."""

    name = "retrieval"

    def __init__(self, every_n_epochs: int = 1, baseline: bool = True, ks: tuple[int, ...] = (1, 5, 10)) -> None:
        super().__init__(every_n_epochs, baseline)
        if not ks or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in ks):
            raise ConfigError("ks", f"ks must be positive ints, got {ks!r}")
        self.ks = tuple(ks)

    def active(self, trainer: L.Trainer) -> bool:
        if not hasattr(trainer.datamodule, "eval_loaders") or not hasattr(trainer.lightning_module, "embed_texts"):
            raise ValueError("RetrievalCallback needs a two-tower model (CrossModal) on paired data (PairedData)")
        return True

    def start(self, trainer: L.Trainer) -> None:
        trainer.datamodule.split(False)  # a missing or bad test split stops the run now, not after the last epoch

    def evaluate(self, trainer: L.Trainer, module: L.LightningModule) -> dict[str, float]:
        return retrieval_scores(module, trainer.datamodule, self.ks)

    def words(self, figures: dict[str, float]) -> str:
        return format_scores(figures, self.ks)

    def report(self) -> str:
        """The final figures next to the untrained model's."""
        lines = [f"retrieval on the test split (trained):   {self.words(self.results)}"]
        if self.initial:
            lines.append(f"retrieval on the test split (untrained): {self.words(self.initial)}")
        return "\n".join(lines)

    def summary(self) -> str | None:
        """The final R@5 both ways for the run's summary line (None when nothing was scored)."""
        if "i2t/R@5" not in self.results:
            return None
        return f"retrieval R@5 image→text {self.results['i2t/R@5']:.1f}%, text→image {self.results['t2i/R@5']:.1f}%"
