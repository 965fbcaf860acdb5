"""Pretrained towers from Hugging Face ``transformers``: text (``text_encoder: hf/<name or folder>``) and
images (``backbone: hf/<name or folder>`` of a CrossModal).

* :class:`PretrainedTokenizer`: the model's own fast tokenizer (``AutoTokenizer``), as a vocabulary
  of the data (``--data.tokenizer hf/<name>``). Its ids are shifted by one, so that id 0 is padding
  for every vocabulary of contrast (and every collate pads with 0); the tower shifts them back. The
  checkpoint keeps the tokenizer's JSON (``tokenizer.json``), never a pickle.
* :class:`HFTextTower`: ``AutoModel`` with one of open_clip's poolers (``cls``: the first token's
  last hidden state; ``mean``: the mean over the caption's tokens; ``last``: the last token's, the
  end-of-text token of GPT-style models) giving ``feature_dim`` = the model's hidden size; the
  cross-modal text head projects it into the shared space. ``pooler``: the model's own
  ``pooler_output`` (BERT's dense + tanh over the first token, CLIP's final-norm end token), what
  open_clip's ``cls_pooler`` and HF's ``VisionTextDualEncoderModel`` take.
* :class:`HFVisionTower`: ``AutoModel`` of a vision configuration (ViT, CLIP's vision model, DINOv2,
  …) over normalised pixels, pooled by ``pooler`` (``pooler_output``, as the dual encoder), ``cls``
  or ``mean`` over the tokens after the class token; the pixel normalisation comes from the folder's
  ``preprocessor_config.json`` where it has one.

Loading reads a local ``save_pretrained`` folder, or a hub name where a network or a filled cache is
at hand; with ``HF_HUB_OFFLINE=1`` only local files are tried. Weights are read from safetensors only
(never unpickled), and no model's remote code runs (``trust_remote_code=False``). A checkpoint
records the model's configuration, so :meth:`CrossModal.from_checkpoint` rebuilds the tower
without the folder (its weights are in the checkpoint).
"""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path

import torch
from torch import Tensor, nn

from contrast.checks import ConfigError, one_of

PREFIX = "hf/"
POOLERS = ("cls", "mean", "last", "pooler")
IMAGE_POOLERS = ("pooler", "cls", "mean")


def hf_name(spec: str) -> str | None:
    """``"hf/<name>"`` -> ``"<name>"``; None for the other encoders and tokenizers."""
    return spec[len(PREFIX) :] if isinstance(spec, str) and spec.startswith(PREFIX) else None


def _transformers(argument: str = "text_encoder"):
    try:
        import transformers
    except ImportError:
        raise ConfigError(
            argument, f"pretrained towers ({argument}: hf/<name>) need transformers: pip install 'contrast[hf]'"
        ) from None
    return transformers


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _load(what: str, argument: str, name: str, loader):
    """``loader(name, **options)`` with local-only reading when offline; one line when it fails."""
    local = Path(name).expanduser()
    options = {"trust_remote_code": False, "local_files_only": _offline() or local.is_dir()}
    try:
        return loader(str(local) if local.is_dir() else name, **options)
    except (OSError, ValueError) as error:
        where = (
            "a local folder that does not hold one"
            if local.is_dir()
            else "neither a local folder nor in the hub cache (HF_HUB_OFFLINE is set)"
            if _offline()
            else "neither a local folder nor reachable on the hub (without a network: save_pretrained a copy, "
            "or set HF_HUB_OFFLINE=1 to use the cache)"
        )
        first = str(error).strip().splitlines()[0][:160] if str(error).strip() else type(error).__name__
        raise ConfigError(argument, f"{argument} hf/{name}: {what} not found: {where} ({first})") from None


