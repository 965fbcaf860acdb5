"""The datasets the data module hands to its loaders: two-view training samples, evaluation
images, sample indices for the on-device cache, subsets, and decode-once caching."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset

from contrast.data.sources import PackedImages, TensorImages
from contrast.seeds import derive_seed
from contrast.views import Recipe, SplitViews, TwoViews


class TwoViewDataset(Dataset):
    """((q, k), label) with per-sample views; index ``epoch·N + i`` seeds sample i's augmentation.
    ``views=None`` (the batched path): ((image, epoch·N + i), label), the views made on the device."""

    def __init__(self, base: Dataset, views: TwoViews | None, seed: int) -> None:
        self.base, self.views, self.seed = base, views, seed

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int):
        image, label = self.base[index % len(self.base)]
        if self.views is None:  # batched path: views are made on the device, from the sample's counter
            return (image, index), label
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(self.seed, "views", index))
            return self.views(image), label


class SplitViewDataset(Dataset):
    """((crop_q, crop_k), (params_q, params_k)), label: the split path's worker stage
    (:class:`contrast.views.SplitViews`): views cut from the whole image of sample ``epoch·N + i``."""

    def __init__(self, base: Dataset, views: SplitViews, encoded: bool = False) -> None:
        self.base, self.views, self.encoded = base, views, encoded

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int):
        i = index % len(self.base)
        if self.encoded:  # decode on the device: the JPEG bytes and the drawn parameters
            height, width = self.base.size(i)
            data = torch.frombuffer(bytearray(self.base.read(i)), dtype=torch.uint8)
            return (data, self.views.parameters(height, width, index)), self.base.label(i)
        if isinstance(self.base, PackedImages) and self.base.image_size is None:  # bytes and size known
            height, width = self.base.size(i)
            try:
                views = self.views.from_jpeg(self.base.read(i), height, width, index)
            except RuntimeError as error:
                raise self.base.damaged(i, error) from None
            return views, self.base.label(i)
        image, label = self.base[i]
        return self.views(image, index), label


def collate_encoded(batch):
    """((list of B JPEG byte tensors, (params_q, params_k) (B, 18) each), labels (B,))."""
    labels = torch.tensor([label for _, label in batch])
    data = [sample[0] for sample, _ in batch]  # the bytes: of every length
    params = tuple(torch.stack([sample[1][j] for sample, _ in batch]) for j in range(len(batch[0][0][1])))
    return (data, params), labels


class EvalDataset(Dataset):
    """(image, label) with the deterministic evaluation transform: the shorter side resized to the
    recipe's ``eval_side`` (256 for 224-px ImageNet views, else its size), a centre crop of its
    size, and its normalisation."""

    def __init__(self, base: Dataset, recipe: Recipe) -> None:
        from torchvision.transforms import v2

        self.base = base
        self.transform = v2.Compose(
            [
                v2.Resize(recipe.eval_side, antialias=True),
                v2.CenterCrop(recipe.size),
                v2.ToDtype(torch.float32, scale=True),
                v2.Normalize(recipe.mean, recipe.std),
            ]
        )

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int):
        image, label = self.base[index]
        return self.transform(image), label


class Indices(Dataset):
    """The sampler's counters ``epoch·N + i`` themselves: the device-cache loader (the images are
    gathered on the device at ``counter mod N``; the counter seeds the sample's views)."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> int:
        return index


def decode_all(base: Dataset, num_workers: int = 0, what: str = "images") -> TensorImages:
    """Read every (image, label) of ``base`` once into one uint8 tensor (in parallel over
    ``num_workers`` processes). All images must have the same size (set ``image_size``)."""
    from tqdm.auto import tqdm

    loader = DataLoader(base, batch_size=512, num_workers=num_workers)
    images, labels = [], []
    try:
        for x, y in tqdm(loader, desc=f"decoding {what}", leave=False):
            images.append(x)
            labels.append(torch.as_tensor(y))
    except RuntimeError as error:
        if "stack expects each tensor to be equal size" in str(error):
            raise ValueError(f"caching {what} needs images of one size: set --data.image_size") from error
        raise
    classes = getattr(base, "classes", None) or [str(i) for i in range(int(torch.cat(labels).max()) + 1)]
    return TensorImages(torch.cat(images), torch.cat(labels), classes)


class Subset(Dataset):
    """n samples spread evenly over ``base`` (datasets stored class by class keep every class)."""

    def __init__(self, base: Dataset, n: int) -> None:
        self.base = base
        self.indices = torch.linspace(0, len(base) - 1, n).round().long()
        self.labels = base.labels[self.indices]
        self.classes = getattr(base, "classes", None)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int):
        return self.base[int(self.indices[index])]
