"""SimCLR (Chen et al. 2020): two views, a 2-layer MLP projector, NT-Xent over the 2N views."""

from __future__ import annotations

import torch
from torch import Tensor

from contrast.losses import NTXent
from contrast.methods.base import ContrastiveModule
from contrast.models import mlp


class SimCLR(ContrastiveModule):
    """Args (besides :class:`ContrastiveModule`'s): projector_hidden, projector_dim: widths of the
    projector (2048, 128 in the paper); temperature: NT-Xent τ (0.5 for CIFAR-10 in the paper)."""

    def __init__(self, projector_hidden: int = 2048, projector_dim: int = 128, temperature: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.projector = mlp(self.feature_dim, projector_hidden, projector_dim)
        self.criterion = NTXent(temperature, validate=False)

    def contrastive_step(self, q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
        n = q.shape[0]
        # One forward for both views: BatchNorm statistics over all 2N images, as in SimCLR.
        features = self.encode(torch.cat([q, k], dim=0))
        z = self.projector(features)
        return self.criterion(z[:n], z[n:]), features[:n]
