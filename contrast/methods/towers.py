"""How :class:`~contrast.methods.crossmodal.CrossModal` builds its two towers from its settings and
the data's facts: the image encoder (a registry backbone, exported weights, open_clip's, or none for
vectors) and its pixel normalisation; the text encoder that reads the data's tokenizer (trained from
scratch over words or BPE pieces, a pretrained Hugging Face model, open_clip's text tower); the heads
into the shared space and ACMR's classifiers."""

from __future__ import annotations

from torch import nn

from contrast.checks import ConfigError, one_of
from contrast.export import pretrained_backbone
from contrast.methods.base import TrainingBase
from contrast.models import mlp
from contrast.models.hf import HFTextTower, HFVisionTower, PretrainedTokenizer, check_tokenizer, hf_name
from contrast.models.open_clip_towers import OpenCLIPTokenizer, open_clip_name, open_clip_text
from contrast.models.open_clip_towers import towers as open_clip_towers
from contrast.models.text import build_text_encoder, vocabulary_of
from contrast.normalization import Normalization


def open_clip_image_tower(hp) -> tuple[nn.Module, dict, Normalization]:
    """(open_clip's image tower, {"text": its text tower, "facts": embed_dim, size, mean, std,
    logit_scale}, its pixel normalisation) for ``backbone: open_clip/<name>``."""
    image, text, facts = open_clip_towers(open_clip_name(hp.backbone), hp.open_clip_weights)
    normalization = Normalization.of({"mean": facts["mean"], "std": facts["std"]})
    return image, {"text": text, "facts": facts}, normalization  # a plain dict: the text tower is registered later


def text_tower(hp, vocabulary: list[str] | str | dict, open_clip: dict | None) -> tuple[nn.Module, int]:
    """(the text encoder, its width) for captions in this vocabulary: open_clip's text tower (with
    its image tower), a pretrained Hugging Face model (with its own tokenizer), or one trained from
    scratch over the words or BPE pieces of the training captions. Sets the hyper-parameters the
    tower fixes: the shared space of open_clip's pair, a Hugging Face model's configuration."""
    tokens = vocabulary_of(vocabulary)
    if open_clip is not None or open_clip_name(hp.text_encoder) is not None:
        encoder = open_clip_text(hp.backbone, hp.text_encoder, tokens, open_clip)
        hp.embed_dim = open_clip["facts"]["embed_dim"]  # both towers project into the model's space
        return encoder, encoder.feature_dim
    encoder = build_text_encoder(
        hp.text_encoder, len(tokens), hp.text_width, hp.max_length, hp.text_pooler, hp.text_config
    )
    if isinstance(encoder, HFTextTower):
        check_tokenizer(encoder, tokens)
        hp.text_config = encoder.config_record()
    elif isinstance(tokens, (PretrainedTokenizer, OpenCLIPTokenizer)):
        raise ConfigError(
            "text_encoder",
            f"the data's tokenizer is {tokens.spec}, whose ids only its own model reads: "
            f"set --model.init_args.text_encoder {tokens.spec}",
        )
    return encoder, encoder.feature_dim


