"""Batched augmentation: one call on a (B, C, H, W) batch, independent random parameters per sample.

``torchvision.transforms.v2`` applied to a batched tensor draws *one* set of parameters for the
whole batch (every image gets the same crop, flip and jitter), which is wrong for contrastive
learning. :class:`BatchedViews` draws them per sample, on the CPU from a ``torch.Generator`` (so
results are reproducible and independent of the device), then applies the chain to the whole
batch on the batch's device:

* random resized crop: torchvision's sampling (10 tries of area ∈ scale·HW and log-uniform
  ratio, then a centre-crop fallback), resampled with the weights of torchvision's antialiased
  bilinear resize, as two batched matrix products per batch;
* horizontal flip; colour jitter with per-sample factors and per-sample random order of the four
  ops (brightness, contrast, saturation, hue, with torchvision's formulas); random grayscale;
  gaussian blur with per-sample σ (separable, reflect padding, as torchvision); solarize;
  normalisation.

Images are processed as float32 in [0, 1] (uint8 input is divided by 255); torchvision's uint8
path rounds after each op, so the two differ by at most a few 1/255 steps per op.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from contrast.views.recipes import Recipe, get_recipe, view_recipes

GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # ITU-R 601, as torchvision's rgb_to_grayscale


@dataclass
class ViewParams:
    """Per-sample parameters, all on the CPU, first dimension B."""

    boxes: Tensor  # (B, 4) float: top, left, height, width of the crop in input pixels
    flip: Tensor  # (B,) bool
    jitter: Tensor  # (B,) bool: colour jitter applied
    factors: Tensor  # (B, 4): brightness, contrast, saturation factors and hue shift
    order: Tensor  # (B, 4) long: a permutation of 0..3 (the ops in the order they are applied)
    grayscale: Tensor  # (B,) bool
    blur: Tensor  # (B,) bool
    sigma: Tensor  # (B,) float
    solarize: Tensor  # (B,) bool

    def __len__(self) -> int:
        return self.boxes.shape[0]

    FIELDS = ("boxes", "flip", "jitter", "factors", "order", "grayscale", "blur", "sigma", "solarize")
    WIDTHS = (4, 1, 1, 4, 4, 1, 1, 1, 1)

    def pack(self) -> Tensor:
        """(B, 18) float32: the parameters as one tensor (what a DataLoader worker hands over)."""
        columns = [getattr(self, f).float().reshape(len(self), -1) for f in self.FIELDS]
        return torch.cat(columns, dim=1)

    @classmethod
    def unpack(cls, packed: Tensor) -> ViewParams:
        parts = packed.cpu().split(cls.WIDTHS, dim=1)
        kinds = {"flip": torch.bool, "jitter": torch.bool, "grayscale": torch.bool, "blur": torch.bool}
        kinds |= {"solarize": torch.bool, "order": torch.long}
        values = {}
        for name, part in zip(cls.FIELDS, parts):
            part = part if cls.WIDTHS[cls.FIELDS.index(name)] > 1 else part.squeeze(1)
            values[name] = part.round().to(kinds[name]) if name in kinds else part.contiguous()
        return cls(**values)


def _uniform(n: int, low: float, high: float, generator: torch.Generator | None) -> Tensor:
    return torch.rand(n, generator=generator, dtype=torch.float64) * (high - low) + low


def _bernoulli(n: int, p: float, generator: torch.Generator | None) -> Tensor:
    return torch.rand(n, generator=generator) < p


def sample_crop_boxes(
    n: int,
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    generator: torch.Generator | None = None,
    attempts: int = 10,
) -> Tensor:
    """RandomResizedCrop's parameters for n samples: (n, 4) top, left, height, width.

    The algorithm of ``torchvision.transforms.RandomResizedCrop.get_params``, vectorised: up to
    ``attempts`` draws of (area fraction ~ U(scale), log ratio ~ U(log ratio)), the first that
    fits is kept, else a centre crop clamped to the ratio range.
    """
    area = height * width
    target_area = area * _uniform(n * attempts, *scale, generator).view(n, attempts)
    log_ratio = _uniform(n * attempts, math.log(ratio[0]), math.log(ratio[1]), generator).view(n, attempts)
    aspect = torch.exp(log_ratio)
    w = torch.round(torch.sqrt(target_area * aspect))
    h = torch.round(torch.sqrt(target_area / aspect))
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.to(torch.int8).argmax(dim=1)
    found = fits.any(dim=1)
    h = h.gather(1, first[:, None]).squeeze(1)
    w = w.gather(1, first[:, None]).squeeze(1)
    # Centre-crop fallback.
    in_ratio = width / height
    if in_ratio < min(ratio):
        fallback_w, fallback_h = width, round(width / min(ratio))
    elif in_ratio > max(ratio):
        fallback_h, fallback_w = height, round(height * max(ratio))
    else:
        fallback_w, fallback_h = width, height
    h = torch.where(found, h, torch.full_like(h, fallback_h))
    w = torch.where(found, w, torch.full_like(w, fallback_w))
    u = torch.rand(n, 2, generator=generator, dtype=torch.float64)
    top = torch.where(found, torch.floor(u[:, 0] * (height - h + 1)), torch.floor((height - h) / 2))
    left = torch.where(found, torch.floor(u[:, 1] * (width - w + 1)), torch.floor((width - w) / 2))
    return torch.stack([top, left, h, w], dim=1).float()


class BatchedViews:
    """One augmented view of every image of a batch, with per-sample random parameters.

        views = BatchedViews("simclr_cifar10")
        x = views(images_uint8_on_gpu, generator=torch.Generator().manual_seed(0))  # (B, 3, 32, 32)

    ``sample`` and ``apply`` are exposed separately so that parameters can be inspected,
    reused, or checked against torchvision.
    """

    def __init__(self, recipe: str | Recipe) -> None:
        self.recipe = get_recipe(recipe)
        stats = torch.tensor([self.recipe.mean, self.recipe.std]).view(2, 1, -1, 1, 1)
        self._stats = {torch.device("cpu"): stats}  # (mean, std) per device, copied there once

    # ------------------------------------------------------------------ parameters
    def sample(self, n: int, height: int, width: int, generator: torch.Generator | None = None) -> ViewParams:
        r = self.recipe
        b, c, s, h = r.jitter
        # Factor ranges as torchvision's ColorJitter: [max(0, 1 - s), 1 + s], hue [-h, h].
        factors = torch.stack(
            [
                _uniform(n, max(0.0, 1 - b), 1 + b, generator),
                _uniform(n, max(0.0, 1 - c), 1 + c, generator),
                _uniform(n, max(0.0, 1 - s), 1 + s, generator),
                _uniform(n, -h, h, generator),
            ],
            dim=1,
        ).float()
        order = torch.rand(n, 4, generator=generator).argsort(dim=1)
        return ViewParams(
            boxes=sample_crop_boxes(n, height, width, r.crop_scale, r.crop_ratio, generator),
            flip=_bernoulli(n, r.flip_p, generator),
            jitter=_bernoulli(n, r.jitter_p, generator),
            factors=factors,
            order=order,
            grayscale=_bernoulli(n, r.grayscale_p, generator),
            blur=_bernoulli(n, r.blur_p, generator),
            sigma=_uniform(n, *r.blur_sigma, generator).float(),
            solarize=_bernoulli(n, r.solarize_p, generator),
        )

    # ------------------------------------------------------------------ the chain
    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        images = self.check(images)
        params = self.sample(images.shape[0], images.shape[2], images.shape[3], generator)
        return self.apply(images, params)

    def check(self, images: Tensor) -> Tensor:
        if not isinstance(images, Tensor):
            raise ValueError(f"images must be a (B, C, H, W) tensor, got {type(images).__name__}")
        if images.dim() != 4:
            raise ValueError(f"images must be 4-D (B, C, H, W), got shape {tuple(images.shape)}")
        if images.shape[0] == 0 or images.shape[2] < 1 or images.shape[3] < 1:
            raise ValueError(f"images must be non-empty, got shape {tuple(images.shape)}")
        if images.shape[1] != self.recipe.channels:
            raise ValueError(
                f"images must have {self.recipe.channels} channels for recipe {self.recipe.name!r}, "
                f"got {images.shape[1]} (shape {tuple(images.shape)})"
            )
        if images.dtype != torch.uint8 and not images.is_floating_point():
            raise ValueError(f"images must be uint8 (0..255) or floating point (0..1), got dtype {images.dtype}")
        pad = self.recipe.blur_kernel // 2
        if self.recipe.blur_p > 0 and pad >= self.recipe.size:
            raise ValueError(f"blur_kernel {self.recipe.blur_kernel} is too large for output size {self.recipe.size}")
        return images

    def apply(self, images: Tensor, params: ViewParams) -> Tensor:
        """Apply the recipe with the given per-sample parameters; returns normalised float32.

        Parameters travel to the device from pinned memory with non-blocking copies and no value
        is read back, so on a GPU the call queues its kernels without waiting for the device."""
        if len(params) != images.shape[0]:
            raise ValueError(f"params are for {len(params)} samples but images has {images.shape[0]}")
        device = images.device
        x = images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()
        x = resized_crop(x, _to_device(params.boxes, device), self.recipe.size)
        x = torch.where(_to_device(params.flip, device)[:, None, None, None], x.flip(-1), x)
        return self._colour(x, params)

    def colour(self, images: Tensor, params: ViewParams) -> Tensor:
        """The recipe after its crop and flip: colour jitter, grayscale, blur, solarize and
        normalisation with the per-sample ``params``, on crops already cut (uint8 or float [0, 1]);
        returns normalised float32. The split path's device stage."""
        return self._colour(
            images.float().div_(255.0) if images.dtype == torch.uint8 else images.float().clone(), params
        )

    def _colour(self, x: Tensor, params: ViewParams) -> Tensor:
        device = x.device
        x = self._jitter(x, params)
        if x.shape[1] == 3:
            idx = _indices(params.grayscale, device)
            if idx is not None:
                x[idx] = grayscale(x[idx]).expand(-1, 3, -1, -1)
        idx = _indices(params.blur, device)
        if idx is not None:
            sigma = _to_device(params.sigma[params.blur], device)
            x[idx] = gaussian_blur(x[idx], self.recipe.blur_kernel, sigma)
        idx = _indices(params.solarize, device)
        if idx is not None:
            x[idx] = solarize(x[idx], self.recipe.solarize_threshold)
        if device not in self._stats:
            self._stats[device] = _to_device(self._stats[torch.device("cpu")], device)
        mean, std = self._stats[device]
        return x.sub_(mean).div_(std)

    def _jitter(self, x: Tensor, params: ViewParams) -> Tensor:
        device = x.device
        factors = _to_device(params.factors, device)
        for slot in range(4):
            for op in range(4):
                selected = params.jitter & (params.order[:, slot] == op)
                idx = _indices(selected, device)
                if idx is None or (op >= 2 and x.shape[1] == 1):  # saturation / hue: no-ops on grayscale
                    continue
                x[idx] = JITTER_OPS[op](x[idx], factors[idx, op])
        return x


