"""Encoders, heads and the momentum branch."""

from contrast.models.backbones import CUSTOM_BACKBONES, TinyCNN, build_backbone
from contrast.models.heads import linear_head, mlp
from contrast.models.momentum import Queue, cosine_momentum, ema_update, momentum_copy

__all__ = [
    "CUSTOM_BACKBONES",
    "Queue",
    "TinyCNN",
    "build_backbone",
    "cosine_momentum",
    "ema_update",
    "linear_head",
    "mlp",
    "momentum_copy",
]
