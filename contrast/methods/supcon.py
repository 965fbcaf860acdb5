"""SupCon (Khosla et al. 2020, "Supervised Contrastive Learning"): SimCLR's views and projector,
and the labels: every other view of the same class is a positive (the L_out loss)."""

from __future__ import annotations

import torch
from torch import Tensor

from contrast.losses import SupConLoss
from contrast.methods.base import ContrastiveModule
from contrast.models import mlp


class SupCon(ContrastiveModule):
    """Args (besides :class:`ContrastiveModule`'s): projector_hidden, projector_dim (2048, 128 in
    the paper); temperature τ (0.1 in the paper). Needs labelled training images."""

    uses_labels = True
    multi_crop = True

    def __init__(self, projector_hidden: int = 2048, projector_dim: int = 128, temperature: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        self.projector = mlp(self.feature_dim, projector_hidden, projector_dim)
        self.criterion = SupConLoss(temperature, validate=False)

    def contrastive_step(
        self, q: Tensor, k: Tensor, labels: Tensor, small: tuple[Tensor, ...] = ()
    ) -> tuple[Tensor, Tensor]:
        n = q.shape[0]
        features = self.encode(torch.cat([q, k]))  # (2N, F): one forward, BatchNorm over both views
        z = self.projector(features)  # (2N, C)
        z_small = self.projector(self.encode(torch.cat(small))).split(n) if small else ()  # S × (N, C)
        return self.criterion(z[:n], z[n:], labels, more_views=z_small), features[:n]
