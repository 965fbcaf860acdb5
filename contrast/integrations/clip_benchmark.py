"""CLIP_benchmark's view of a contrast two-tower model: :func:`load` gives the ``(model, transform,
tokenizer)`` triple its metrics take (``clip_benchmark.metrics.zeroshot_classification.evaluate``,
``zeroshot_retrieval.evaluate``), as its open_clip loader does:

    model, transform, tokenizer = load("runs/crossmodal/checkpoints/last.ckpt")
    dataset = torchvision.datasets.CIFAR10(root, train=False, transform=transform)
    zeroshot_classification.evaluate(model, DataLoader(dataset, 256), tokenizer, classnames, templates, "cpu")
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from contrast.methods import CrossModal


class TwoTowers(nn.Module):
    """open_clip's interface over a :class:`CrossModal`: ``encode_image`` takes the transform's
    uint8 pictures, ``encode_text`` the tokenizer's ids; ``normalize=True`` L2-normalises."""

    def __init__(self, model: CrossModal, image_size: int) -> None:
        super().__init__()
        self.model, self.image_size = model.eval(), image_size

    def encode_image(self, images: Tensor, normalize: bool = False) -> Tensor:
        embeddings = self.model.embed_images(images)
        return F.normalize(embeddings, dim=-1) if normalize else embeddings

    def encode_text(self, texts: Tensor, normalize: bool = False) -> Tensor:
        embeddings = self.model.embed_texts(texts)
        return F.normalize(embeddings, dim=-1) if normalize else embeddings


def image_transform(image_size: int):
    """A PIL image (or uint8 tensor) -> (3, S, S) uint8: the shorter side resized to S, centre crop
    (the model normalises uint8 pictures itself, with the statistics its checkpoint records)."""
    from torchvision.transforms import v2

    resize = [v2.Resize(image_size, antialias=True), v2.CenterCrop(image_size)]
    return v2.Compose([v2.ToImage(), v2.RGB(), *resize, v2.ToDtype(torch.uint8)])


def load(checkpoint: str | os.PathLike, image_size: int | None = None, device: str = "cpu"):
    """(model, transform, tokenizer) of a ``contrast fit`` two-tower checkpoint. ``image_size``:
    the side the image tower sees (default: the checkpoint's data setting)."""
    from contrast.checkpoint import read_checkpoint

    saved = read_checkpoint(checkpoint)
    model = CrossModal.from_checkpoint(saved, map_location=device)
    size = image_size or int(saved.get("datamodule_hyper_parameters", {}).get("image_size", 32))
    return TwoTowers(model, size), image_transform(size), model.tokenize
