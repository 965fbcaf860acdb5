"""SimCLR (Chen et al. 2020): two views, a 2-layer MLP projector, NT-Xent over the 2N views.

``loss="dcl"`` / ``"dclw"`` trains the same model with the decoupled loss of Yeh et al. (2022)
(the positive out of the denominator; DCLW also weights the positive), as their paper does."""

from __future__ import annotations

import torch
from torch import Tensor

from contrast.checks import ConfigError
from contrast.losses import DCLLoss, NTXent, SupConLoss
from contrast.methods.base import ContrastiveModule
from contrast.models import mlp

# loss name -> criterion for a temperature
LOSSES = {
    "nt_xent": lambda tau: NTXent(tau, validate=False),
    "dcl": lambda tau: DCLLoss(tau, validate=False),
    "dclw": lambda tau: DCLLoss(tau, weighting="vmf", validate=False),
}


class SimCLR(ContrastiveModule):
    """Args (besides :class:`ContrastiveModule`'s): projector_hidden, projector_dim: widths of the
    projector (2048, 128 in the paper); temperature: τ (0.5 for CIFAR-10 in the paper; DCL uses
    0.1); loss: "nt_xent" | "dcl" | "dclw".

    With multi-crop views (``num_small``, nt_xent only) every view of an image is a positive of each
    other: SupCon's L_out with each image its own class, which is NT-Xent for two views (solo-learn's
    multi-crop SimCLR takes all views too, with the positives summed inside the log, L_in)."""

    def __init__(
        self,
        projector_hidden: int = 2048,
        projector_dim: int = 128,
        temperature: float = 0.5,
        loss: str = "nt_xent",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if loss not in LOSSES:
            raise ConfigError("loss", f"loss must be one of {tuple(LOSSES)}, got {loss!r}")
        self.projector = mlp(self.feature_dim, projector_hidden, projector_dim)
        self.criterion = LOSSES[loss](temperature)
        self.multi_view = SupConLoss(temperature, validate=False)  # multi-crop: every view of an image a positive

    @property
    def multi_crop(self) -> bool:
        return self.hparams.loss == "nt_xent"

    def contrastive_step(self, q: Tensor, k: Tensor, small: tuple[Tensor, ...] = ()) -> tuple[Tensor, Tensor]:
        n = q.shape[0]
        # One forward for both views: BatchNorm statistics over all 2N images, as in SimCLR.
        features = self.encode(torch.cat([q, k], dim=0))  # (2N, F)
        z = self.projector(features)  # (2N, D)
        if not small:
            return self.criterion(z[:n], z[n:]), features[:n]
        z_small = self.projector(self.encode(torch.cat(small)))  # (S·N, D): the small crops, one forward at their size
        return self.multi_view(z[:n], z[n:], more_views=z_small.split(n)), features[:n]
