"""Contrastive methods as LightningModules."""

from contrast.methods.base import ContrastiveModule
from contrast.methods.moco import MoCoV2, MoCoV3
from contrast.methods.simclr import SimCLR

# Name -> method class.
METHODS = {"simclr": SimCLR, "moco_v2": MoCoV2, "moco_v3": MoCoV3}

__all__ = ["METHODS", "ContrastiveModule", "MoCoV2", "MoCoV3", "SimCLR"]
