"""Export a pretrained backbone as a plain ``state_dict`` plus a JSON of its architecture."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

from contrast.checkpoint import atomic_save
from contrast.models import build_backbone

ARCH_KEYS = ("backbone", "cifar_stem", "in_channels")


def load_checkpoint(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    return torch.load(path, map_location="cpu", weights_only=True)


def export_backbone(checkpoint_path: str | os.PathLike, out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``<out_dir>/backbone.pt`` (the backbone's state_dict) and ``<out_dir>/backbone.json``."""
    checkpoint = load_checkpoint(checkpoint_path)
    hparams = checkpoint.get("hyper_parameters", {})
    missing = [k for k in ARCH_KEYS if k not in hparams]
    if missing:
        raise ValueError(f"{checkpoint_path} is not a contrast checkpoint (hyper_parameters lack {missing})")
    state = {k[len("backbone.") :]: v for k, v in checkpoint["state_dict"].items() if k.startswith("backbone.")}
    model = build_backbone(hparams["backbone"], cifar_stem=hparams["cifar_stem"], in_channels=hparams["in_channels"])
    model.load_state_dict(state)  # fails loudly if the architecture does not match
    arch = {k: hparams[k] for k in ARCH_KEYS} | {"feature_dim": model.feature_dim}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    weights, meta = out / "backbone.pt", out / "backbone.json"
    atomic_save(state, weights)
    meta.write_text(json.dumps(arch, indent=2) + "\n")
    return weights, meta


def load_backbone(path: str | os.PathLike) -> nn.Module:
    """Load an exported backbone: ``path`` is the export folder, or its ``backbone.pt`` /
    ``backbone.json``. Returns the torchvision (or tiny_cnn) model with ``feature_dim`` set,
    its classifier replaced by Identity. Loaded with ``weights_only=True``."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    meta, weights = folder / "backbone.json", folder / "backbone.pt"
    for f in (meta, weights):
        if not f.is_file():
            raise FileNotFoundError(
                f"{f} not found; export a checkpoint with `contrast export --ckpt ... --out {folder}`"
            )
    arch = json.loads(meta.read_text())
    model = build_backbone(arch["backbone"], cifar_stem=arch["cifar_stem"], in_channels=arch["in_channels"])
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return model
