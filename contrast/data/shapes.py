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


def _render(
    labels: Tensor, centre: Tensor, half: Tensor, angle: Tensor, foreground: Tensor, background: Tensor, size: int, g
) -> Tensor:
    """(n, 3, size, size) uint8: shape ``labels`` at ``centre`` (n, 2; x right, y down, pixels), half-size
    ``half`` (n,), rotation ``angle`` (n,), colours ``foreground`` / ``background`` (n, 3, 1, 1) in [0, 1]."""
    n = labels.shape[0]
    grid = torch.arange(size, dtype=torch.float32) + 0.5
    gy, gx = torch.meshgrid(grid, grid, indexing="ij")
    dx = gx[None] - centre[:, 0, None, None]
    dy = centre[:, 1, None, None] - gy[None]  # y up
    cos, sin = torch.cos(angle)[:, None, None], torch.sin(angle)[:, None, None]
    x, y = cos * dx + sin * dy, -sin * dx + cos * dy
    all_masks = torch.stack(_masks(x, y, half[:, None, None]), dim=1)  # (n, 10, H, W)
    mask = all_masks[torch.arange(n), labels].float()[:, None]  # (n, 1, H, W)
    images = mask * foreground + (1 - mask) * background  # (n, 3, H, W)
    images = images + 0.03 * torch.randn(images.shape, generator=g)
    return (images.clamp(0, 1) * 255).round().to(torch.uint8)


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
    bright = 0.6 + 0.4 * torch.rand(n, 1, 1, 1, generator=g)
    dark = 0.35 * torch.rand(n, 1, 1, 1, generator=g)
    light_on_dark = torch.rand(n, 1, 1, 1, generator=g) < 0.5
    foreground = torch.where(light_on_dark, bright, dark) + 0.1 * (torch.rand(n, 3, 1, 1, generator=g) - 0.5)
    background = torch.where(light_on_dark, dark, bright) + 0.1 * (torch.rand(n, 3, 1, 1, generator=g) - 0.5)
    return _render(labels, centre, half, angle, foreground, background, size, g), labels


# Attributes of the captioned scenes (Shapes-10 captions): each name's index is its code.
COLOURS = {
    "red": (0.9, 0.15, 0.15),
    "green": (0.15, 0.75, 0.2),
    "blue": (0.2, 0.3, 0.95),
    "yellow": (0.95, 0.85, 0.1),
    "white": (0.95, 0.95, 0.95),
    "purple": (0.6, 0.2, 0.8),
}
SIZES = ("small", "large")
POSITIONS = ("top left", "top right", "bottom left", "bottom right")