class BatchedTwoViews:
    """(q, k) views of a batch with the batched path; ``recipe_k`` defaults to ``recipe_q``
    (``"none"``: one view, ``(q,)``); ``num_small`` views of ``recipe_small`` follow (multi-crop)."""

    def __init__(
        self,
        recipe_q: str | Recipe,
        recipe_k: str | Recipe | None = None,
        recipe_small: str | Recipe | None = None,
        num_small: int = 0,
    ) -> None:
        self.views = tuple(BatchedViews(r) for r in view_recipes(recipe_q, recipe_k, recipe_small, num_small))

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, ...]:
        return tuple(views(images, generator) for views in self.views)


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


# ---------------------------------------------------------------------- ops on float [0, 1] batches
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
    f = factor.view(-1, 1, 1, 1)
    return (f * x + (1 - f) * other).clamp_(0.0, 1.0)


def adjust_brightness(x: Tensor, factor: Tensor) -> Tensor:
    return (x * factor.view(-1, 1, 1, 1)).clamp_(0.0, 1.0)


def adjust_contrast(x: Tensor, factor: Tensor) -> Tensor:
    luma = grayscale(x) if x.shape[1] == 3 else x
    return _blend(x, luma.mean(dim=(1, 2, 3), keepdim=True), factor)


def adjust_saturation(x: Tensor, factor: Tensor) -> Tensor:
    return _blend(x, grayscale(x), factor)


