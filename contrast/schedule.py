"""The learning-rate schedule of every training in the package: linear warmup, then cosine to zero."""

from __future__ import annotations

import math


class WarmupCosine:
    """Learning-rate factor: linear from 0 to 1 over ``warmup`` steps, then cosine to 0 at ``total``
    (SGDR without restarts, Loshchilov & Hutter 2017; SimCLR's and MoCo v3's schedule). The training
    base (:mod:`contrast.methods.base`) and the feature mode of linear evaluation
    (:func:`contrast.eval.linear.linear_sgd`) both step it per optimizer step."""

    def __init__(self, warmup: int, total: int) -> None:
        self.warmup, self.total = warmup, total

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        progress = (step - self.warmup) / max(1, self.total - self.warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
