"""Export a pretrained backbone as a plain ``state_dict`` plus a JSON of its architecture.

``backbone.json`` also says how to build the matching model without this package (for a ResNet
with the CIFAR stem: torchvision's ResNet with a 3×3 stride-1 ``conv1`` and no max-pool), so the
weights load anywhere::

    model = torchvision.models.resnet18(weights=None)
    model.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)   # CIFAR stem only
    model.maxpool = torch.nn.Identity()                           # CIFAR stem only
    model.fc = torch.nn.Identity()
    model.load_state_dict(torch.load("exported/backbone.pt", weights_only=True))
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

from contrast.checkpoint import CheckpointError, atomic_save, check_archive, read_checkpoint
from contrast.checks import ConfigError
from contrast.models import build_backbone
from contrast.models.published import hf_weights, hub_weights
from contrast.normalization import Normalization, recorded
from contrast.views import get_recipe

ARCH_KEYS = ("backbone", "cifar_stem", "in_channels")


def normalization(checkpoint: dict) -> dict:
    """``{"mean": [...], "std": [...]}``: how the encoder's input pixels (scaled to [0, 1]) were
    normalised in training, as the checkpoint records it (:func:`contrast.normalization.recorded`);
    ``{}`` when it records none (never guessed from a recipe's name)."""
    found = recorded(checkpoint.get("hyper_parameters", {}))
    return {} if found is None else found.record()


def backbone_from_checkpoint(checkpoint: dict | str | os.PathLike) -> tuple[nn.Module, dict]:
    """(the backbone with the checkpoint's weights, its architecture: backbone, cifar_stem,
    in_channels, and ``mean`` / ``std`` of its input normalisation where the checkpoint records them)."""
    source = checkpoint if not isinstance(checkpoint, dict) else "the checkpoint"
    if not isinstance(checkpoint, dict):
        checkpoint = read_checkpoint(checkpoint)
    hparams = checkpoint.get("hyper_parameters", {})
    missing = [k for k in ARCH_KEYS if k not in hparams]
    if missing:
        raise CheckpointError(f"{source} is not a contrast checkpoint (its hyper_parameters lack {missing})")
    arch = {k: hparams[k] for k in ARCH_KEYS} | normalization(checkpoint)
    state = {k[len("backbone.") :]: v for k, v in checkpoint["state_dict"].items() if k.startswith("backbone.")}
    model = build_backbone(arch["backbone"], cifar_stem=arch["cifar_stem"], in_channels=arch["in_channels"])
    model.load_state_dict(state)  # fails loudly if the architecture does not match
    return model, arch


def torchvision_recipe(arch: dict, feature_dim: int) -> list[str]:
    """Python lines that build the exported architecture from torchvision (or this package's
    tiny CNN), load ``backbone.pt`` into it and, where recorded, normalise its input as in training."""
    name, stem, channels = arch["backbone"], arch["cifar_stem"], arch["in_channels"]
    if name.startswith("timm/"):
        extra = ", img_size=32, patch_size=4" if stem else ""
        model_name = name.removeprefix("timm/")
        lines = [
            f'model = timm.create_model("{model_name}", pretrained=False, num_classes=0, in_chans={channels}{extra})'
        ]
    elif name.startswith("tiny_cnn"):
        width = int(name.removeprefix("tiny_cnn_w") or 16) if name != "tiny_cnn" else 16
        lines = [f"model = contrast.models.TinyCNN(in_channels={channels}, width={width})  # not in torchvision"]
    else:
        lines = [f"model = torchvision.models.{name}(weights=None)"]
        if stem or channels != 3:
            kernel, stride, padding = (3, 1, 1) if stem else (7, 2, 3)
            lines.append(
                f"model.conv1 = torch.nn.Conv2d({channels}, model.conv1.out_channels, {kernel}, {stride}, {padding}, "
                "bias=False)"
            )
        if stem:
            lines.append("model.maxpool = torch.nn.Identity()")
        lines.append(f"{_classifier_path(name)} = torch.nn.Identity()  # features of width {feature_dim}")
    lines.append('model.load_state_dict(torch.load("backbone.pt", weights_only=True))')
    if "mean" in arch:  # the input the weights were trained on
        lines.append(
            f"normalize = torchvision.transforms.v2.Normalize(mean={arch['mean']}, std={arch['std']})"
            "  # on float images in [0, 1]"
        )
    return lines


def _classifier_path(name: str) -> str:
    """Where the last Linear of torchvision's ``name`` sits (``model.fc`` for ResNets)."""
    import torchvision

    reference = torchvision.models.get_model(name, weights=None)
    for attr in ("fc", "classifier", "head", "heads"):
        head = getattr(reference, attr, None)
        if isinstance(head, nn.Linear):
            return f"model.{attr}"
        if isinstance(head, nn.Module):
            linears = [path for path, child in head.named_modules() if isinstance(child, nn.Linear)]
            if linears:
                parts = linears[-1].split(".")
                return f"model.{attr}" + "".join(f"[{p}]" if p.isdigit() else f".{p}" for p in parts)
    return "model.fc"


def export_backbone(
    checkpoint_path: str | os.PathLike, out_dir: str | os.PathLike, recipe: str | None = None
) -> tuple[Path, Path]:
    """Write ``<out_dir>/backbone.pt`` (the backbone's state_dict) and ``<out_dir>/backbone.json``
    (its architecture, its input normalisation and the lines that build it from torchvision).

    The normalisation is the checkpoint's record; a checkpoint that records none (written before
    the record) is refused unless ``recipe`` names the recipe it was pretrained with."""
    model, arch = backbone_from_checkpoint(checkpoint_path)
    if recipe is not None:
        stated = get_recipe(recipe, "recipe").normalization
        if "mean" in arch and not stated.same(Normalization.of(arch)):
            raise ConfigError(
                "recipe",
                f"recipe {recipe!r} normalises with {stated}, but {checkpoint_path} records {Normalization.of(arch)}",
            )
        arch |= stated.record()
    if "mean" not in arch:
        raise CheckpointError(
            f"{checkpoint_path} records no pixel normalisation (written before checkpoints recorded it), and export "
            "does not guess it from the recipe's name: give the recipe it was pretrained with, --recipe NAME"
        )
    arch |= {"feature_dim": model.feature_dim, "build": torchvision_recipe(arch, model.feature_dim)}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    weights, meta = out / "backbone.pt", out / "backbone.json"
    atomic_save(model.state_dict(), weights)
    meta.write_text(json.dumps(arch, indent=2, ensure_ascii=False) + "\n")
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
    check_archive(weights)
    model = build_backbone(arch["backbone"], cifar_stem=arch["cifar_stem"], in_channels=arch["in_channels"])
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return model


def pretrained_backbone(weights: str) -> tuple[nn.Module, dict]:
    """(backbone, its architecture: backbone, cifar_stem, in_channels and, where known, ``mean`` /
    ``std`` of its input) from ``weights``: a ``contrast fit`` checkpoint file, a ``contrast export``
    folder (or its backbone.pt / backbone.json), ``torchvision/<name>[:<WEIGHTS>]`` (torchvision's
    pretrained weights, DEFAULT when none is named) or ``timm/<name>`` (timm's). Named weights come
    from the torch hub and Hugging Face caches, checked against their published SHA-256 and read
    without unpickling (:mod:`contrast.models.published`); offline, a missing file is an error that
    says where it belongs."""
    if weights.startswith("torchvision/"):
        return _torchvision_pretrained(weights)
    if weights.startswith("timm/"):
        return _timm_pretrained(weights)
    source = Path(weights)
    if source.is_dir() or source.name in ("backbone.pt", "backbone.json"):
        folder = source if source.is_dir() else source.parent
        model = load_backbone(folder)
        return model, json.loads((folder / "backbone.json").read_text())
    if not source.is_file():
        raise FileNotFoundError(
            f"weights: {weights} is neither a checkpoint file, an export folder, torchvision/<name> nor timm/<name>"
        )
    checkpoint = read_checkpoint(source)
    if not any(k.startswith("backbone.") for k in checkpoint.get("state_dict", {})):
        raise CheckpointError(
            f"weights: {weights} holds no backbone weights (no state_dict key starts with 'backbone.')"
        )
    return backbone_from_checkpoint(checkpoint)


def _torchvision_pretrained(weights: str) -> tuple[nn.Module, dict]:
    import torchvision

    name, _, tag = weights.removeprefix("torchvision/").partition(":")
    try:
        enum = torchvision.models.get_model_weights(name)
    except ValueError as error:
        raise ConfigError("weights", f"weights: torchvision has no model {name!r} ({error})") from None
    try:
        chosen = enum[tag or "DEFAULT"] if tag != "DEFAULT" else enum.DEFAULT
    except KeyError:
        raise ConfigError(
            "weights", f"weights: torchvision's {name} has no weights {tag!r}; choose one of {[w.name for w in enum]}"
        ) from None
    state = hub_weights(chosen.url, weights)
    model = build_backbone(name)
    head = _classifier_path(name).removeprefix("model.").split("[")[0].split(".")[0]
    model.load_state_dict({k: v for k, v in state.items() if not k.startswith(head + ".")})
    transform = chosen.transforms()
    arch = {"backbone": name, "cifar_stem": False, "in_channels": 3}
    return model, arch | {"mean": list(transform.mean), "std": list(transform.std)}


def _timm_pretrained(weights: str) -> tuple[nn.Module, dict]:
    try:
        import timm
    except ImportError:
        raise ConfigError("weights", f"weights: {weights} needs timm (pip install timm)") from None
    name = weights.removeprefix("timm/")
    try:
        config = timm.create_model(name, pretrained=False, num_classes=0).pretrained_cfg
    except Exception as error:  # noqa: BLE001 - an unknown name
        raise ConfigError("weights", f"weights: timm has no model {name!r} ({error})") from None
    if config.get("hf_hub_id"):
        state = hf_weights(config["hf_hub_id"], config.get("hf_hub_filename"), weights)
    elif config.get("url"):
        state = hub_weights(config["url"], weights)
    else:
        raise ConfigError("weights", f"weights: timm publishes no weights for {name!r}")
    # timm adapts the state dict to the model (its filter_fn: classifier, position embeddings)
    overlay = {"state_dict": state, "source": "", "file": None}
    model = timm.create_model(name, pretrained=True, num_classes=0, pretrained_cfg_overlay=overlay)
    model.pretrained_cfg.pop("state_dict", None)  # loaded; not a second copy of the weights
    model.feature_dim = model.num_features
    config = model.pretrained_cfg
    arch = {"backbone": weights, "cifar_stem": False, "in_channels": 3}
    return model, arch | {"mean": list(config["mean"]), "std": list(config["std"])}
