"""Any image mode Pillow or torchvision opens, as 8-bit RGB by its value range.

Pillow's ``convert("RGB")`` clips 16-bit and 32-bit modes instead of scaling them (a 16-bit PNG
comes out white), and drops transparency to whatever colour lies under it. Here:

* ``I;16*`` (16-bit), and ``I`` (32-bit integers, what Pillow gives for 16-bit PNGs and TIFFs):
  ``round(v · 255 / 65535)``, values outside [0, 65535] clipped;
* ``F`` (32-bit float): ``round(v · 255)`` for values in [0, 1], else taken as 0–255; clipped;
* ``1``, ``L``, ``P``, ``CMYK``, ``YCbCr``, ``LAB``, ``HSV``: Pillow's own conversion (8-bit already);
* transparency (``RGBA``, ``LA``, ``PA``, ``P`` or ``L`` with a transparent colour): composited
  over white, ``round(c · a / 255 + 255 · (1 − a / 255))``, img2dataset's rule for web images.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def _scaled(values: np.ndarray, mode: str) -> np.ndarray:
    values = values.astype(np.float64)
    if mode == "F":
        top = 1.0 if np.nanmax(values, initial=0.0) <= 1.0 else 255.0
    else:  # I;16, I;16B, I;16L, I;16N, I
        top = 65535.0
    return np.clip(np.rint(np.nan_to_num(values) * (255.0 / top)), 0, 255).astype(np.uint8)


def to_rgb(image):
    """A PIL image of any mode as an 8-bit ``RGB`` PIL image (see the module doc)."""
    from PIL import Image

    mode = image.mode
    if mode.startswith("I") or mode == "F":
        grey = _scaled(np.asarray(image), "F" if mode == "F" else "I")
        return Image.fromarray(grey, mode="L").convert("RGB")
    if mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float64)
        alpha = rgba[..., 3:] / 255.0
        over_white = np.rint(rgba[..., :3] * alpha + 255.0 * (1.0 - alpha))
        return Image.fromarray(over_white.astype(np.uint8), mode="RGB")
    return image if mode == "RGB" else image.convert("RGB")


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def tensor_to_rgb(image: Tensor) -> Tensor:
    """A decoded (C, H, W) tensor, C = 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA), uint8 or
    uint16 (torchvision's PNG decoder keeps 16 bits), as (3, H, W) uint8 by the rules above."""
    if image.dtype == torch.uint8 and image.shape[0] == 3:
        return image
    if image.dtype not in (torch.uint8, torch.uint16) or image.dim() != 3 or image.shape[0] not in (1, 2, 3, 4):
        raise ValueError(f"decoded an image of shape {tuple(image.shape)} and dtype {image.dtype}")
    values = image.to(torch.float64) * (255.0 / 65535.0 if image.dtype == torch.uint16 else 1.0)
    colour, alpha = (values[:1], values[1:]) if values.shape[0] <= 2 else (values[:3], values[3:])
    if alpha.shape[0]:
        colour = colour * (alpha / 255.0) + 255.0 * (1.0 - alpha / 255.0)
    return colour.expand(3, -1, -1).round().clamp(0, 255).to(torch.uint8).contiguous()


def decode_rgb(data: bytes) -> Tensor:
    """Encoded image bytes as (3, H, W) uint8 RGB by the rules above: PNGs of grey, RGB and their
    alpha forms through torchvision (all 16 bits kept; Pillow truncates 16-bit colour), everything
    else (palettes, a transparent colour key, other formats) through Pillow and :func:`to_rgb`."""
    # IHDR: colour type at byte 25 (0 grey, 2 RGB, 3 palette, 4 grey + alpha, 6 RGBA)
    head = data[: data.find(b"IDAT")] if data[:8] == PNG_MAGIC else b""
    if head and data[25] in (0, 2, 4, 6) and b"tRNS" not in head:
        from torchvision.io import ImageReadMode, decode_png

        return tensor_to_rgb(decode_png(torch.frombuffer(bytearray(data), dtype=torch.uint8), ImageReadMode.UNCHANGED))
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        rgb = np.asarray(to_rgb(image))  # (H, W, 3)
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1).contiguous()
