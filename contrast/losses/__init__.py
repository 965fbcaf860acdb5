"""Contrastive objectives: InfoNCE in both forms, a learnable temperature, and pair losses."""

from contrast.losses.infonce import InfoNCE, NTXent, info_nce, nt_xent
from contrast.losses.pairs import cosine_embedding, hinge_embedding, margin_ranking, triplet_margin
from contrast.losses.temperature import Temperature

__all__ = [
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
