"""The datasets of evaluation and of every view path alike: evaluation images, subsets, and
decode-once caching (each view path's training dataset lives with its path, ``data/view_paths``)."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset

from contrast.data.sources import TensorImages
from contrast.views import Recipe


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
