"""The batched path's device side: a training batch becomes two views on the training device."""

from __future__ import annotations

import torch
from torch import Tensor

from contrast.seeds import derive_seed
from contrast.views.batched import BatchedTwoViews
from contrast.views.recipes import Recipe


class DeviceViews:
    """Turns a training batch, already on the device, into ``((q, k), labels)`` (``(q, k, s_1, …)``
    with multi-crop views).

    The batch is ``(uint8 images, labels)``, or, when the training images are held on the device
    (:meth:`hold`), a tensor of sample indices (0 … N-1) whose images are gathered there,
    so a step moves no images between host and device. The random view parameters of a step are
    drawn from a generator seeded by (seed, step, rank): a resumed run draws the same views.
    """

    def __init__(
        self,
        recipe_q: str | Recipe,
        recipe_k: str | Recipe | None,
        seed: int,
        recipe_small: str | Recipe | None = None,
        num_small: int = 0,
    ) -> None:
        self.views = BatchedTwoViews(recipe_q, recipe_k, recipe_small, num_small)
        self.seed = seed
        self._images: Tensor | None = None  # (N, C, H, W) uint8, the training images
        self._labels: Tensor | None = None  # (N,)

    @property
    def holds_images(self) -> bool:
        return self._images is not None

    @property
    def images(self) -> Tensor | None:
        """The held training images (N, C, H, W) uint8, on the device after the first batch."""
        return self._images

    def hold(self, images: Tensor, labels: Tensor) -> None:
        """Keep the training images (N, C, H, W) uint8 and labels (N,); copied to the device of
        the first batch of indices."""
        self._images, self._labels = images, labels

    def __call__(self, batch, step: int, rank: int) -> tuple[tuple[Tensor, Tensor], Tensor]:
        if self._images is not None:
            indices = batch  # (B,) on the device
            if self._images.device != indices.device:  # once: the training images move to the device
                self._images, self._labels = self._images.to(indices.device), self._labels.to(indices.device)
            images, labels = self._images[indices], self._labels[indices]  # (B, C, H, W), (B,)
        else:
            images, labels = batch
        generator = torch.Generator().manual_seed(derive_seed(self.seed, "views", step, rank))
        return self.views(images, generator), labels
