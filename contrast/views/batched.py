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

import numpy as np
import torch
from torch import Tensor

from contrast.seeds import counter_uniforms
from contrast.views import ops
from contrast.views.allocator import keep_freed_memory
from contrast.views.ops import (  # noqa: F401 - the pixel operations, where the batched path's readers look
    GRAY_WEIGHTS,
    JITTER_OPS,
    _indices,
    _to_device,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    cpu_rows,
    gaussian_blur,
    grayscale,
    resized_crop,
    solarize,
)
from contrast.views.params import (  # noqa: F401 - the parameters, where the batched path's readers look
    CROP_ATTEMPTS,
    UNIFORMS_PER_VIEW,
    ViewParams,
    draw_packed,
    recipe_table,
    sample_crop_boxes,
)
from contrast.views.recipes import Recipe, Views, get_recipe, view_recipes


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
        rows = cpu_rows(x, ops.CPU_CHUNK_ELEMENTS)  # read there: a test sets it
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
    """The views of a batch with the batched path, one per recipe: a recipe gives (q, k); a tuple
    of recipes is the list of views itself (as :class:`contrast.views.TwoViews`)."""

    def __init__(self, views: str | Recipe | Views) -> None:
        self.views = tuple(BatchedViews(r) for r in view_recipes(views))

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
