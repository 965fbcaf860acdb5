"""Contrastive objectives: InfoNCE in both forms, a learnable temperature, pair losses, and the
cross-modal objectives (CLIP, SigLIP, cross-modal triplet, ACMR's modality adversary)."""

from contrast.losses.adversarial import grad_reverse, modality_loss
from contrast.losses.crossmodal import clip_loss, cross_modal_triplet
from contrast.losses.dcl import DCLLoss, dcl
from contrast.losses.infonce import InfoNCE, NTXent, info_nce, nt_xent
from contrast.losses.module import LossModule
from contrast.losses.pairs import cosine_embedding, hinge_embedding, margin_ranking, triplet_margin
from contrast.losses.siglip import SigLIPScale, siglip_loss
from contrast.losses.supcon import SupConLoss, sup_con
from contrast.losses.temperature import Temperature

__all__ = [
    "clip_loss",
    "siglip_loss",
    "SigLIPScale",
    "cross_modal_triplet",
    "grad_reverse",
    "modality_loss",
    "DCLLoss",
    "SupConLoss",
    "dcl",
    "sup_con",
    "InfoNCE",
    "LossModule",
    "NTXent",
    "Temperature",
    "cosine_embedding",
    "hinge_embedding",
    "info_nce",
    "margin_ranking",
    "nt_xent",
    "triplet_margin",
]