def adjust_hue(x: Tensor, shift: Tensor) -> Tensor:
    """Rotate the hue by ``shift`` (a fraction of a turn, in [-0.5, 0.5]) per sample, via HSV."""
    hue, saturation, value = _rgb_to_hsv(x)
    hue = (hue + shift.view(-1, 1, 1)).remainder_(1.0)
    return _hsv_to_rgb(hue, saturation, value)


def _rgb_to_hsv(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    r, g, b = x.unbind(dim=1)
    maxc, _ = x.max(dim=1)
    minc, _ = x.min(dim=1)
    delta = maxc - minc
    gray = delta == 0
    saturation = delta / torch.where(gray, torch.ones_like(maxc), maxc)
    safe_delta = torch.where(gray, torch.ones_like(delta), delta)
    rc, gc, bc = (maxc - r) / safe_delta, (maxc - g) / safe_delta, (maxc - b) / safe_delta
    # r wins ties, then g, as torchvision
    hue = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    hue = torch.where(gray, torch.zeros_like(hue), hue)
    hue = (hue / 6.0 + 1.0).remainder_(1.0)
    return hue, saturation, maxc


def _hsv_to_rgb(hue: Tensor, saturation: Tensor, value: Tensor) -> Tensor:
    """Channel n of (r, g, b) = v - v·s·clamp(min(k, 4 - k), 0, 1), k = (n + 6h) mod 6, n = 5, 3, 1:
    the piecewise-linear hexcone in closed form (no per-pixel table lookup)."""
    h6 = hue * 6.0
    vs = value * saturation
    channels = []
    for n in (5.0, 3.0, 1.0):
        k = (h6 + n).remainder_(6.0)
        channels.append(value - vs * torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0))
    return torch.stack(channels, dim=1)


def gaussian_blur(x: Tensor, kernel_size: int, sigma: Tensor) -> Tensor:
    """Separable gaussian blur with a per-sample σ (B,), reflect padding, as torchvision."""
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
    return torch.where(x >= threshold, 1.0 - x, x)


JITTER_OPS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)