class PretrainedTokenizer:
    """A pretrained model's fast tokenizer as a vocabulary: ``encode(text, max_length)`` gives the
    model's ids (special tokens included, truncated to ``max_length`` by the tokenizer, so the end
    token stays) plus one; 0 is padding."""

    def __init__(self, name: str, tokenizer_json: str) -> None:
        from tokenizers import Tokenizer

        self.name, self.json = name, tokenizer_json
        self.spec = PREFIX + name
        try:
            self.tokenizer = Tokenizer.from_str(tokenizer_json)
        except Exception as error:  # noqa: BLE001 - the library's own parse errors
            raise ValueError(f"vocabulary: hf/{name}: not a tokenizers JSON ({str(error)[:120]})") from None
        self.tokenizer.no_padding()
        self._truncation: int | None = None

    @classmethod
    def load(cls, name: str) -> PretrainedTokenizer:
        """The tokenizer of ``hf/<name>`` (a folder or a hub name; see the module)."""
        transformers = _transformers()
        tokenizer = _load(
            "tokenizer", "tokenizer", name, lambda n, **o: transformers.AutoTokenizer.from_pretrained(n, **o)
        )
        if not getattr(tokenizer, "is_fast", False):
            raise ConfigError("tokenizer", f"tokenizer hf/{name}: only fast tokenizers (a tokenizer.json) are read")
        return cls(name, tokenizer.backend_tokenizer.to_str())

    def __len__(self) -> int:
        return self.tokenizer.get_vocab_size(with_added_tokens=True) + 1  # the ids as given: shifted by one

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PretrainedTokenizer) and self.json == other.json

    def encode(self, text: str, max_length: int) -> list[int]:
        if self._truncation != max_length:
            self.tokenizer.enable_truncation(max_length)
            self._truncation = max_length
        return [i + 1 for i in self.tokenizer.encode(text).ids] or [1]

    def encode_batch(self, texts: list[str], max_length: int) -> Tensor:
        from contrast.models.text import pad_ids

        return pad_ids([self.encode(text, max_length) for text in texts])

    def record(self) -> dict:
        """What the checkpoint keeps (the data's fact ``vocabulary``): the name and the tokenizer's JSON."""
        return {"hf": self.name, "tokenizer": self.json}


class _HFTower(nn.Module):
    """A ``transformers`` model as a tower: built from a recorded configuration (a checkpoint's; weights
    to come from a state dict) or loaded from ``name`` (safetensors only, no remote code)."""

    def __init__(self, name: str, argument: str, config: dict | None) -> None:
        super().__init__()
        transformers = _transformers(argument)
        if config is not None:
            settings = transformers.AutoConfig.for_model(**config)
            self.transformer = transformers.AutoModel.from_config(settings)
        else:

            def load(n, **options):
                return transformers.AutoModel.from_pretrained(n, use_safetensors=True, **options)

            self.transformer = _load("model", argument, name, load)
        self.name = name

    def config_record(self) -> dict:
        """The model's configuration, as the checkpoint keeps it (JSON values only)."""
        return self.transformer.config.to_dict()

    def layer_groups(self) -> list[list[nn.Module]]:
        """Embeddings, then each block (the modules after the blocks, a final norm, go with the last):
        the groups :func:`contrast.models.locking.lock` unlocks from the end."""
        base = getattr(self.transformer, "base_model", self.transformer)
        blocks = max((m for m in base.modules() if isinstance(m, nn.ModuleList)), key=len, default=None)
        if blocks is None or not len(blocks):
            return [[base]]
        before, after, holder = [], [], None
        for child in base.children():
            contains = child is blocks or any(m is blocks for m in child.modules())
            if contains:
                holder = child
            elif any(True for _ in child.parameters()):
                (after if holder is not None else before).append(child)
        groups = [[layer] for layer in blocks]
        if holder is not None and holder is not blocks:  # what the holder has besides its blocks (a norm)
            inside = {id(p) for layer in blocks for p in layer.parameters()}
            rest = [
                m for m in holder.children() if m is not blocks and any(id(p) not in inside for p in m.parameters())
            ]
            groups[-1] += rest
        groups[-1] += after
        return [before, *groups] if before else groups

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        if not getattr(self.transformer, "supports_gradient_checkpointing", False):
            raise ConfigError("grad_checkpointing", f"grad_checkpointing: hf/{self.name} does not support it")
        model = self.transformer  # transformers 5 names it activation checkpointing, 4 gradient checkpointing
        if enable and hasattr(model, "activation_checkpointing_enable"):
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        elif enable:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        else:
            (getattr(model, "activation_checkpointing_disable", None) or model.gradient_checkpointing_disable)()

    def _pooled_output(self, output) -> Tensor:
        pooled = getattr(output, "pooler_output", None)
        if pooled is None:
            argument = "image_pooler" if isinstance(self, HFVisionTower) else "text_pooler"
            model = type(self.transformer).__name__
            message = f"{argument}: hf/{self.name} ({model}) has no pooler_output; pool by cls or mean"
            raise ConfigError(argument, message)
        return pooled.flatten(1)  # (B, H): a convolutional model's (B, C, 1, 1) too


