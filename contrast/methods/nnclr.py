"""NNCLR (Dwibedi et al. 2021, "With a Little Help from My Friends: Nearest-Neighbor Contrastive
Learning of Visual Representations").

Each projection z_i is replaced by its nearest neighbour (cosine, top-1) in a support set Q of
past projections, and that neighbour is the positive for the prediction of the other view:

    L_i = -log( exp(NN(z_i)·p⁺_i / τ) / Σ_k exp(NN(z_i)·p⁺_k / τ) ),  symmetric in the two views,

where p⁺ are the predictions of the other view. After the loss the batch's projections of the
first view (of every rank) are enqueued, the oldest leaving first.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from contrast import distributed
from contrast.checks import ConfigError
from contrast.losses import InfoNCE
from contrast.methods.base import ContrastiveModule
from contrast.models import Queue, mlp


def nearest_neighbours(z: Tensor, support: Tensor) -> Tensor:
    """For each row of ``z`` (N, D), the row of ``support`` (M, D) with the highest cosine
    similarity (ties: the lowest index), (N, D); no gradient flows into the support set."""
    similarity = F.normalize(z, dim=1) @ F.normalize(support, dim=1).T  # (N, M)
    return support[similarity.argmax(dim=1)]  # (N, D)


class NNCLR(ContrastiveModule):
    """Args: projector_hidden / projector_dim (2048 / 256; a 3-layer projector with BatchNorm),
    predictor_hidden (4096); support_size |Q| (98,304 on ImageNet; a multiple of the global batch);
    temperature τ (0.1)."""

    def __init__(
        self,
        projector_hidden: int = 2048,
        projector_dim: int = 256,
        predictor_hidden: int = 4096,
        support_size: int = 8192,
        temperature: float = 0.1,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(support_size, int) or support_size < 2:
            raise ConfigError("support_size", f"support_size must be an int >= 2, got {support_size!r}")
        self.projector = mlp(self.feature_dim, projector_hidden, projector_dim, num_layers=3, last_bn=True)
        self.predictor = mlp(projector_dim, predictor_hidden, projector_dim, num_layers=2)
        self.support = Queue(support_size, projector_dim)
        self.criterion = InfoNCE(temperature, validate=False)

    def setup(self, stage: str) -> None:
        super().setup(stage)
        data = self.trainer.datamodule if self._trainer is not None else None
        batch = getattr(data, "batch_size", None)
        if stage == "fit" and batch is not None:
            global_batch = batch * self.trainer.world_size
            if self.hparams.support_size < global_batch or self.hparams.support_size % global_batch:
                raise ValueError(
                    f"support_size must be a multiple of the global batch size {global_batch} (and at least it), "
                    f"got {self.hparams.support_size}"
                )

    def contrastive_step(self, x1: Tensor, x2: Tensor) -> tuple[Tensor, Tensor]:
        n = x1.shape[0]
        features = self.encode(torch.cat([x1, x2]))  # (2N, F)
        z = self.projector(features)  # (2N, D)
        p = self.predictor(z)  # (2N, D)
        support = self.support.negatives()  # (Q, D)
        nn1 = nearest_neighbours(z[:n].detach(), support)  # (N, D) NN(z1)
        nn2 = nearest_neighbours(z[n:].detach(), support)  # (N, D) NN(z2)
        loss = 0.5 * (self.criterion(nn1, p[n:]) + self.criterion(nn2, p[:n]))  # logits NN(z) @ p⁺.T / τ
        self.support.push(distributed.gather_no_grad(F.normalize(z[:n].detach(), dim=1)))  # (W·N, D)
        return loss, features[:n]