def generate_scenes(n: int, size: int = 32, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Coloured Shapes-10 scenes for captioning: (n, 3, size, size) uint8 images and (n, 4) attribute
    codes (shape, colour, size, position) with names in ``CLASSES``, ``COLOURS``, ``SIZES``,
    ``POSITIONS``: one saturated shape on a dark gray background, small or large, in one quadrant
    (jittered within it), slightly rotated. Deterministic in seed."""
    if n < 1:
        raise ValueError(f"n must be a positive number of images, got {n}")
    g = torch.Generator().manual_seed(seed)
    shape = torch.randint(len(CLASSES), (n,), generator=g)
    colour = torch.randint(len(COLOURS), (n,), generator=g)
    large = torch.randint(len(SIZES), (n,), generator=g)
    position = torch.randint(len(POSITIONS), (n,), generator=g)
    unit = size / 32
    right, bottom = (position % 2).float(), (position // 2).float()
    half = torch.where(large.bool(), 7.5 + 1.5 * torch.rand(n, generator=g), 4.5 + torch.rand(n, generator=g)) * unit
    jitter = (torch.rand(n, 2, generator=g) - 0.5) * 2 * unit
    centre = torch.stack([9 + 14 * right, 9 + 14 * bottom], dim=1) * unit + jitter  # (n, 2) quadrant centres
    angle = (torch.rand(n, generator=g) - 0.5) * math.radians(20)
    palette = torch.tensor(list(COLOURS.values()))  # (6, 3)
    foreground = (palette[colour] + 0.08 * (torch.rand(n, 3, generator=g) - 0.5))[:, :, None, None]
    background = (0.12 + 0.15 * torch.rand(n, 1, 1, 1, generator=g)).expand(n, 3, 1, 1)
    images = _render(shape, centre, half, angle, foreground, background, size, g)
    return images, torch.stack([shape, colour, large, position], dim=1)


LAYOUTS = ("single", "side by side", "stacked")


def generate_relation_scenes(n: int, size: int = 32, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Scenes of one or two coloured Shapes-10 objects, for captions of relations, counts and attributes:
    (n, 3, size, size) uint8 images and (n, 7) codes (shape, colour, size of object A, the same of
    object B, layout). ``LAYOUTS[layout]``: ``single`` (one object near the centre, B's codes 0),
    ``side by side`` (A in the left half, B in the right) or ``stacked`` (A in the top half, B in the
    bottom). A tenth of the two-object scenes repeat one object (same shape, colour and size: "two red
    discs"). Scenes come in mirrored pairs: scene 2i + 1 holds scene 2i's objects in the other order
    (its own jitter and rotation), so that "A left of B" always has "B left of A" to be told from, in
    training and in testing. Shapes are jittered, slightly rotated, on a dark gray background.
    Deterministic in seed."""
    if n < 1:
        raise ValueError(f"n must be a positive number of images, got {n}")
    g = torch.Generator().manual_seed(seed)
    half_n = (n + 1) // 2
    layout = torch.multinomial(torch.tensor([0.15, 0.425, 0.425]), half_n, replacement=True, generator=g)
    a = torch.stack([torch.randint(k, (half_n,), generator=g) for k in (len(CLASSES), len(COLOURS), len(SIZES))], 1)
    b = torch.stack([torch.randint(k, (half_n,), generator=g) for k in (len(CLASSES), len(COLOURS), len(SIZES))], 1)
    twin = torch.rand(half_n, generator=g) < 0.1
    b = torch.where(twin[:, None], a, b)
    b[layout == 0] = 0
    mirrored = torch.where((layout == 0)[:, None], a, b), torch.where((layout == 0)[:, None], b, a)
    a = torch.stack([a, mirrored[0]], 1).flatten(0, 1)[:n]  # (n, 3): scene 2i, then its mirror 2i + 1
    b = torch.stack([b, mirrored[1]], 1).flatten(0, 1)[:n]
    layout = layout.repeat_interleave(2)[:n]
    unit = size / 32
    grid = torch.arange(size, dtype=torch.float32) + 0.5
    gy, gx = torch.meshgrid(grid, grid, indexing="ij")
    background = (0.12 + 0.15 * torch.rand(n, 1, 1, 1, generator=g)).expand(n, 3, size, size)
    images = background.clone()  # (n, 3, H, W)
    palette = torch.tensor(list(COLOURS.values()))  # (6, 3)
    along = torch.where(layout == 2, 1, 0)  # the axis the two objects are spread along: x (0) or y (1)
    for obj, codes in enumerate((a, b)):
        half = torch.where(codes[:, 2].bool(), 5.5 + torch.rand(n, generator=g), 3.2 + 0.6 * torch.rand(n, generator=g))
        centre = 16 + (torch.rand(n, 2, generator=g) - 0.5) * 4  # (n, 2) x right, y down, in 32-px units
        offset = torch.where(layout == 0, 0.0, 8.0 * (2 * obj - 1))  # A left / top, B right / bottom
        centre[torch.arange(n), along] += offset
        centre = centre * unit
        angle = (torch.rand(n, generator=g) - 0.5) * math.radians(20)
        dx = gx[None] - centre[:, 0, None, None]
        dy = centre[:, 1, None, None] - gy[None]  # y up
        cos, sin = torch.cos(angle)[:, None, None], torch.sin(angle)[:, None, None]
        x, y = cos * dx + sin * dy, -sin * dx + cos * dy
        masks = torch.stack(_masks(x, y, half[:, None, None] * unit), dim=1)  # (n, 10, H, W)
        mask = masks[torch.arange(n), codes[:, 0]][:, None]  # (n, 1, H, W)
        if obj == 1:
            mask = mask & (layout != 0)[:, None, None, None]
        colour = (palette[codes[:, 1]] + 0.08 * (torch.rand(n, 3, generator=g) - 0.5))[:, :, None, None]
        images = torch.where(mask, colour, images)
    images = images + 0.03 * torch.randn(images.shape, generator=g)
    return (images.clamp(0, 1) * 255).round().to(torch.uint8), torch.cat([a, b, layout[:, None]], 1)
