"""A trained two-tower model out of contrast: ``contrast export`` of a CrossModal checkpoint writes
``model.safetensors`` (both towers, the heads, the temperature) and ``config.json`` (the model's
hyper-parameters: the towers' settings, the tokenizer's record, the pixel normalisation, a pretrained
text model's configuration), nothing pickled; :meth:`CrossModal.from_pretrained` loads it back.

Where the towers are open_clip's (``open_clip/<model>``), the folder also holds open_clip's own layout,
``open_clip_config.json`` + ``open_clip_model.safetensors`` (its state dict, the learned temperature
as its ``logit_scale``), so that open_clip reads the trained model back:
``open_clip.create_model_and_transforms("local-dir:FOLDER")``.

Where both towers are Hugging Face models pooled by their ``pooler_output`` and projected by one
Linear without bias (``backbone: hf/…``, ``text_encoder: hf/…``, ``image_pooler``/``text_pooler:
pooler``, ``projection: linear``), ``FOLDER/hf`` holds the model as HF's
``VisionTextDualEncoderModel`` (its config and safetensors, the learned temperature as its
``logit_scale``), the tokenizer's ``tokenizer.json`` and the pixel normalisation as an image processor's
``preprocessor_config.json``: ``VisionTextDualEncoderModel.from_pretrained(FOLDER / "hf")``. Its
``get_text_features`` take the tokenizer's own ids (contrast's shifted back by one)."""

from __future__ import annotations

import json
import os
import shutil
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
    if hf_dual_encoder_ready(model) is None:
        save_hf_dual_encoder(model, out / "hf")
    return weights, config


def hf_dual_encoder_ready(model) -> str | None:
    """None where ``model`` is an HF ``VisionTextDualEncoderModel`` in all but name, else why not."""
    from contrast.models.hf import HFTextTower, HFVisionTower

    hp = model.hparams
    if not (isinstance(model.backbone, HFVisionTower) and isinstance(model.text_encoder, HFTextTower)):
        return "its towers are not both Hugging Face models (backbone and text_encoder hf/…)"
    if hp.image_pooler != "pooler" or hp.text_pooler != "pooler":
        return "the dual encoder pools by pooler_output: image_pooler and text_pooler pooler"
    if hp.projection != "linear":
        return "the dual encoder projects by one Linear without bias: projection linear"
    return None


def save_hf_dual_encoder(model, out: Path) -> None:
    """HF's ``VisionTextDualEncoderModel`` layout of a model whose towers are HF's (see the module doc)."""
    import math

    import torch
    import transformers
    from tokenizers import Tokenizer

    vision, text = model.backbone.transformer, model.text_encoder.transformer
    config = transformers.VisionTextDualEncoderConfig.from_vision_text_configs(
        vision.config, text.config, projection_dim=model.hparams.embed_dim, logit_scale_init_value=2.6592
    )
    dual = transformers.VisionTextDualEncoderModel(config=config)  # its own copy of each tower
    dual.vision_model.load_state_dict(vision.state_dict())
    dual.text_model.load_state_dict(text.state_dict())
    with torch.no_grad():
        dual.visual_projection.weight.copy_(model.image_head.weight)
        dual.text_projection.weight.copy_(model.text_head.weight)
        dual.logit_scale.fill_(math.log(1 / float(model.tau())))
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    dual.save_pretrained(partial, safe_serialization=True)
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(model.hparams.vocabulary["tokenizer"])
    )
    tokenizer.save_pretrained(partial)
    normalization = model.hparams.normalization
    size = {"size": {"height": model.backbone.size, "width": model.backbone.size}} if model.backbone.size else {}
    processor = transformers.ViTImageProcessor(
        image_mean=list(normalization["mean"]), image_std=list(normalization["std"]), **size
    )
    processor.save_pretrained(partial)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(partial, out)


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
