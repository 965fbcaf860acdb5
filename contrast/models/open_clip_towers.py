"""open_clip models as both towers (``backbone`` and ``text_encoder``: ``open_clip/<model name>``,
e.g. ``open_clip/ViT-B-32``, ``open_clip/RN50``; ``pip install 'contrast[clip]'``).

The model is built by open_clip from its own configuration (``open_clip.create_model(name)``, no
download), then given the weights of a local file (``open_clip_weights``: open_clip's
``.safetensors``, or a ``.pt`` / ``.bin`` read with ``weights_only``, never unpickled). Its towers
embed as open_clip's ``encode_image`` and ``encode_text`` do (each ends in its own projection into
the model's ``embed_dim``: the cross-modal heads are then identities), its pixel normalisation and
image size are the model's, and its learned logit scale becomes the clip objective's temperature
(τ = 1 / scale). Captions are read by open_clip's tokenizer for the model (CLIP's byte-level BPE,
whose vocabulary ships inside open_clip's wheel): ``--data.tokenizer open_clip/<model name>``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from contrast.checks import ConfigError

PREFIX = "open_clip/"


def open_clip_name(spec: str) -> str | None:
    """``"open_clip/<name>"`` -> ``"<name>"``; None for the other towers and tokenizers."""
    return spec[len(PREFIX) :] if isinstance(spec, str) and spec.startswith(PREFIX) else None


def _open_clip(argument: str):
    try:
        import open_clip
    except ImportError:
        raise ConfigError(argument, "open_clip towers need open_clip: pip install 'contrast[clip]'") from None
    return open_clip


def create(name: str, weights: str | None = None) -> nn.Module:
    """open_clip's model ``name`` (its own configuration, random weights), then ``weights`` if given."""
    open_clip = _open_clip("backbone")
    if name not in open_clip.list_models():
        raise ConfigError(
            "backbone", f"backbone open_clip/{name}: not one of open_clip's models (open_clip.list_models())"
        )
    model = open_clip.create_model(name, pretrained=None, device="cpu")
    if weights is not None:
        state = read_weights(weights)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ConfigError(
                "open_clip_weights",
                f"open_clip_weights {weights}: not the weights of open_clip/{name} "
                f"({len(missing)} missing, e.g. {missing[:2]}; {len(unexpected)} unexpected, e.g. {unexpected[:2]})",
            )
    return model


def read_weights(path: str) -> dict[str, Tensor]:
    """A state dict from open_clip's ``.safetensors``, or a ``.pt`` / ``.bin`` read with
    ``weights_only`` (a ``state_dict`` entry and DDP's ``module.`` prefix unwrapped)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError("open_clip_weights", f"open_clip_weights {path}: no such file")
    try:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(file))
        else:
            state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - a file that is not weights: say so in one line
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
        raise ConfigError(
            "open_clip_weights", f"open_clip_weights {path}: not a safetensors or weights-only file ({first})"
        ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ConfigError("open_clip_weights", f"open_clip_weights {path}: holds no state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


def preprocess(model: nn.Module) -> dict:
    """The model's image size and pixel normalisation (open_clip's ``get_model_preprocess_cfg``)."""
    from open_clip import get_model_preprocess_cfg

    config = get_model_preprocess_cfg(model)
    size = config.get("size", 224)
    return {"size": size if isinstance(size, int) else int(size[0]), "mean": config["mean"], "std": config["std"]}


class OpenCLIPImage(nn.Module):
    """open_clip's image tower: (B, 3, S, S) normalised pixels -> (B, embed_dim), as ``encode_image``."""

    def __init__(self, visual: nn.Module, embed_dim: int) -> None:
        super().__init__()
        self.visual = visual
        self.feature_dim = embed_dim

    def forward(self, images: Tensor) -> Tensor:
        return self.visual(images)

    def layer_groups(self) -> list[list]:
        """open_clip's groups of ``lock_image_tower``: the stem, each block, the head."""
        v = self.visual
        if hasattr(v, "transformer"):  # VisionTransformer
            blocks = list(v.transformer.resblocks)
            stem = [v.conv1, v.class_embedding, v.positional_embedding, v.ln_pre]
            return [stem, *[[b] for b in blocks[:-1]], [blocks[-1], v.ln_post], [v.proj] if v.proj is not None else []]
        if hasattr(v, "layer4"):  # ModifiedResNet
            stem = [v.conv1, v.bn1, v.conv2, v.bn2, v.conv3, v.bn3]
            return [stem, [v.layer1], [v.layer2], [v.layer3], [v.layer4], [v.attnpool]]
        return [[v]]

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        if not hasattr(self.visual, "transformer"):
            raise ConfigError("grad_checkpointing", "grad_checkpointing: open_clip's ResNet towers do not offer it")
        self.visual.set_grad_checkpointing(enable)


