"""Contrastive objectives: InfoNCE in both forms, a learnable temperature, and pair losses."""

from contrast.losses.dcl import DCLLoss, dcl
from contrast.losses.infonce import InfoNCE, NTXent, info_nce, nt_xent
from contrast.losses.pairs import cosine_embedding, hinge_embedding, margin_ranking, triplet_margin
from contrast.losses.supcon import SupConLoss, sup_con
from contrast.losses.temperature import Temperature

__all__ = [
    "DCLLoss",
    "SupConLoss",
    "dcl",
    "sup_con",
    "InfoNCE",
    "NTXent",
    "Temperature",
    "cosine_embedding",
    "hinge_embedding",
    "info_nce",
    "margin_ranking",
    "nt_xent",
    "triplet_margin",
]
