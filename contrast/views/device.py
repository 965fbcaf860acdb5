"""The batched path's device side: a training batch becomes its views on the training device."""

from __future__ import annotations

import torch
from torch import Tensor

from contrast.seeds import derive_seed
from contrast.views.batched import BatchedTwoViews
from contrast.views.ops import _to_device
from contrast.views.recipes import Recipe, Views


class DeviceViews:
    """Turns a training batch into ``((q, k), labels)`` (``(q, k, s_1, …)`` with multi-crop views)
    on the training device.

    The batch, as the loader gives it: ``((uint8 images, counters), labels)`` with the images and
    labels on the device and the counters on the host, or, when the training images are held on
    the device (:meth:`hold`), the counters alone (on the host), whose images are gathered there,
    so a step moves no images between host and device. A counter is the sampler's ``epoch·N + i``;
    every random number of sample i's views in that epoch is a hash of (seed, counter)
    (:func:`contrast.seeds.counter_uniforms`), drawn for the whole batch in one call: the views do
    not depend on the batch a sample lands in, the step, the rank or the world size, and a resumed
    run draws the same views.
    """

    def __init__(self, views: str | Recipe | Views, seed: int = 0) -> None:
        self.views = BatchedTwoViews(views)
        self.key = derive_seed(seed, "batched views")
        self._images: Tensor | None = None  # (N, C, H, W) uint8, the training images
        self._labels: Tensor | None = None  # (N,)

    @property
    def holds_images(self) -> bool:
        return self._images is not None

    @property
    def images(self) -> Tensor | None:
        """The held training images (N, C, H, W) uint8."""
        return self._images

    def hold(self, images: Tensor, labels: Tensor, device: torch.device | str = "cpu") -> None:
        """Keep the training images (N, C, H, W) uint8 and labels (N,) on ``device``."""
        self._images, self._labels = images.to(device), labels.to(device)

    def __call__(self, batch) -> tuple[tuple[Tensor, ...], Tensor]:
        if isinstance(batch, Tensor):  # counters (B,) on the host; the images are held
            index = _to_device(batch % self._images.shape[0], self._images.device)
            images, labels, counters = self._images[index], self._labels[index], batch  # (B, C, H, W), (B,)
        else:
            (images, counters), labels = batch
        return self.views.from_counters(images, counters, self.key), labels
