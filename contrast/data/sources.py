"""Where images come from: every source gives (C, H, W) uint8 tensors and integer labels.

In-memory sources (Shapes-10, MNIST, Fashion-MNIST, CIFAR-10/100, STL-10) hold one uint8 tensor;
:class:`FolderImages` reads an ImageFolder tree lazily. Data is looked for under ``root``, else
``$CONTRAST_DATA_DIR``; nothing is downloaded unless ``download=True``.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from contrast.data.files import DataNotFoundError, FolderImages, _not_found, class_folders, data_root
from contrast.data.shapes import generate_shapes

SHAPES_TRAIN, SHAPES_TEST = 5000, 1000


class TensorImages(Dataset):
    """Images held in memory as one (N, C, H, W) uint8 tensor, with (N,) labels."""

    def __init__(self, images: Tensor, labels: Tensor, classes: list[str] | tuple[str, ...]) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"images must be (N, C, H, W) uint8, got {tuple(images.shape)} {images.dtype}")
        if len(images) == 0:
            raise ValueError("the dataset is empty")
        self.images, self.labels, self.classes = images, labels.long(), list(classes)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self.images[index], int(self.labels[index])


def _read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (MNIST format), gzipped or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def _mnist_like(root: Path, folder: str, aliases: tuple[str, ...], train: bool, what: str) -> TensorImages:
    prefix = "train" if train else "t10k"
    candidates = [root / folder / "raw"] + [root / alias / folder / "raw" for alias in aliases]
    for raw in candidates:
        files = {}
        for kind, ndim in (("images", 3), ("labels", 1)):
            name = f"{prefix}-{kind}-idx{ndim}-ubyte"
            found = [p for p in (raw / name, raw / f"{name}.gz") if p.is_file()]
            if found:
                files[kind] = found[0]
        if len(files) == 2:
            images = torch.from_numpy(_read_idx(files["images"]).copy())[:, None]
            labels = torch.from_numpy(_read_idx(files["labels"]).astype(np.int64))
            return TensorImages(images, labels, [str(i) for i in range(10)])
    raise _not_found(f"{what} ({prefix}-images-idx3-ubyte[.gz])", candidates)


def _torchvision(name: str, root: Path, train: bool, download: bool) -> TensorImages:
    import torchvision.datasets as tvd

    cls = {"cifar10": tvd.CIFAR10, "cifar100": tvd.CIFAR100, "stl10": tvd.STL10}[name]
    kwargs = {"split": "train" if train else "test"} if name == "stl10" else {"train": train}
    try:
        dataset = cls(str(root), download=download, **kwargs)
    except RuntimeError as error:  # torchvision: "Dataset not found or corrupted"
        raise _not_found(
            f"{name} (torchvision's files)",
            [root],
            f"torchvision said: {error}. Pass --data.download true when online.",
        ) from error
    except OSError as error:  # no network while downloading
        raise DataNotFoundError(f"{name}: download failed ({error}); place the files under {root} instead") from error
    images = torch.from_numpy(np.asarray(dataset.data))
    if images.shape[-1] == 3:  # CIFAR: (N, H, W, C)
        images = images.permute(0, 3, 1, 2)
    labels = torch.as_tensor(np.asarray(dataset.targets if hasattr(dataset, "targets") else dataset.labels))
    return TensorImages(images.contiguous(), labels, list(getattr(dataset, "classes", [])))


def _shapes10(root, train: bool, **_) -> TensorImages:
    """Shapes-10, generated in code: no files."""
    from contrast.data.shapes import CLASSES

    n, seed = (SHAPES_TRAIN, 0) if train else (SHAPES_TEST, 1)
    images, labels = generate_shapes(n, seed=seed)
    return TensorImages(images, labels, CLASSES)


def _mnist(root, train: bool, **_) -> TensorImages:
    return _mnist_like(data_root(root), "MNIST", ("mnist",), train, "MNIST")


def _fashion_mnist(root, train: bool, **_) -> TensorImages:
    return _mnist_like(data_root(root), "FashionMNIST", ("fashion-mnist", "fashion_mnist"), train, "Fashion-MNIST")


def _torchvision_set(name: str):
    def load(root, train: bool, download: bool = False, **_) -> TensorImages:
        return _torchvision(name, data_root(root), train, download)

    load.__doc__ = f"torchvision's {name} files (``--data.download true`` when online)."
    return load


def _packed(root, train: bool, image_size: int | None = None, **_) -> Dataset | None:
    """Packs written by ``contrast pack``: ``<root>/train`` and ``<root>/val`` (or ``test``), or
    ``<root>`` itself the training pack (no test split then)."""
    from contrast.data.pack.read import PackedImages  # the reader lives beside its writer

    base = data_root(root)
    classes = None
    if not train and (base / "train" / "meta.json").is_file():  # a test pack's labels: the training classes
        import json  # the training pack was opened (and checked) before its test split

        classes = json.loads((base / "train" / "meta.json").read_text())["classes"] or None
    for split in ["train"] if train else ["val", "test"]:
        if (base / split / "meta.json").is_file() or (base / split / "progress.json").is_file():
            return PackedImages(base / split, image_size, classes=classes)
    return PackedImages(base, image_size) if train else None


def _class_folders(what: str, subfolder: str | None = None, flat: bool = False):
    """A source of class folders: ``<root>/train`` and ``<root>/test`` or ``<root>/val`` (under
    ``<root>/<subfolder>`` when that exists); with ``flat``, a root without ``train/`` is itself the
    training set (class sub-folders or a flat, unlabelled folder), with no test split."""

    def load(root, train: bool, image_size: int | None = None, skip_corrupt: bool = False, **_) -> Dataset | None:
        base = data_root(root)
        folder = base / subfolder if subfolder and (base / subfolder).is_dir() else base
        splits = ["train"] if train else ["test", "val"]
        # A test split's labels are the training split's class numbers, matched by folder name.
        classes = (
            None if train or not (folder / "train").is_dir() else [d.name for d in class_folders(folder / "train")]
        )
        for split in splits:
            if (folder / split).is_dir():
                return FolderImages(folder / split, image_size, skip_corrupt, classes=classes or None)
        if flat and folder.is_dir() and not (folder / "train").is_dir():
            return FolderImages(folder, image_size, skip_corrupt) if train else None
        raise _not_found(f"{what} split {'/'.join(splits)}", [folder / s for s in splits])

    return load


# name -> the function that returns a split: (root, train, *, download, image_size, skip_corrupt) -> Dataset | None
# (image_size resizes stored files of any size; sources held in memory have one size already). The dataset
# names are listed here alone: a new image source is one function and one line here (as PAIR_SOURCES for pairs).
IMAGE_SOURCES = {
    "shapes10": _shapes10,
    "mnist": _mnist,
    "fashion_mnist": _fashion_mnist,
    "cifar10": _torchvision_set("cifar10"),
    "cifar100": _torchvision_set("cifar100"),
    "stl10": _torchvision_set("stl10"),
    "cifar10_jpeg": _class_folders("cifar10_jpeg", subfolder="cifar10-jpeg"),
    "imagefolder": _class_folders("imagefolder", flat=True),
    "packed": _packed,
}


def load_split(
    dataset: str,
    root: str | os.PathLike | None,
    train: bool,
    *,
    download: bool = False,
    image_size: int | None = None,
    skip_corrupt: bool = False,
) -> Dataset | None:
    """The train (``train=True``) or test split of a source of :data:`IMAGE_SOURCES` (None where
    the source has no test split)."""
    if dataset not in IMAGE_SOURCES:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(IMAGE_SOURCES)}")
    return IMAGE_SOURCES[dataset](root, train, download=download, image_size=image_size, skip_corrupt=skip_corrupt)
