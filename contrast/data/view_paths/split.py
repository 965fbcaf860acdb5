"""The split path: geometry in the workers from each image's own size, colour on the training device."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from contrast.checks import ConfigError
from contrast.data.pack import PackedImages
from contrast.data.view_paths.base import Move, ViewPath
from contrast.views import SplitViews, colour_views, cut_on_device

DEVICE_DECODE = (
    'decode="device" decodes packed JPEGs on the training device: it needs dataset="packed" and views="split"'
)


class CutInWorkers(Dataset):
    """``((crop_1, …, crop_n), (params_1, …, params_n)), label``: the views of sample ``epoch·N + i``
    cut from its whole image (:class:`contrast.views.SplitViews`); from a pack, its JPEG bytes are
    decoded once, at a reduced DCT size where every box allows. ``encoded=True`` (decode on the
    device): ``((JPEG bytes, (params_1, …, params_n)), label)``."""

    def __init__(self, images: Dataset, views: SplitViews, encoded: bool = False) -> None:
        self.images, self.views, self.encoded = images, views, encoded

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        i = index % len(self.images)
        if self.encoded:  # decode on the device: the JPEG bytes and the drawn parameters
            height, width = self.images.size(i)
            data = torch.frombuffer(bytearray(self.images.read(i)), dtype=torch.uint8)
            return (data, self.views.parameters(height, width, index)), self.images.label(i)
        if isinstance(self.images, PackedImages) and self.images.image_size is None:  # bytes and size known
            height, width = self.images.size(i)
            try:
                views = self.views.from_jpeg(self.images.read(i), height, width, index)
            except RuntimeError as error:
                raise self.images.damaged(i, error) from None
            return views, self.images.label(i)
        image, label = self.images[i]
        return self.views(image, index), label


def collate_encoded(batch):
    """((list of B JPEG byte tensors, (params_1, …, params_n) (B, 18) each), labels (B,))."""
    labels = torch.tensor([label for _, label in batch])
    data = [sample[0] for sample, _ in batch]  # the bytes: of every length
    params = tuple(torch.stack([sample[1][j] for sample, _ in batch]) for j in range(len(batch[0][0][1])))
    return (data, params), labels


class SplitPath(ViewPath):
    """Crop boxes and flips drawn in the workers from each image's stored size and cut from one
    decode of the whole image (images of any size, no pre-crop); colour jitter, grayscale, blur,
    solarize and normalisation on the device for the whole batch.

    The loader yields ``((uint8 crops (B, C, s_i, s_i) per view, packed parameters (B, 18) per view),
    labels)``; the transfer moves the crops and labels, the parameters stay on the host (the colour
    stage's masks are read there). ``decode="device"`` (a pack): the loader yields the JPEG bytes (a
    list of B 1-D uint8 tensors) in place of the crops, decoded and cut on the device in one call.
    """

    name = "split"
    decodes = ("cpu", "device")
    whole_images = True

    def __init__(self, views, seed: int, *, decode: str = "cpu", cache: str = "none") -> None:
        super().__init__(views, seed, decode=decode, cache=cache)
        if decode == "device":
            import inspect

            import torchvision
            from torchvision.io import decode_jpeg

            if "device" not in inspect.signature(decode_jpeg).parameters:
                raise ConfigError(
                    "decode", f'decode="device": torchvision {torchvision.__version__} cannot decode on a device'
                )
        self.cutter = SplitViews(views, seed=seed)  # the workers' stage; its views colour on the device
        self.collate = collate_encoded if decode == "device" else None

    def check(self, images: Dataset) -> None:
        if self.decode == "device" and not (isinstance(images, PackedImages) and images.image_size is None):
            raise ConfigError("decode", DEVICE_DECODE)
        if isinstance(images, PackedImages):
            largest, wanted = images.largest_side(), max(r.size for r in self.views)
            if largest < wanted:
                raise ConfigError(
                    "recipe_q",
                    f"recipe {self.views[0].name!r} cuts {wanted}-px views, but the images of {images.root} are at "
                    f"most {largest} px (packed with max_side {images.meta.get('max_side')}): choose a recipe of at "
                    f"most {largest} px or pack with a larger --max_side",
                )

    def dataset(self, images: Dataset) -> Dataset:
        return CutInWorkers(images, self.cutter, encoded=self.decode == "device")

    def transfer(self, batch, move: Move):
        (crops, params), labels = batch  # the colour parameters stay on the host: read there
        if self.decode == "device":  # the bytes too: decode_jpeg moves them to the device itself
            return (crops, params), move(labels)
        crops, labels = move((crops, labels))
        return (crops, params), labels

    def on_device(self, batch, device: torch.device):
        (crops, params), labels = batch
        if self.decode == "device":
            crops = cut_on_device(self.cutter.views, crops, params, device)
        return colour_views(self.cutter.views, crops, params), labels
