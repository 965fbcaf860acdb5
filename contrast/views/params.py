"""The random parameters of a view: their layout (:class:`ViewParams`, 18 packed columns) and their
draw from uniforms (:func:`draw_packed`, torchvision's distributions, vectorised over views).

Every random number of one view comes from ``UNIFORMS_PER_VIEW`` uniforms in a fixed order: the
jitter factors (4), the jitter order's keys (4), the crop (2·CROP_ATTEMPTS + 2), then flip, jitter,
grayscale, blur, σ, solarize. Whoever supplies the uniforms (a ``torch.Generator`` per sample in a
worker, or the counter-based hash of a whole batch) gets the same distributions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


@dataclass
class ViewParams:
    """Per-sample parameters, all on the CPU, first dimension B."""

    boxes: Tensor  # (B, 4) float: top, left, height, width of the crop in input pixels
    flip: Tensor  # (B,) bool
    jitter: Tensor  # (B,) bool: colour jitter applied
    factors: Tensor  # (B, 4): brightness, contrast, saturation factors and hue shift
    order: Tensor  # (B, 4) long: a permutation of 0..3 (the ops in the order they are applied)
    grayscale: Tensor  # (B,) bool
    blur: Tensor  # (B,) bool
    sigma: Tensor  # (B,) float
    solarize: Tensor  # (B,) bool

    def __len__(self) -> int:
        return self.boxes.shape[0]

    def rows(self, start: int, stop: int) -> ViewParams:
        """The parameters of samples ``start`` … ``stop - 1``."""
        return ViewParams(**{f: getattr(self, f)[start:stop] for f in self.FIELDS})

    # The packed layout, named here only: field i takes WIDTHS[i] columns, in this order.
    FIELDS = ("boxes", "flip", "jitter", "factors", "order", "grayscale", "blur", "sigma", "solarize")
    WIDTHS = (4, 1, 1, 4, 4, 1, 1, 1, 1)

    @classmethod
    def columns(cls, *fields: str) -> list[int]:
        """The packed columns of ``fields``, in the order given (``columns("boxes", "flip")``: 0 … 4)."""
        starts = dict(zip(cls.FIELDS, np.cumsum((0,) + cls.WIDTHS[:-1]).tolist()))
        widths = dict(zip(cls.FIELDS, cls.WIDTHS))
        return [starts[f] + j for f in fields for j in range(widths[f])]

    def pack(self) -> Tensor:
        """(B, 18) float32: the parameters as one tensor (what a DataLoader worker hands over)."""
        columns = [getattr(self, f).float().reshape(len(self), -1) for f in self.FIELDS]
        return torch.cat(columns, dim=1)

    @classmethod
    def unpack(cls, packed: Tensor) -> ViewParams:
        parts = packed.cpu().split(cls.WIDTHS, dim=1)
        kinds = {"flip": torch.bool, "jitter": torch.bool, "grayscale": torch.bool, "blur": torch.bool}
        kinds |= {"solarize": torch.bool, "order": torch.long}
        values = {}
        for name, part in zip(cls.FIELDS, parts):
            part = part if cls.WIDTHS[cls.FIELDS.index(name)] > 1 else part.squeeze(1)
            values[name] = part.round().to(kinds[name]) if name in kinds else part.contiguous()
        return cls(**values)


CROP_ATTEMPTS = 10  # RandomResizedCrop's tries before its centre-crop fallback, as torchvision


def _crop_boxes(u: np.ndarray, height: int, width: int, scale, ratio) -> np.ndarray:
    """(n, 4) top, left, height, width from (n, 2·CROP_ATTEMPTS + 2) uniforms in [0, 1); ``scale`` and
    ``ratio`` are (lo, hi) pairs, or (m, 2) arrays of one pair per row (m = n) or for all (m = 1)."""
    a = CROP_ATTEMPTS
    n = u.shape[0]
    scale, ratio = (
        np.asarray(scale, dtype=np.float64).reshape(-1, 2),
        np.asarray(ratio, dtype=np.float64).reshape(-1, 2),
    )
    target_area = height * width * (scale[:, :1] + (scale[:, 1:] - scale[:, :1]) * u[:, :a])  # (n, a)
    logs = np.array([[math.log(lo), math.log(hi)] for lo, hi in ratio.tolist()])  # libm's log, as torchvision
    log_lo, log_hi = logs[:, :1], logs[:, 1:]
    aspect = np.exp(log_lo + (log_hi - log_lo) * u[:, a : 2 * a])  # (n, a)
    w = np.round(np.sqrt(target_area * aspect))
    h = np.round(np.sqrt(target_area / aspect))
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.argmax(axis=1)  # the first try that fits
    found = fits[np.arange(n), first]
    h, w = h[np.arange(n), first], w[np.arange(n), first]
    # Centre-crop fallback: the whole image, clamped to the ratio range.
    in_ratio = width / height
    lo, hi = ratio.min(axis=1), ratio.max(axis=1)
    fallback_w = np.where(in_ratio > hi, np.round(height * hi), width)
    fallback_h = np.where(in_ratio < lo, np.round(width / lo), height)
    h, w = np.where(found, h, fallback_h), np.where(found, w, fallback_w)
    top = np.where(found, np.floor(u[:, 2 * a] * (height - h + 1)), np.floor((height - h) / 2))
    left = np.where(found, np.floor(u[:, 2 * a + 1] * (width - w + 1)), np.floor((width - w) / 2))
    return np.stack([top, left, h, w], axis=1)


def sample_crop_boxes(
    n: int,
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    generator: torch.Generator | None = None,
) -> Tensor:
    """RandomResizedCrop's parameters for n samples: (n, 4) top, left, height, width.

    The algorithm of ``torchvision.transforms.RandomResizedCrop.get_params``, vectorised: up to
    ``CROP_ATTEMPTS`` draws of (area fraction ~ U(scale), log ratio ~ U(log ratio)), the first that
    fits is kept, else a centre crop clamped to the ratio range.
    """
    u = torch.rand(n, 2 * CROP_ATTEMPTS + 2, generator=generator, dtype=torch.float64).numpy()
    return torch.from_numpy(_crop_boxes(u, height, width, scale, ratio)).float()


# The uniforms one view of one sample draws, in one call: jitter factors (4), the jitter order's
# keys (4), the crop (2·CROP_ATTEMPTS + 2), then flip, jitter, grayscale, blur, σ, solarize.
_CROP = slice(8, 8 + 2 * CROP_ATTEMPTS + 2)
_FLIP, _JITTER, _GRAY, _BLUR, _SIGMA, _SOLARIZE = range(_CROP.stop, _CROP.stop + 6)
UNIFORMS_PER_VIEW = _SOLARIZE + 1


def recipe_table(recipes) -> dict[str, np.ndarray]:
    """The numbers of each recipe that the parameter draw reads, one row per recipe: (m, k) arrays."""

    def rows(values) -> np.ndarray:
        return np.array([values(r) for r in recipes], dtype=np.float64).reshape(len(recipes), -1)

    return {
        # factor ranges as torchvision's ColorJitter: [max(0, 1 - s), 1 + s], hue [-h, h]
        "low": rows(
            lambda r: [max(0.0, 1 - r.jitter[0]), max(0.0, 1 - r.jitter[1]), max(0.0, 1 - r.jitter[2]), -r.jitter[3]]
        ),
        "high": rows(lambda r: [1 + r.jitter[0], 1 + r.jitter[1], 1 + r.jitter[2], r.jitter[3]]),
        "scale": rows(lambda r: r.crop_scale),
        "ratio": rows(lambda r: r.crop_ratio),
        "sigma": rows(lambda r: r.blur_sigma),
        "p": rows(lambda r: [r.flip_p, r.jitter_p, r.grayscale_p, r.blur_p, r.solarize_p]),
    }


def draw_packed(u: np.ndarray, height: int, width: int, table: dict[str, np.ndarray]) -> np.ndarray:
    """(n, 18) float32 packed parameters (:meth:`ViewParams.pack`) of n views of an image of this size,
    from (n, UNIFORMS_PER_VIEW) uniforms; row i follows the table's recipe row i (or its one row).
    The one parameter draw: the batched path takes it for a batch of one recipe, a split-path worker
    for the views of one sample (q, k, the small views) in one call."""
    factors = table["low"] + (table["high"] - table["low"]) * u[:, :4]  # (n, 4)
    order = np.argsort(u[:, 4:8], axis=1, kind="stable")  # (n, 4): a uniform permutation of the 4 ops
    lo, hi = table["sigma"][:, 0], table["sigma"][:, 1]
    sigma = lo + (hi - lo) * u[:, _SIGMA]
    coins = u[:, [_FLIP, _JITTER, _GRAY, _BLUR, _SOLARIZE]] < table["p"]  # (n, 5)
    boxes = _crop_boxes(u[:, _CROP], height, width, table["scale"], table["ratio"])
    fields = dict(boxes=boxes, flip=coins[:, :1], jitter=coins[:, 1:2], factors=factors, order=order)
    fields |= dict(grayscale=coins[:, 2:3], blur=coins[:, 3:4], sigma=sigma[:, None], solarize=coins[:, 4:])
    return np.concatenate([np.asarray(fields[f], dtype=np.float32) for f in ViewParams.FIELDS], axis=1)
