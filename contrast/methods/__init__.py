"""Contrastive methods as LightningModules (one modality, and two towers: CrossModal)."""

from contrast.methods.base import ContrastiveModule, TrainingBase
from contrast.methods.crossmodal import CrossModal
from contrast.methods.moco import MoCoV2, MoCoV3
from contrast.methods.nnclr import NNCLR
from contrast.methods.simclr import SimCLR
from contrast.methods.supcon import SupCon

# Name -> method class.
METHODS = {
    "simclr": SimCLR,
    "moco_v2": MoCoV2,
    "moco_v3": MoCoV3,
    "supcon": SupCon,
    "nnclr": NNCLR,
    "crossmodal": CrossModal,
}

__all__ = [
    "METHODS",
    "CrossModal",
    "NNCLR",
    "ContrastiveModule",
    "MoCoV2",
    "MoCoV3",
    "SimCLR",
    "SupCon",
    "TrainingBase",
]
