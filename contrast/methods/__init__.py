"""Contrastive methods as LightningModules (one modality, and two towers: CrossModal), and the
linear evaluation of a pretrained backbone (LinearEval)."""

from contrast.methods.base import ContrastiveModule, TrainingBase
from contrast.methods.crossmodal import CrossModal
from contrast.methods.linear import LinearEval
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
    "linear": LinearEval,
}

__all__ = [
    "METHODS",
    "CrossModal",
    "NNCLR",
    "ContrastiveModule",
    "LinearEval",
    "MoCoV2",
    "MoCoV3",
    "SimCLR",
    "SupCon",
    "TrainingBase",
]
