"""Pixel operations on float [0, 1] batches (B, C, H, W), with a parameter per sample: the crop and
resize, torchvision's colour-jitter formulas, grayscale, blur and solarize. Each is tested against
torchvision's own op on every sample."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # ITU-R 601, as torchvision's rgb_to_grayscale

# On a CPU device the colour chain and the blur take a batch a few rows at a time, so that each op's
# passes over the pixels stay in the cache: as many rows as hold this many values (16 and 4 views
# of 3×224×224). A budget in values, not samples: at 32 px the whole batch is one chunk, where a
# chunk of 16 samples made the per-op overhead cost 6× the work (64 vs 10 ms for 512 views).
CPU_CHUNK_ELEMENTS = 16 * 3 * 224 * 224
CPU_BLUR_ELEMENTS = 4 * 3 * 224 * 224


def cpu_rows(x: Tensor, elements: int) -> int:
    """Rows of ``x`` (B, C, H, W) per chunk on a CPU device: those that hold ``elements`` values (at
    least one); the whole batch elsewhere."""
    if x.device.type != "cpu":
        return x.shape[0]
    return max(1, elements // max(1, x[0].numel()))


def _to_device(x: Tensor, device: torch.device) -> Tensor:
    """A CPU tensor on ``device`` without the host waiting for the device: a copy from pageable
    memory first waits for all work queued on the stream, a non-blocking copy from pinned memory
    does not (torch's pinned-memory cache keeps the source alive until the copy has run)."""
    if device.type == "cuda":
        return x.pin_memory().to(device, non_blocking=True)
    return x.to(device)


def _indices(mask: Tensor, device: torch.device) -> Tensor | None:
    """Indices of the True entries of a CPU mask, on ``device`` (no device sync); None if empty."""
    idx = mask.nonzero().squeeze(1)
    return _to_device(idx, device) if idx.numel() else None


def _resize_weights(start: Tensor, length: Tensor, size: int, full: int) -> Tensor:
    """(B, size, full) interpolation matrices: row i resamples output pixel i of a crop
    [start, start + length) of an axis of ``full`` pixels.

    The weights of an antialiased bilinear resize (PIL's, as ``F.interpolate(mode="bilinear",
    antialias=True)``): a triangle filter of half-width max(scale, 1) around the source centre
    (i + 0.5)·scale, restricted to the crop and normalised. For upsampling it is plain bilinear
    interpolation with the crop's edge pixels replicated.
    """
    scale = (length / size)[:, None, None]  # (B, 1, 1)
    support = scale.clamp(min=1.0)
    centre = (torch.arange(size, device=start.device, dtype=torch.float32)[None, :, None] + 0.5) * scale
    offset = torch.arange(full, device=start.device, dtype=torch.float32)[None, None, :] - start[:, None, None]
    weights = (1.0 - ((offset + 0.5 - centre).abs() / support)).clamp_(min=0.0)
    weights = weights * ((offset >= 0) & (offset < length[:, None, None]))
    return weights / weights.sum(dim=2, keepdim=True)


def resized_crop(x: Tensor, boxes: Tensor, size: int) -> Tensor:
    """Crop (top, left, height, width) boxes from x (B, C, H, W) and resize each to size×size,
    as ``torchvision.transforms.v2.functional.resized_crop(..., antialias=True)`` per sample:
    ``out_b = R_y(b) @ x_b @ R_x(b).T``, two batched matrix products."""
    top, left, height, width = boxes.float().unbind(dim=1)
    b, c, h, w = x.shape
    rows = _resize_weights(top, height, size, h)  # (B, size, H)
    cols = _resize_weights(left, width, size, w)  # (B, size, W)
    # Channels folded into the matrix dimensions: two bmm calls for the whole batch.
    y = torch.bmm(rows, x.permute(0, 2, 1, 3).reshape(b, h, c * w))  # (B, size, C*W)
    y = torch.bmm(y.view(b, size * c, w), cols.transpose(1, 2))  # (B, size*C, size)
    return y.view(b, size, c, size).permute(0, 2, 1, 3).contiguous()


def grayscale(x: Tensor) -> Tensor:
    """(B, 3, H, W) -> (B, 1, H, W) luma."""
    r, g, b = x.unbind(dim=1)
    return (GRAY_WEIGHTS[0] * r + GRAY_WEIGHTS[1] * g + GRAY_WEIGHTS[2] * b).unsqueeze(1)


def _blend(x: Tensor, other: Tensor, factor: Tensor) -> Tensor:
    """f·x + (1 − f)·other, clamped to [0, 1] (torchvision's _blend) as one lerp, x + (1 − f)·(other − x):
    one new tensor where the four-term form made four (their allocation cost more than the arithmetic)."""
    return torch.lerp(x, other, 1.0 - factor.view(-1, 1, 1, 1)).clamp_(0.0, 1.0)


def adjust_brightness(x: Tensor, factor: Tensor) -> Tensor:
    return (x * factor.view(-1, 1, 1, 1)).clamp_(0.0, 1.0)


def adjust_contrast(x: Tensor, factor: Tensor) -> Tensor:
    luma = grayscale(x) if x.shape[1] == 3 else x
    return _blend(x, luma.mean(dim=(1, 2, 3), keepdim=True), factor)


def adjust_saturation(x: Tensor, factor: Tensor) -> Tensor:
    return _blend(x, grayscale(x), factor)


def adjust_hue(x: Tensor, shift: Tensor) -> Tensor:
    """Rotate the hue by ``shift`` (a fraction of a turn, in [-0.5, 0.5]) per sample, as torchvision's
    RGB → HSV → RGB, in fewer passes: V = max and V·S = max − min are what the rotation keeps, so
    only 6·hue is computed, shifted and turned back into the three channels."""
    r, g, b = x.unbind(dim=1)
    maxc = torch.maximum(torch.maximum(r, g), b)  # V
    delta = maxc - torch.minimum(torch.minimum(r, g), b)  # V·S
    inverse = delta.clamp(min=1e-30).reciprocal_()  # grey pixels: a zero numerator below, hue 0 as torchvision
    # 6·hue in [-1, 5]; the sector whose channel is the max, r winning ties, then g (torchvision's
    # rule), chosen by 0/1 weights: arithmetic, where torch.where is many times slower on a CPU
    is_r = (maxc == r).to(x.dtype)
    is_g = (maxc == g).to(x.dtype).mul_(1.0 - is_r)
    is_b = 1.0 - is_r - is_g
    h6 = is_r * (g - b) + is_g * (b - r) + is_b * (r - g)
    h6 = h6.mul_(inverse).add_(2.0 * is_g + 4.0 * is_b)
    h6 = h6.add_(6.0 + 6.0 * shift.view(-1, 1, 1)).fmod_(6.0)  # the rotated hue, in [0, 6) (the sum is > 0)
    return _hexcone(h6, maxc, delta)


def _hexcone(h6: Tensor, value: Tensor, chroma: Tensor) -> Tensor:
    """Channel n of (r, g, b) = v − chroma·clamp(min(k, 4 − k), 0, 1), k = (n + 6h) mod 6, n = 5, 3, 1:
    HSV → RGB's piecewise-linear hexcone in closed form (no per-pixel table lookup)."""
    channels = []
    for n in (5.0, 3.0, 1.0):
        k = (h6 + n).fmod_(6.0)  # h6 + n >= 0
        channels.append(value - chroma * torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0))
    return torch.stack(channels, dim=1)


