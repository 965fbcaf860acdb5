"""Shapes-10: a small image dataset generated in code, so the quickstart needs no download.

Ten shape classes (disc, square, diamond, triangle, plus, cross, ring, frame, horizontal and
vertical ellipse) drawn at random positions, sizes and small rotations, light on dark or dark on
light at random contrast, with a faint colour tint and pixel noise. Position, size, contrast and
tint carry no label information; crops move and rescale the shape, so what two views of one
image share is mostly its shape, which a contrastive encoder learns (kNN accuracy well above
that of a randomly initialised encoder).

The colours are kept nearly gray on purpose: with fully random colours the colour pair is the
easiest cue to tell images apart, and a small encoder learns it instead of shape (the effect that
SimCLR's colour-distortion ablation shows).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

CLASSES = (
    "disc",
    "square",
    "diamond",
    "triangle",
    "plus",
    "cross",
    "ring",
    "frame",
    "horizontal_ellipse",
    "vertical_ellipse",
)


def _masks(x: Tensor, y: Tensor, s: Tensor) -> list[Tensor]:
    r = torch.sqrt(x**2 + y**2)
    box = torch.maximum(x.abs(), y.abs())
    u, v = (x + y) / math.sqrt(2), (x - y) / math.sqrt(2)
    return [
        r < s,
        box < 0.85 * s,
        x.abs() + y.abs() < 1.1 * s,
        (y > -0.6 * s) & (y < 0.8 * s) & (x.abs() < (0.8 * s - y) * 0.65),
        ((x.abs() < 0.3 * s) & (y.abs() < s)) | ((y.abs() < 0.3 * s) & (x.abs() < s)),
        ((u.abs() < 0.3 * s) & (v.abs() < s)) | ((v.abs() < 0.3 * s) & (u.abs() < s)),
        (r < s) & (r > 0.55 * s),
        (box < 0.9 * s) & (box > 0.55 * s),
        (x / s) ** 2 + (y / (0.4 * s)) ** 2 < 1,
        (x / (0.4 * s)) ** 2 + (y / s) ** 2 < 1,
    ]


def generate_shapes(n: int, size: int = 32, seed: int = 0) -> tuple[Tensor, Tensor]:
    """(n, 3, size, size) uint8 images and (n,) labels, balanced over the 10 classes, deterministic in seed."""
    if n < 1:
        raise ValueError(f"n must be a positive number of images, got {n}")
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % len(CLASSES)
    labels = labels[torch.randperm(n, generator=g)]
    unit = size / 32
    centre = (torch.rand(n, 2, generator=g) * 12 + 10) * unit
    half = (torch.rand(n, generator=g) * 5 + 6) * unit
    angle = (torch.rand(n, generator=g) - 0.5) * math.radians(30)
    grid = torch.arange(size, dtype=torch.float32) + 0.5
    gy, gx = torch.meshgrid(grid, grid, indexing="ij")
    dx = gx[None] - centre[:, 0, None, None]
    dy = centre[:, 1, None, None] - gy[None]  # y up
    cos, sin = torch.cos(angle)[:, None, None], torch.sin(angle)[:, None, None]
    x, y = cos * dx + sin * dy, -sin * dx + cos * dy
    all_masks = torch.stack(_masks(x, y, half[:, None, None]), dim=1)  # (n, 10, H, W)
    mask = all_masks[torch.arange(n), labels].float()[:, None]
    bright = 0.6 + 0.4 * torch.rand(n, 1, 1, 1, generator=g)
    dark = 0.35 * torch.rand(n, 1, 1, 1, generator=g)
    light_on_dark = torch.rand(n, 1, 1, 1, generator=g) < 0.5
    foreground = torch.where(light_on_dark, bright, dark) + 0.1 * (torch.rand(n, 3, 1, 1, generator=g) - 0.5)
    background = torch.where(light_on_dark, dark, bright) + 0.1 * (torch.rand(n, 3, 1, 1, generator=g) - 0.5)
    images = mask * foreground + (1 - mask) * background
    images = images + 0.03 * torch.randn(images.shape, generator=g)
    return (images.clamp(0, 1) * 255).round().to(torch.uint8), labels
