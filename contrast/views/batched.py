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

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from contrast.seeds import counter_uniforms
from contrast.views.allocator import keep_freed_memory
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

    def rows(self, start: int, stop: int) -> ViewParams:
        """The parameters of samples ``start`` … ``stop - 1``."""
        return ViewParams(**{f: getattr(self, f)[start:stop] for f in self.FIELDS})

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


CROP_ATTEMPTS = 10  # RandomResizedCrop's tries before its centre-crop fallback, as torchvision


def _crop_boxes(u: np.ndarray, height: int, width: int, scale, ratio) -> np.ndarray:
    """(n, 4) top, left, height, width from (n, 2·CROP_ATTEMPTS + 2) uniforms in [0, 1); ``scale`` and
    ``ratio`` are (lo, hi) pairs, or (m, 2) arrays of one pair per row (m = n) or for all (m = 1)."""
    a = CROP_ATTEMPTS
    n = u.shape[0]
    scale, ratio = (
        np.asarray(scale, dtype=np.float64).reshape(-1, 2),
        np.asarray(ratio, dtype=np.float64).reshape(-1, 2),
    )
    target_area = height * width * (scale[:, :1] + (scale[:, 1:] - scale[:, :1]) * u[:, :a])  # (n, a)
    logs = np.array([[math.log(lo), math.log(hi)] for lo, hi in ratio.tolist()])  # libm's log, as torchvision
    log_lo, log_hi = logs[:, :1], logs[:, 1:]
    aspect = np.exp(log_lo + (log_hi - log_lo) * u[:, a : 2 * a])  # (n, a)
    w = np.round(np.sqrt(target_area * aspect))
    h = np.round(np.sqrt(target_area / aspect))
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.argmax(axis=1)  # the first try that fits
    found = fits[np.arange(n), first]
    h, w = h[np.arange(n), first], w[np.arange(n), first]
    # Centre-crop fallback: the whole image, clamped to the ratio range.
    in_ratio = width / height
    lo, hi = ratio.min(axis=1), ratio.max(axis=1)
    fallback_w = np.where(in_ratio > hi, np.round(height * hi), width)
    fallback_h = np.where(in_ratio < lo, np.round(width / lo), height)
    h, w = np.where(found, h, fallback_h), np.where(found, w, fallback_w)
    top = np.where(found, np.floor(u[:, 2 * a] * (height - h + 1)), np.floor((height - h) / 2))
    left = np.where(found, np.floor(u[:, 2 * a + 1] * (width - w + 1)), np.floor((width - w) / 2))
    return np.stack([top, left, h, w], axis=1)


def sample_crop_boxes(
    n: int,
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    generator: torch.Generator | None = None,
) -> Tensor:
    """RandomResizedCrop's parameters for n samples: (n, 4) top, left, height, width.

    The algorithm of ``torchvision.transforms.RandomResizedCrop.get_params``, vectorised: up to
    ``CROP_ATTEMPTS`` draws of (area fraction ~ U(scale), log ratio ~ U(log ratio)), the first that
    fits is kept, else a centre crop clamped to the ratio range.
    """
    u = torch.rand(n, 2 * CROP_ATTEMPTS + 2, generator=generator, dtype=torch.float64).numpy()
    return torch.from_numpy(_crop_boxes(u, height, width, scale, ratio)).float()


# The uniforms one view of one sample draws, in one call: jitter factors (4), the jitter order's
# keys (4), the crop (2·CROP_ATTEMPTS + 2), then flip, jitter, grayscale, blur, σ, solarize.
_CROP = slice(8, 8 + 2 * CROP_ATTEMPTS + 2)
_FLIP, _JITTER, _GRAY, _BLUR, _SIGMA, _SOLARIZE = range(_CROP.stop, _CROP.stop + 6)
UNIFORMS_PER_VIEW = _SOLARIZE + 1


def recipe_table(recipes) -> dict[str, np.ndarray]:
    """The numbers of each recipe that the parameter draw reads, one row per recipe: (m, k) arrays."""

    def rows(values) -> np.ndarray:
        return np.array([values(r) for r in recipes], dtype=np.float64).reshape(len(recipes), -1)

    return {
        # factor ranges as torchvision's ColorJitter: [max(0, 1 - s), 1 + s], hue [-h, h]
        "low": rows(
            lambda r: [max(0.0, 1 - r.jitter[0]), max(0.0, 1 - r.jitter[1]), max(0.0, 1 - r.jitter[2]), -r.jitter[3]]
        ),
        "high": rows(lambda r: [1 + r.jitter[0], 1 + r.jitter[1], 1 + r.jitter[2], r.jitter[3]]),
        "scale": rows(lambda r: r.crop_scale),
        "ratio": rows(lambda r: r.crop_ratio),
        "sigma": rows(lambda r: r.blur_sigma),
        "p": rows(lambda r: [r.flip_p, r.jitter_p, r.grayscale_p, r.blur_p, r.solarize_p]),
    }


