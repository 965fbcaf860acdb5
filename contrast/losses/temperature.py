"""Learnable softmax temperature τ, parameterised by log τ and clamped to a range."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class Temperature(nn.Module):
    """A learnable temperature τ = exp(log_tau), clamped to [min_value, max_value].

    As in CLIP (Radford et al. 2021), τ is learned in log space so that gradient steps are
    relative, and clamped so that it can neither collapse to 0 (logits overflow) nor grow
    without bound. Pass it anywhere a float temperature is accepted::

        tau = Temperature(0.1)
        loss = nt_xent(q, k, temperature=tau)
    """

    def __init__(self, init: float = 0.1, min_value: float = 0.01, max_value: float = 1.0) -> None:
        super().__init__()
        for name, value in (("init", init), ("min_value", min_value), ("max_value", max_value)):
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a finite number > 0, got {value}")
        if not min_value <= init <= max_value:
            raise ValueError(f"init must lie in [min_value, max_value] = [{min_value}, {max_value}], got {init}")
        self.min_value = float(min_value)
        self.max_value = float(max_value)
        self.log_tau = nn.Parameter(torch.tensor(math.log(init)))

    def forward(self) -> Tensor:
        return self.log_tau.clamp(math.log(self.min_value), math.log(self.max_value)).exp()

    def extra_repr(self) -> str:
        return f"tau={self().item():.4g}, range=[{self.min_value}, {self.max_value}]"