def pixel_normalization(model, mean, std) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The pixel normalisation: the pretrained encoder's (recorded with its weights), else the
    one given, else 0.5 / 0.25; recorded in the hyper-parameters (``normalization``, the one
    record :mod:`contrast.normalization` reads), so the checkpoint and an export say it."""
    recorded = model._pretrained_normalization
    if recorded is not None:
        for name, value in (("image_mean", mean), ("image_std", std)):
            given = {"mean": recorded.mean, "std": recorded.std} | ({name[6:]: value} if value is not None else {})
            if not Normalization(tuple(map(float, given["mean"])), tuple(map(float, given["std"]))).same(recorded):
                raise ConfigError(
                    name,
                    f"{name}: the image tower of {model.hparams.image_weights or model.hparams.backbone} was "
                    f"pretrained on pixels normalised with {recorded}; leave {name} unset",
                )
        mean, std = recorded.mean, recorded.std
    mean = (0.5, 0.5, 0.5) if mean is None else mean
    std = (0.25, 0.25, 0.25) if std is None else std
    record = Normalization.of({"mean": mean, "std": std}, "image_std").record()  # one per channel, std > 0
    model.hparams.image_mean, model.hparams.image_std = tuple(mean), tuple(std)
    model.hparams.normalization = record
    return tuple(mean), tuple(std)


def image_encoder(model) -> nn.Module:
    """The image encoder: none for image vectors, a pretrained one (``image_weights``), or the base's."""
    model._pretrained_normalization: Normalization | None = None
    model._open_clip: dict | None = None
    hp = model.hparams
    if open_clip_name(hp.backbone) is not None:  # open_clip's model: both towers, built here at once
        image, model._open_clip, model._pretrained_normalization = open_clip_image_tower(hp)
        return image
    if hf_name(hp.backbone) is not None:  # a Hugging Face vision model; its configuration recorded
        tower = HFVisionTower(hf_name(hp.backbone), hp.image_pooler, hp.image_config)
        hp.image_config = tower.config_record()
        recorded = tower.normalization()
        if recorded is not None:
            model._pretrained_normalization = Normalization.of(recorded)
        return tower
    if hp.open_clip_weights is not None:
        raise ConfigError("open_clip_weights", "open_clip_weights are the weights of an open_clip/<name> backbone")
    if hp.backbone == "none":  # the images are feature vectors: the head takes them as they are
        return nn.Identity()
    if hp.image_weights is None:
        return TrainingBase.build_encoder(model)
    backbone, arch = pretrained_backbone(hp.image_weights)
    if "mean" in arch:
        model._pretrained_normalization = Normalization.of({k: arch[k] for k in ("mean", "std")})
    wanted = {"backbone": hp.backbone, "cifar_stem": hp.cifar_stem}
    if {k: arch[k] for k in wanted} != wanted:
        raise ValueError(
            f"image_weights: {hp.image_weights} holds a {arch['backbone']!r} backbone (cifar_stem "
            f"{arch['cifar_stem']}); set --model.init_args.backbone and cifar_stem to match"
        )
    return backbone


PROJECTIONS = ("mlp", "linear")


def projection(hp, width: int) -> nn.Module:
    """A tower's head into the shared space: ``mlp`` (Linear-ReLU-Linear, ``head_hidden`` wide) or
    ``linear`` (one Linear without bias: CLIP's projection, HF's dual encoder's)."""
    if hp.projection == "linear":
        return nn.Linear(width, hp.embed_dim, bias=False)
    return mlp(width, hp.head_hidden, hp.embed_dim, batch_norm=False)


def build_towers(model, vocabulary, image_dim: int, text_dim: int, num_classes: int) -> None:
    """The heads and the text encoder for data with this vocabulary (or text vectors of width
    ``text_dim``), images (or vectors of width ``image_dim``) and ``num_classes`` labels."""
    hp = model.hparams
    if (vocabulary is None) == (text_dim == 0):
        raise ValueError(
            "the texts are either captions (a vocabulary) or vectors (text_dim > 0), not both or neither: "
            "give the data's facts, CrossModal(**data.facts(), ...) (the command line links them)"
        )
    if "acmr" in model.objectives and not num_classes:
        raise ValueError("objectives: 'acmr' needs labelled pairs (its label classifier); the data has none")
    if image_dim and hp.backbone != "none":
        raise ValueError(
            f"backbone: the data's images are feature vectors of width {image_dim}; set --model.init_args.backbone none"
        )
    if not image_dim and hp.backbone == "none":
        raise ValueError("backbone 'none' takes image feature vectors, but the data's images are pictures")
    image_width = image_dim or model.feature_dim
    if vocabulary is not None:
        model.text_encoder, text_width = text_tower(hp, vocabulary, model._open_clip)
    else:
        model.text_encoder, text_width = nn.Identity(), text_dim
    one_of("projection", hp.projection, PROJECTIONS)
    if model._open_clip is not None:  # open_clip's towers project themselves
        model.image_head, model.text_head = nn.Identity(), nn.Identity()
    else:
        model.image_head = projection(hp, image_width)  # (B, F) -> (B, E)
        model.text_head = projection(hp, text_width)  # (B, W) -> (B, E)
    if "acmr" in model.objectives and num_classes:
        model.label_classifier = nn.Linear(hp.embed_dim, num_classes)
        hidden = max(2, hp.embed_dim // 2)
        model.modality_classifier = nn.Sequential(  # ACMR's 3-layer discriminator: E -> E/2 -> E/4 -> 2
            nn.Linear(hp.embed_dim, hidden),
            nn.ReLU(),
            nn.Linear(hidden, max(2, hidden // 2)),
            nn.ReLU(),
            nn.Linear(max(2, hidden // 2), 2),
        )
