"""MoCo v2 and MoCo v3: an online encoder, a momentum (EMA) copy of it for the keys.

* MoCo v2 (Chen et al. 2020, "Improved Baselines with Momentum Contrastive Learning"): 2-layer MLP
  head, single-view InfoNCE of each query against its key and a queue of K past keys; the keys of
  the step (of all ranks) are then enqueued. ``symmetric=True`` adds the swapped loss, as the
  official CIFAR-10 demo does.
* MoCo v3 (Chen et al. 2021, "An Empirical Study of Training Self-Supervised Vision
  Transformers"): 3-layer projector, a predictor on the online branch, no queue; symmetric loss
  ctr(q1, k2) + ctr(q2, k1) with in-batch negatives, each scaled by 2τ as in the reference code.

The momentum m follows a cosine schedule from ``base_momentum`` to 1 (``momentum_schedule="cosine"``,
BYOL / MoCo v3) or stays constant (MoCo v2's 0.999 / 0.99 with ``"constant"``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from contrast import distributed
from contrast.checks import ConfigError
from contrast.losses import InfoNCE
from contrast.methods.base import ContrastiveModule
from contrast.models import Queue, cosine_momentum, ema_update, mlp, momentum_copy
from contrast.seeds import derive_seed

SCHEDULES = ("cosine", "constant")


class _MomentumMethod(ContrastiveModule):
    def __init__(self, base_momentum: float, momentum_schedule: str, **kwargs) -> None:
        super().__init__(**kwargs)
        if not 0 <= base_momentum < 1:
            raise ConfigError("base_momentum", f"base_momentum must lie in [0, 1), got {base_momentum}")
        if momentum_schedule not in SCHEDULES:
            raise ConfigError(
                "momentum_schedule", f"momentum_schedule must be one of {SCHEDULES}, got {momentum_schedule!r}"
            )

    def build_momentum_branch(self) -> None:
        """The online branch (backbone → projector, the one that gets gradients) and its momentum
        copy. ``online`` is not registered as a submodule, so the checkpoint holds the backbone once."""
        object.__setattr__(self, "online", nn.Sequential(self.backbone, self.projector))
        self.momentum_encoder = momentum_copy(self.online)

    def current_momentum(self) -> float:
        hp = self.hparams
        if hp.momentum_schedule == "constant":
            return hp.base_momentum
        return cosine_momentum(hp.base_momentum, self.global_step, self.total_steps)

    def update_momentum_encoder(self) -> None:
        ema_update(self.online, self.momentum_encoder, self.current_momentum())

    def on_train_epoch_end(self) -> None:
        # Logged once an epoch, not every step: logging a Python number copies it to the device,
        # which waits for the device to finish its queued work.
        self.log("train/momentum", self.current_momentum())

    @torch.no_grad()
    def encode_keys(self, images: Tensor, shuffle: int | None = None) -> Tensor:
        """Projections of the momentum encoder (no gradient). With ``shuffle`` (a stream number,
        one per call in a step), the batch goes through the encoder shuffled across ranks and the
        keys come back in the original order (MoCo's shuffling BN, §3.3): with BatchNorm per rank,
        a key then never shares batch statistics with its query."""
        if shuffle is None:
            return self.momentum_encoder(self.memory_format(images))
        generator = torch.Generator().manual_seed(derive_seed(0, "batch_shuffle", self.global_step, shuffle))
        shuffled, permutation = distributed.batch_shuffle(images, generator)  # (N, C, H, W)
        return distributed.batch_unshuffle(self.momentum_encoder(self.memory_format(shuffled)), permutation)


class MoCoV2(_MomentumMethod):
    """Args: projector_hidden / projector_dim (2048 / 128); queue_size K (65536 ImageNet, 4096 CIFAR
    demo; a multiple of the global batch size); temperature τ (0.2 ImageNet, 0.1 CIFAR demo);
    base_momentum m (0.999 ImageNet, 0.99 CIFAR demo); momentum_schedule; symmetric loss;
    shuffle_bn: compute the keys on the batch shuffled across ranks (MoCo §3.3; under DDP without
    SyncBatchNorm it keeps BatchNorm from leaking the key into its query's statistics; in one
    process BatchNorm sees the whole batch either way, and the shuffle changes nothing)."""

    def __init__(
        self,
        projector_hidden: int = 2048,
        projector_dim: int = 128,
        queue_size: int = 4096,
        temperature: float = 0.1,
        base_momentum: float = 0.99,
        momentum_schedule: str = "constant",
        symmetric: bool = True,
        shuffle_bn: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(base_momentum, momentum_schedule, **kwargs)
        self.projector = mlp(self.feature_dim, projector_hidden, projector_dim, batch_norm=False)
        self.build_momentum_branch()
        self.queue = Queue(queue_size, projector_dim)
        self.criterion = InfoNCE(temperature, validate=False)

    def contrastive_step(self, x_q: Tensor, x_k: Tensor) -> tuple[Tensor, Tensor]:
        self.update_momentum_encoder()
        features = self.encode(x_q)  # (N, F)
        q = F.normalize(self.projector(features), dim=1)  # (N, C) queries
        shuffle = self.hparams.shuffle_bn
        k = F.normalize(self.encode_keys(x_k, 0 if shuffle else None), dim=1)  # (N, C) keys
        queue = self.queue.negatives()  # (K, C) negatives
        loss = self.criterion(q, k, queue)  # logits [q·k | q @ queue.T] / τ: (N, 1+K)
        new_keys = [k]
        if self.hparams.symmetric:  # the swapped pair: x_k as the query, x_q as the key
            q_swapped = F.normalize(self.projector(self.encode(x_k)), dim=1)  # (N, C)
            k_swapped = F.normalize(self.encode_keys(x_q, 1 if shuffle else None), dim=1)  # (N, C)
            loss = loss + self.criterion(q_swapped, k_swapped, queue)
            new_keys.append(k_swapped)
        for keys in new_keys:
            self.queue.push(distributed.gather_no_grad(keys))  # (W·N, C) keys of every rank
        return loss, features


class MoCoV3(_MomentumMethod):
    """Args: projector_hidden / projector_dim (4096 / 256), predictor_hidden (4096); temperature τ
    (0.2; 1.0 for ResNet-50 on ImageNet); base_momentum (0.99 at the CIFAR scale, 0.996 ImageNet)
    with a cosine schedule to 1."""

    def __init__(
        self,
        projector_hidden: int = 4096,
        projector_dim: int = 256,
        predictor_hidden: int = 4096,
        temperature: float = 0.2,
        base_momentum: float = 0.99,
        momentum_schedule: str = "cosine",
        **kwargs,
    ) -> None:
        super().__init__(base_momentum, momentum_schedule, **kwargs)
        self.projector = mlp(self.feature_dim, projector_hidden, projector_dim, num_layers=3, last_bn=True)
        self.predictor = mlp(projector_dim, predictor_hidden, projector_dim, num_layers=2)
        self.build_momentum_branch()
        self.criterion = InfoNCE(temperature, validate=False)

    def contrastive_step(self, x1: Tensor, x2: Tensor) -> tuple[Tensor, Tensor]:
        self.update_momentum_encoder()
        n = x1.shape[0]
        x = torch.cat([x1, x2])  # (2N, C, H, W): both views in one forward
        features = self.encode(x)  # (2N, F)
        q = self.predictor(self.projector(features))  # (2N, D): q1 then q2
        k = self.encode_keys(x)  # (2N, D): k1 then k2
        # ctr(q1, k2) + ctr(q2, k1), each scaled by 2τ as in the reference code (moco-v3 builder.py).
        scale = 2.0 * self.criterion.tau()
        loss = scale * (self.criterion(q[:n], k[n:]) + self.criterion(q[n:], k[:n]))
        return loss, features[:n]