class OpenCLIPText(nn.Module):
    """open_clip's text tower: (B, L) ids (0 = padding, L <= the context length) -> (B, embed_dim),
    as ``encode_text`` on the ids padded to the model's context length."""

    def __init__(self, model: nn.Module, embed_dim: int) -> None:
        super().__init__()
        self.clip = model  # its image tower taken out: the text parts, as ``encode_text`` reads them
        self.context_length = int(model.context_length)
        self.feature_dim = embed_dim
        for name in ("logit_scale", "logit_bias"):  # the objective's own temperature is what trains
            if isinstance(getattr(model, name, None), nn.Parameter):
                getattr(model, name).requires_grad_(False)

    def forward(self, tokens: Tensor) -> Tensor:
        if tokens.shape[1] > self.context_length:
            raise ValueError(f"tokens: at most {self.context_length} per caption, got {tokens.shape[1]}")
        padded = nn.functional.pad(tokens, (0, self.context_length - tokens.shape[1]))  # (B, context length)
        return self.clip.encode_text(padded)

    def layer_groups(self) -> list[list]:
        text = getattr(self.clip, "text", self.clip)
        blocks = list(text.transformer.resblocks)
        last = [blocks[-1], text.ln_final] + ([text.text_projection] if text.text_projection is not None else [])
        return [[text.token_embedding, text.positional_embedding], *[[b] for b in blocks[:-1]], last]

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        getattr(self.clip, "text", self.clip).transformer.grad_checkpointing = enable


def towers(name: str, weights: str | None = None) -> tuple[OpenCLIPImage, OpenCLIPText, dict]:
    """(image tower, text tower, facts: embed_dim, size, mean, std, logit_scale) of open_clip's ``name``."""
    model = create(name, weights)
    if hasattr(model, "text"):
        raise ConfigError("text_encoder", f"text_encoder open_clip/{name}: only CLIP-style text towers are read")
    facts = preprocess(model)
    embed_dim = int(model.visual.output_dim)
    facts |= {"embed_dim": embed_dim, "logit_scale": float(model.logit_scale.detach())}
    visual = model.visual
    model.visual = nn.Identity()  # the text tower keeps the rest
    return OpenCLIPImage(visual, embed_dim), OpenCLIPText(model, embed_dim), facts


class OpenCLIPTokenizer:
    """open_clip's tokenizer for a model, as a vocabulary: ids of the caption with its start and end
    tokens, truncated to ``max_length`` open_clip's way (the end token kept), padding left out."""

    def __init__(self, name: str) -> None:
        open_clip = _open_clip("tokenizer")
        if name not in open_clip.list_models():
            raise ConfigError("tokenizer", f"tokenizer open_clip/{name}: not one of open_clip's models")
        self.name, self.spec = name, PREFIX + name
        self.tokenizer = open_clip.get_tokenizer(name)
        self.context_length = int(self.tokenizer.context_length)
        self.size = int(getattr(self.tokenizer, "vocab_size", 0) or len(getattr(self.tokenizer, "encoder", {})))

    def __len__(self) -> int:
        return self.size

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OpenCLIPTokenizer) and self.name == other.name

    def encode(self, text: str, max_length: int) -> list[int]:
        ids = self.tokenizer([text], context_length=min(max_length, self.context_length))[0]  # (L,) padded with 0
        return ids[ids != 0].tolist()

    def encode_batch(self, texts: list[str], max_length: int) -> Tensor:
        from contrast.models.text import pad_ids

        return pad_ids([self.encode(text, max_length) for text in texts])

    def record(self) -> dict:
        """What the checkpoint keeps: the model's name (its vocabulary ships with open_clip)."""
        return {"open_clip": self.name}


def open_clip_text(backbone: str, text_encoder: str, tokens, built: dict | None) -> OpenCLIPText:
    """The text tower of the open_clip model built as the image tower: the three settings
    (backbone, text_encoder, the data's tokenizer) must name the same model."""
    name = open_clip_name(backbone)
    if name is None or open_clip_name(text_encoder) != name:
        raise ConfigError(
            "text_encoder",
            f"open_clip towers come as a pair: backbone {backbone!r} and text_encoder {text_encoder!r} must both be "
            "open_clip/<the same model>",
        )
    if not isinstance(tokens, OpenCLIPTokenizer) or tokens.name != name:
        raise ConfigError(
            "tokenizer", f"text_encoder open_clip/{name} reads its own ids: set --data.tokenizer open_clip/{name}"
        )
    return built["text"]
