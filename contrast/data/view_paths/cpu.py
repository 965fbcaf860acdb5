"""The CPU path: every view made in the DataLoader workers with torchvision v2, sample by sample (the reference)."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from contrast.data.view_paths.base import ViewPath
from contrast.seeds import derive_seed
from contrast.views import TwoViews


class ViewsInWorkers(Dataset):
    """``((v_1, …, v_n), label)`` of sample ``epoch·N + i``: its views made by ``views`` under a
    generator seeded from (seed, counter)."""

    def __init__(self, images: Dataset, views: TwoViews, seed: int) -> None:
        self.images, self.views, self.seed = images, views, seed

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        image, label = self.images[index % len(self.images)]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(self.seed, "views", index))
            return self.views(image), label


class CPUPath(ViewPath):
    """torchvision v2 per sample in the workers. The loader yields ``((v_1, …, v_n), labels)``
    already: the transfer moves it whole and the device has nothing left to do."""

    name = "cpu"

    def dataset(self, images: Dataset) -> Dataset:
        return ViewsInWorkers(images, TwoViews(self.views), self.seed)
