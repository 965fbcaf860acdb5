"""The datasets the paired data module hands to its loaders, and their collate.

Training batches are ``(images, texts, labels)``: images (B, C, H, W) uint8 or (B, Di) features;
texts (B, L) word ids padded with 0 or (B, Dt) features; labels (B,) class ids (-1: none). Each epoch
pairs every image with one of its captions, chosen from (seed, epoch, index), so a resumed run
draws the pairs the uninterrupted one would have. With a crop recipe (``PairedData(recipe=...)``)
the training images take the split path's worker stage: each image's crop box is drawn from
(seed, epoch, index) and its stored size (a pack's index, a JPEG's header) before it is decoded, once,
at a reduced DCT size where the box allows; its normalisation is the image tower's, on the device.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor
from torch.utils.data import Dataset

from contrast.data.files import DamagedImageError
from contrast.data.pair_sources import PairedSplit
from contrast.models.text import pad_ids
from contrast.seeds import derive_seed
from contrast.views import SplitViews


class PairDataset(Dataset):
    """Index ``epoch·N + i`` (from :class:`EpochShuffle`) -> (image i, one of its texts, label).

    ``skip_corrupt``: an image that cannot be decoded gives the next pair instead (image and text),
    counted in a warning; otherwise it stops the run, named."""

    def __init__(
        self,
        split: PairedSplit,
        tokens: list[list[int]] | None,
        seed: int,
        skip_corrupt: bool = False,
        crop: SplitViews | None = None,
    ):
        self.split, self.tokens, self.seed, self.skip_corrupt, self.crop = split, tokens, seed, skip_corrupt, crop
        self.skipped: set[int] = set()

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int):
        n = len(self.split)
        for step in range(n):
            i = (index + step) % n
            try:
                return self._pair(index + step, i)
            except DamagedImageError as error:
                if not self.skip_corrupt:
                    raise
                if i not in self.skipped:
                    self.skipped.add(i)
                    warnings.warn(f"{error} — skipped ({len(self.skipped)} so far)", stacklevel=2)
        raise RuntimeError(f"no readable image among the {n} pairs")

    def _pair(self, index: int, i: int):
        split = self.split
        choice = derive_seed(self.seed, "pair", index) % int(split.text_count[i])
        m = int(split.text_order[int(split.text_start[i]) + choice])
        text = torch.tensor(self.tokens[m]) if self.tokens is not None else split.text_features[m]
        return self._image(i, index), text, int(split.labels[i])

    def _image(self, i: int, index: int) -> Tensor:
        """Image i as sample ``index`` sees it: as stored, or its crop (see the module doc)."""
        if self.crop is None:
            return self.split.image(i)
        images = self.split.images
        encoded = images.jpeg(i) if hasattr(images, "jpeg") else None
        if encoded is None:  # in memory, or not a JPEG: cut from the decoded image
            return self.crop(self.split.image(i), index)[0][0]
        data, height, width = encoded
        try:
            return self.crop.from_jpeg(data, height, width, index)[0][0]  # (C, s, s) uint8
        except (RuntimeError, OSError, ValueError) as error:  # torchvision's and PIL's errors on corrupt data
            raise images.damaged(i, error) from None


class ImageDataset(Dataset):
    """The split's images (or image vectors) in order, for embedding."""

    def __init__(self, split: PairedSplit) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> Tensor:
        return self.split.image(i)


class TextDataset(Dataset):
    """The split's texts (token ids or vectors) in order, for embedding."""

    def __init__(self, split: PairedSplit, tokens: list[list[int]] | None) -> None:
        self.split, self.tokens = split, tokens

    def __len__(self) -> int:
        return self.split.text_image.shape[0]

    def __getitem__(self, m: int):
        return torch.tensor(self.tokens[m]) if self.tokens is not None else self.split.text_features[m]


def pad(texts: list[Tensor]) -> Tensor:
    """Stack texts: (B, L) ids padded with 0 to the longest, or (B, Dt) vectors."""
    return pad_ids(texts) if texts[0].dtype == torch.long else torch.stack(texts)


def collate_pairs(batch):
    images, texts, labels = zip(*batch)
    return torch.stack(images), pad(list(texts)), torch.tensor(labels)
