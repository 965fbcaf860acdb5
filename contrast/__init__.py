"""contrast: self-supervised contrastive pretraining."""

from contrast.export import load_backbone
from contrast.losses import InfoNCE, NTXent, Temperature, info_nce, nt_xent

__version__ = "0.1.0"

__all__ = ["InfoNCE", "NTXent", "Temperature", "info_nce", "load_backbone", "nt_xent", "__version__"]
