"""contrast: self-supervised contrastive pretraining.

The names below load on first use (PEP 562), so that a command that needs no torch (``contrast
index``: numpy and FAISS only) does not pay for importing torch and Lightning (about 0.9 GB resident).
"""

from importlib import import_module

__version__ = "0.1.0"

_LAZY = {
    "InfoNCE": "contrast.losses",
    "NTXent": "contrast.losses",
    "Temperature": "contrast.losses",
    "info_nce": "contrast.losses",
    "nt_xent": "contrast.losses",
    "load_backbone": "contrast.export",
}

__all__ = ["InfoNCE", "NTXent", "Temperature", "info_nce", "load_backbone", "nt_xent", "__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'contrast' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
