"""The batched path: images of one size leave the loader as uint8, every view is made on the training device."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from contrast.data.sources import TensorImages
from contrast.data.view_paths.base import Move, ViewPath
from contrast.views import DeviceViews


class CountedImages(Dataset):
    """``((image, counter), label)``: sample ``counter mod N`` as uint8 with the sampler's counter
    ``epoch·N + i``, from which the device draws its views."""

    def __init__(self, images: Dataset) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        image, label = self.images[index % len(self.images)]
        return (image, index), label


class Counters(Dataset):
    """The sampler's counters ``epoch·N + i`` themselves (``cache="device"``: the images are
    gathered on the device at ``counter mod N``)."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> int:
        return index


class BatchedPath(ViewPath):
    """Every view of the whole batch on the training device (:class:`contrast.views.DeviceViews`),
    its random numbers a counter-based hash of (seed, counter) drawn for the batch in one call.

    The loader yields ``((uint8 images (B, C, H, W), counters (B,)), labels)``; the transfer moves
    the images and labels and leaves the counters on the host, where the draw reads them. With
    ``cache="device"`` the training images are held on the device, the loader yields the counters
    alone (no workers) and nothing but them crosses to the device.
    """

    name = "batched"
    caches = ("none", "memory", "device")

    def __init__(self, views, seed: int, *, decode: str = "cpu", cache: str = "none") -> None:
        super().__init__(views, seed, decode=decode, cache=cache)
        self.device_views = DeviceViews(views, seed=seed)
        self._images: TensorImages | None = None

    def check(self, images: Dataset) -> None:
        if getattr(images, "image_size", 0) is not None:  # not stored files at their own sizes (a folder, a pack)
            return
        sizes = images.sizes()
        if len(sizes) > 1:
            raise ValueError(
                f"image_size: the images of {images.root} have {len(sizes)} different sizes (e.g. "
                f"{', '.join(f'{w}x{h}' for w, h in sorted(sizes)[:3])}); batched views need one size: "
                "use --data.views split (each image cut at its own size in the workers, colour on the device: "
                "the path for packs and photo folders), or resize every image with --data.image_size (e.g. 224)"
            )

    def dataset(self, images: Dataset) -> Dataset:
        if self.cache == "device":
            self._images = images
            return Counters(len(images))
        return CountedImages(images)

    def workers(self, num_workers: int) -> int:
        return 0 if self.cache == "device" else num_workers

    def transfer(self, batch, move: Move):
        if self.cache == "device":  # counters only: they stay on the host
            return batch
        (images, counters), labels = batch
        images, labels = move((images, labels))
        return (images, counters), labels

    def on_device(self, batch, device: torch.device):
        if self.cache == "device" and not self.device_views.holds_images:
            self.device_views.hold(self._images.images, self._images.labels, device)
        return self.device_views(batch)
