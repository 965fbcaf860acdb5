"""A trained two-tower model out of contrast: ``contrast export`` of a CrossModal checkpoint writes
``model.safetensors`` (both towers, the heads, the temperature) and ``config.json`` (the model's
hyper-parameters: the towers' settings, the tokenizer's record, the pixel normalisation, a pretrained
text model's configuration), nothing pickled; :meth:`CrossModal.from_pretrained` loads it back.

Where the towers are open_clip's (``open_clip/<model>``), the folder also holds open_clip's own layout,
``open_clip_config.json`` + ``open_clip_model.safetensors`` (its state dict, the learned temperature
as its ``logit_scale``), so that open_clip reads the trained model back:
``open_clip.create_model_and_transforms("local-dir:FOLDER")``."""

from __future__ import annotations

import json
import os
from pathlib import Path

FORMAT = "contrast.CrossModal"
VERSION = 1


def _safetensors():
    try:
        import safetensors.torch
    except ImportError:
        raise ValueError("two-tower exports are safetensors files: pip install safetensors") from None
    return safetensors.torch


def _json_ready(value):
    if isinstance(value, tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_ready(v) for v in value]
    return value


def save_pretrained(model, folder: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``model`` (a CrossModal) to ``folder``: (weights file, config file), each atomically."""
    st = _safetensors()
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    state = {name: value.detach().cpu().contiguous().clone() for name, value in model.state_dict().items()}
    hparams = {k: v for k, v in dict(model.hparams).items() if not k.startswith("_")}
    for key in ("image_weights", "open_clip_weights"):  # the weights are in model.safetensors
        hparams.pop(key, None)
    weights, config = out / "model.safetensors", out / "config.json"
    st.save_file(state, str(weights) + ".partial", metadata={"format": FORMAT})
    os.replace(str(weights) + ".partial", weights)
    content = {"format": FORMAT, "version": VERSION, "hyper_parameters": _json_ready(hparams)}
    Path(str(config) + ".partial").write_text(json.dumps(content, indent=2))
    os.replace(str(config) + ".partial", config)
    if getattr(model, "_open_clip", None):
        save_open_clip(model, out)
    return weights, config


def save_open_clip(model, out: Path) -> None:
    """open_clip's hub layout of a model whose towers are open_clip's (see the module doc)."""
    import math

    import torch
    from open_clip import get_model_config, get_model_preprocess_cfg

    from contrast.models.open_clip_towers import open_clip_name

    st = _safetensors()
    name = open_clip_name(model.hparams.backbone)
    state = {}
    for key, value in model.state_dict().items():
        if key.startswith("backbone."):  # the image tower: open_clip's ``visual``
            state[key.removeprefix("backbone.")] = value
        elif key.startswith("text_encoder.clip."):  # the rest of open_clip's model
            state[key.removeprefix("text_encoder.clip.")] = value
    tau = float(model.tau())
    state["logit_scale"] = torch.tensor(math.log(1 / tau), dtype=state["logit_scale"].dtype)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}
    preprocess = {
        k: list(v) if isinstance(v, tuple) else v for k, v in get_model_preprocess_cfg(model.backbone).items()
    }
    weights = out / "open_clip_model.safetensors"
    st.save_file(state, str(weights) + ".partial")
    os.replace(str(weights) + ".partial", weights)
    config = out / "open_clip_config.json"
    Path(str(config) + ".partial").write_text(
        json.dumps({"model_cfg": get_model_config(name), "preprocess_cfg": preprocess}, indent=2)
    )
    os.replace(str(config) + ".partial", config)


def load_pretrained(cls, folder: str | os.PathLike, map_location: str = "cpu"):
    """The CrossModal ``save_pretrained`` wrote to ``folder``, in eval mode."""
    base = Path(folder)
    config, weights = base / "config.json", base / "model.safetensors"
    if not (config.is_file() and weights.is_file()):
        raise FileNotFoundError(f"{base}: not a two-tower export (expected config.json and model.safetensors)")
    content = json.loads(config.read_text())
    if content.get("format") != FORMAT or content.get("version") != VERSION:
        raise ValueError(f"{config}: not a {FORMAT} export of version {VERSION} ({content.get('format')!r})")
    model = cls(**content["hyper_parameters"])
    model.load_state_dict(_safetensors().load_file(str(weights), device="cpu"))
    return model.to(map_location).eval()