class HFTextTower(_HFTower):
    """(B, L) ids shifted by one (0 = padding) -> (B, hidden size), pooled by ``pooler``.

    ``config``: a recorded configuration (a checkpoint's): the model is built from it, weights to
    come from a state dict; otherwise the pretrained model of ``name`` is loaded."""

    def __init__(self, name: str, pooler: str = "mean", config: dict | None = None) -> None:
        one_of("text_pooler", pooler, POOLERS)
        super().__init__(name, "text_encoder", config)
        settings = self.transformer.config
        if getattr(settings, "is_encoder_decoder", False):
            raise ConfigError(
                "text_encoder",
                f"text_encoder hf/{name}: an encoder-decoder model; give an encoder (BERT-like) or GPT-like one",
            )
        self.pooler = pooler
        self.feature_dim = int(settings.hidden_size)
        self.max_positions = getattr(settings, "max_position_embeddings", None)
        self.vocab_size = int(settings.vocab_size)

    def forward(self, tokens: Tensor) -> Tensor:
        if self.max_positions is not None and tokens.shape[1] > self.max_positions:
            raise ValueError(
                f"tokens: hf/{self.name} takes at most {self.max_positions} tokens, got {tokens.shape[1]}; "
                "lower the data's max_length"
            )
        mask = tokens != 0  # (B, L)
        ids = (tokens - 1).clamp_min(0)  # (B, L): the model's own ids
        output = self.transformer(input_ids=ids, attention_mask=mask.long())
        if self.pooler == "pooler":
            return self._pooled_output(output)  # (B, H)
        hidden = output.last_hidden_state  # (B, L, H)
        if self.pooler == "cls":
            return hidden[:, 0]  # (B, H)
        if self.pooler == "last":
            last = mask.long().sum(1).clamp_min(1) - 1  # (B,): the last token of each caption
            return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]  # (B, H)
        keep = mask.unsqueeze(-1).to(hidden.dtype)  # (B, L, 1)
        return (hidden * keep).sum(1) / keep.sum(1).clamp_min(1)  # (B, H)


class HFVisionTower(_HFTower):
    """(B, C, H, W) normalised pixels -> (B, width), pooled by ``pooler`` (see the module); ``size``: the
    side the model takes (its configuration's ``image_size``; None where any size goes)."""

    def __init__(self, name: str, pooler: str = "pooler", config: dict | None = None) -> None:
        one_of("image_pooler", pooler, IMAGE_POOLERS)
        super().__init__(name, "backbone", config)
        settings = self.transformer.config
        if "pixel_values" not in inspect.signature(self.transformer.forward).parameters:
            raise ConfigError("backbone", f"backbone hf/{name}: {type(self.transformer).__name__} takes no images")
        width = getattr(settings, "hidden_size", None) or (getattr(settings, "hidden_sizes", None) or [None])[-1]
        if width is None:
            raise ConfigError("backbone", f"backbone hf/{name}: its configuration names no hidden size")
        self.pooler, self.feature_dim = pooler, int(width)
        size = getattr(settings, "image_size", None)
        self.size = int(size) if isinstance(size, int) else None

    def normalization(self) -> dict | None:
        """{"mean", "std"} of the folder's image processor (``preprocessor_config.json``), else None."""
        local = Path(self.name).expanduser() / "preprocessor_config.json"
        if not local.is_file():
            return None
        settings = json.loads(local.read_text())
        if "image_mean" not in settings or "image_std" not in settings:
            return None
        return {"mean": tuple(map(float, settings["image_mean"])), "std": tuple(map(float, settings["image_std"]))}

    def forward(self, images: Tensor) -> Tensor:
        if self.size is not None and tuple(images.shape[-2:]) != (self.size, self.size):
            raise ValueError(
                f"images: hf/{self.name} takes {self.size}-px images, got {tuple(images.shape[-2:])}; "
                f"set the data's image_size to {self.size}"
            )
        output = self.transformer(pixel_values=images)
        if self.pooler == "pooler":
            return self._pooled_output(output)  # (B, W)
        hidden = output.last_hidden_state  # (B, T, W)
        return hidden[:, 0] if self.pooler == "cls" else hidden[:, 1:].mean(1)  # (B, W)


def check_tokenizer(tower: HFTextTower, tokenizer) -> None:
    """A pretrained tower reads the ids of a tokenizer that fits it: its own kind, ids within its
    embeddings."""
    if not isinstance(tokenizer, PretrainedTokenizer):
        raise ConfigError(
            "text_encoder",
            f"text_encoder hf/{tower.name} reads its own tokenizer's ids, but the data's vocabulary is built "
            f"from the captions: set --data.tokenizer hf/{tower.name}",
        )
    if len(tokenizer) - 1 > tower.vocab_size:
        raise ConfigError(
            "tokenizer",
            f"tokenizer hf/{tokenizer.name} has {len(tokenizer) - 1} ids, but the embeddings of text_encoder "
            f"hf/{tower.name} hold {tower.vocab_size}: the tokenizer does not fit the model",
        )