def gaussian_blur(x: Tensor, kernel_size: int, sigma: Tensor) -> Tensor:
    """Separable gaussian blur with a per-sample σ (B,), reflect padding, as torchvision."""
    rows = cpu_rows(x, CPU_BLUR_ELEMENTS)
    if x.shape[0] > rows:  # a CPU: a grouped convolution of many large groups is slow there
        return torch.cat(
            [gaussian_blur(x[i : i + rows], kernel_size, sigma[i : i + rows]) for i in range(0, x.shape[0], rows)]
        )
    n, c, h, w = x.shape
    half = (kernel_size - 1) / 2
    grid = torch.linspace(-half, half, kernel_size, device=x.device)
    kernel = torch.exp(-0.5 * (grid[None, :] / sigma[:, None]) ** 2)
    kernel = kernel / kernel.sum(dim=1, keepdim=True)  # (n, k)
    kernel = kernel.repeat_interleave(c, dim=0)  # (n*c, k)
    pad = kernel_size // 2
    y = F.pad(x.reshape(1, n * c, h, w), (pad, pad, pad, pad), mode="reflect")
    y = F.conv2d(y, kernel.view(n * c, 1, kernel_size, 1), groups=n * c)
    y = F.conv2d(y, kernel.view(n * c, 1, 1, kernel_size), groups=n * c)
    return y.view(n, c, h, w)


def solarize(x: Tensor, threshold: float) -> Tensor:
    """1 − x where x >= threshold, else x (as arithmetic: torch.where is slow on a CPU)."""
    return x + (x >= threshold).to(x.dtype) * (1.0 - 2.0 * x)


JITTER_OPS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)