def draw_packed(u: np.ndarray, height: int, width: int, table: dict[str, np.ndarray]) -> np.ndarray:
    """(n, 18) float32 packed parameters (:meth:`ViewParams.pack`) of n views of an image of this size,
    from (n, UNIFORMS_PER_VIEW) uniforms; row i follows the table's recipe row i (or its one row).
    The one parameter draw: the batched path takes it for a batch of one recipe, a split-path worker
    for the views of one sample (q, k, the small views) in one call."""
    factors = table["low"] + (table["high"] - table["low"]) * u[:, :4]  # (n, 4)
    order = np.argsort(u[:, 4:8], axis=1, kind="stable")  # (n, 4): a uniform permutation of the 4 ops
    lo, hi = table["sigma"][:, 0], table["sigma"][:, 1]
    sigma = lo + (hi - lo) * u[:, _SIGMA]
    coins = u[:, [_FLIP, _JITTER, _GRAY, _BLUR, _SOLARIZE]] < table["p"]  # (n, 5)
    boxes = _crop_boxes(u[:, _CROP], height, width, table["scale"], table["ratio"])
    # the layout of ViewParams.FIELDS: boxes, flip, jitter, factors, order, grayscale, blur, sigma, solarize
    columns = (boxes, coins[:, :2], factors, order, coins[:, 2:4], sigma[:, None], coins[:, 4:])
    return np.concatenate([np.asarray(c, dtype=np.float32) for c in columns], axis=1)


class BatchedViews:
    """One augmented view of every image of a batch, with per-sample random parameters.

        views = BatchedViews("simclr_cifar10")
        x = views(images_uint8_on_gpu, generator=torch.Generator().manual_seed(0))  # (B, 3, 32, 32)

    ``sample`` and ``apply`` are exposed separately so that parameters can be inspected,
    reused, or checked against torchvision.
    """

    def __init__(self, recipe: str | Recipe) -> None:
        self.recipe = get_recipe(recipe)
        self.table = recipe_table((self.recipe,))  # the recipe's numbers, as the parameter draw reads them
        stats = torch.tensor([self.recipe.mean, self.recipe.std]).view(2, 1, -1, 1, 1)
        self._stats = {torch.device("cpu"): stats}  # (mean, std) per device, copied there once

    # ------------------------------------------------------------------ parameters
    def sample(self, n: int, height: int, width: int, generator: torch.Generator | None = None) -> ViewParams:
        """Every random number of n views from one draw of (n, UNIFORMS_PER_VIEW) uniforms, the
        arithmetic in numpy (:func:`draw_packed`); the same distributions as torchvision's (tests/views)."""
        u = torch.rand(n, UNIFORMS_PER_VIEW, generator=generator, dtype=torch.float64).numpy()
        return self.params(u, height, width)

    def params(self, u: np.ndarray, height: int, width: int) -> ViewParams:
        """The parameters of n views from their (n, UNIFORMS_PER_VIEW) uniforms (:func:`draw_packed`)."""
        return ViewParams.unpack(torch.from_numpy(draw_packed(u, height, width, self.table)))

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
        if device.type == "cpu":
            keep_freed_memory()  # once per process: the chain's large temporaries are reused, not page-faulted
        x = images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()
        x = resized_crop(x, _to_device(params.boxes, device), self.recipe.size)
        x = torch.where(_to_device(params.flip, device)[:, None, None, None], x.flip(-1), x)
        return self._colour(x, params)

    def colour(self, images: Tensor, params: ViewParams) -> Tensor:
        """The recipe after its crop and flip: colour jitter, grayscale, blur, solarize and
        normalisation with the per-sample ``params``, on crops already cut (uint8 or float [0, 1]);
        returns normalised float32. The split path's device stage."""
        if images.device.type == "cpu":
            keep_freed_memory()
        return self._colour(
            images.float().div_(255.0) if images.dtype == torch.uint8 else images.float().clone(), params
        )

    def _colour(self, x: Tensor, params: ViewParams) -> Tensor:
        rows = cpu_rows(x, CPU_CHUNK_ELEMENTS)
        if x.shape[0] > rows:  # a CPU: a few rows at a time (the cache), the same results
            for start in range(0, x.shape[0], rows):
                stop = start + rows
                x[start:stop] = self._colour_rows(x[start:stop], params.rows(start, stop))
            return x
        return self._colour_rows(x, params)

    def _colour_rows(self, x: Tensor, params: ViewParams) -> Tensor:
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

    def from_counters(self, images: Tensor, counters: Tensor, key: int) -> tuple[Tensor, ...]:
        """The views of a batch whose sample j's random numbers are the stream of ``counters[j]``
        (a host tensor, e.g. the sampler's ``epoch·N + i``) under ``key``: all views' uniforms of the
        whole batch in one vectorised call (:func:`contrast.seeds.counter_uniforms`), view v taking
        numbers v·UNIFORMS_PER_VIEW … (v + 1)·UNIFORMS_PER_VIEW − 1 of each stream."""
        images = self.views[0].check(images)
        u = counter_uniforms(key, counters.numpy(), len(self.views) * UNIFORMS_PER_VIEW)  # (B, V·U)
        height, width = images.shape[2], images.shape[3]
        return tuple(
            views.apply(images, views.params(u[:, v * UNIFORMS_PER_VIEW : (v + 1) * UNIFORMS_PER_VIEW], height, width))
            for v, views in enumerate(self.views)
        )


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
