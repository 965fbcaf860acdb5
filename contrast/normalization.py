"""Pixel normalisation, a fact of the data: how a backbone's input pixels (scaled to [0, 1]) are
normalised, per channel, ``(x - mean) / std``.

It has one home: the recipe states it, the data module hands it to the model as the fact
``normalization`` (``{"mean": [...], "std": [...]}``), and the checkpoint keeps that record among the
model's hyper-parameters; export, linear evaluation and the two-tower model read the record, never a
recipe's name. One comparison rule (:meth:`Normalization.same`) serves every check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from contrast.checks import ConfigError

TOLERANCE = 1e-4  # published statistics are printed to 3-4 places (0.485 vs 0.48500001)


@dataclass(frozen=True)
class Normalization:
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def of(cls, record: dict | None, argument: str = "normalization") -> Normalization | None:
        """From a record ``{"mean": [...], "std": [...]}`` (None: none); a bad one is refused naming ``argument``."""
        if record is None:
            return None
        try:
            mean, std = tuple(float(m) for m in record["mean"]), tuple(float(s) for s in record["std"])
        except (KeyError, TypeError, ValueError):
            raise ConfigError(argument, f'{argument} must be {{"mean": [...], "std": [...]}}, got {record!r}') from None
        finite = all(math.isfinite(v) for v in mean + std)
        if not mean or len(mean) != len(std) or not finite or min(std) <= 0:
            raise ConfigError(
                argument, f"{argument} needs one finite mean and one std > 0 per channel, got mean {mean}, std {std}"
            )
        return cls(mean, std)

    def record(self) -> dict:
        """The form kept in a checkpoint and an export's JSON."""
        return {"mean": list(self.mean), "std": list(self.std)}

    def same(self, other: Normalization | None) -> bool:
        """The one comparison rule: as many channels, each value within :data:`TOLERANCE`."""
        return (
            other is not None
            and len(self.mean) == len(other.mean)
            and all(abs(a - b) <= TOLERANCE for a, b in zip(self.mean + self.std, other.mean + other.std))
        )

    def onto(self, target: Normalization) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(scale, shift) per channel that turn pixels normalised by ``self`` into pixels normalised
        by ``target``: ``x' = x · scale + shift`` (pixel p = x·std + mean; x' = (p − mean') / std')."""
        scale = tuple(s / t for s, t in zip(self.std, target.std))
        shift = tuple((m - mt) / t for m, mt, t in zip(self.mean, target.mean, target.std))
        return scale, shift

    def __str__(self) -> str:
        return f"mean {[round(m, 4) for m in self.mean]}, std {[round(s, 4) for s in self.std]}"


def recorded(hparams: dict) -> Normalization | None:
    """The normalisation a checkpoint's hyper-parameters record: ``normalization``, or the two-tower
    model's ``image_mean`` / ``image_std`` (its own arguments, in checkpoints written before the
    record); None when the checkpoint does not say."""
    if hparams.get("normalization") is not None:
        return Normalization.of(hparams["normalization"])
    if hparams.get("image_mean") is not None and hparams.get("image_std") is not None:
        return Normalization.of({"mean": hparams["image_mean"], "std": hparams["image_std"]})
    return None
