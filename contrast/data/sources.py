"""Where images come from: every source gives (C, H, W) uint8 tensors and integer labels.

In-memory sources (Shapes-10, MNIST, Fashion-MNIST, CIFAR-10/100, STL-10) hold one uint8 tensor;
:class:`FolderImages` reads an ImageFolder tree lazily. Data is looked for under ``root``, else
``$CONTRAST_DATA_DIR``; nothing is downloaded unless ``download=True``.
"""

from __future__ import annotations

import gzip
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from contrast.data.pixels import decode_rgb
from contrast.data.shapes import generate_shapes

SHAPES_TRAIN, SHAPES_TEST = 5000, 1000


class DataNotFoundError(FileNotFoundError):
    """Raised with a message that says where data was looked for and how to point at it."""


class DamagedImageError(RuntimeError):
    """An image that cannot be decoded, named in the message (a file, or a pack's shard and offset)."""


def data_root(root: str | os.PathLike | None) -> Path:
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("CONTRAST_DATA_DIR")
    return Path(env).expanduser() if env else Path("data")


def _not_found(what: str, looked: list[Path], extra: str = "") -> DataNotFoundError:
    places = "\n  ".join(str(p) for p in looked)
    return DataNotFoundError(
        f"{what} not found. Looked in:\n  {places}\n"
        "Point at the folder that holds it with CONTRAST_DATA_DIR=/path/to/data or --data.root /path/to/data"
        + (f"\n{extra}" if extra else "")
    )


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


class ImageFiles(Dataset):
    """Image files read lazily as (C, H, W) uint8 tensors: the one image decoder of the package.

    ``samples`` are (path, label) pairs (label -1: unlabelled). ``image_size`` resizes every image
    (shorter side, then centre crop) so that batches stack. JPEG, PNG, GIF and WebP are decoded by
    torchvision, BMP and TIFF by PIL; PNG, BMP and TIFF of any mode (16-bit, float, palette,
    transparency) become 8-bit RGB by their value range (:mod:`contrast.data.pixels`). A corrupt or
    unreadable image stops the run with an error naming it, unless ``skip_corrupt=True``: then it is
    replaced by the next readable image and counted in a warning.
    """

    EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")
    PIL_ONLY = (".bmp", ".tif", ".tiff")  # formats torchvision's decoder does not read

    def __init__(
        self, samples: list[tuple[Path, int]], image_size: int | None = None, skip_corrupt: bool = False
    ) -> None:
        self.samples = samples
        self.labels = torch.tensor([label for _, label in samples], dtype=torch.long)
        self.image_size, self.skip_corrupt = image_size, skip_corrupt
        self.skipped: set[Path] = set()

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        for attempt in range(len(self.samples)):
            path, label = self.samples[(index + attempt) % len(self.samples)]
            try:
                image = self.decode(path)
            except RuntimeError:
                if not self.skip_corrupt:
                    raise
                if path not in self.skipped:
                    self.skipped.add(path)
                    warnings.warn(f"skipping corrupt image {path} ({len(self.skipped)} skipped so far)", stacklevel=2)
                continue
            return image, label
        raise RuntimeError(f"no readable image among the {len(self.samples)} files, e.g. {self.samples[0][0]}")

    def image(self, index: int) -> Tensor:
        """The image alone (for datasets whose labels live elsewhere)."""
        return self[index][0]

    def sizes(self) -> set[tuple[int, int]]:
        """The distinct (width, height) of the images, read from the file headers only."""
        from PIL import Image

        found = set()
        for path, _ in self.samples:
            try:
                with Image.open(path) as image:
                    found.add(image.size)
            except Exception:  # unreadable: reported (or skipped) when decoded
                continue
        return found

    def decode(self, path: Path) -> Tensor:
        from torchvision.transforms.v2 import functional as TF

        try:
            if path.suffix.lower() in (*self.PIL_ONLY, ".png"):  # 16-bit, float, palette, alpha: by value range
                image = decode_rgb(path.read_bytes())
            else:
                from torchvision.io import ImageReadMode, decode_image

                image = decode_image(str(path), mode=ImageReadMode.RGB)
        except Exception as error:  # torchvision and PIL raise several types for corrupt files
            first = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
            raise DamagedImageError(
                f"could not decode image {path}: {first} (--data.skip_corrupt true skips such files)"
            ) from None
        if self.image_size is not None and tuple(image.shape[1:]) != (self.image_size, self.image_size):
            image = TF.center_crop(TF.resize(image, self.image_size, antialias=True), self.image_size)
        return image


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _images(folder: Path) -> list[Path]:
    """The image files of a folder, sorted; hidden ones (``._x.jpg``, ``.DS_Store``) are not images."""
    return sorted(
        p for p in folder.iterdir() if _visible(p) and p.is_file() and p.suffix.lower() in ImageFiles.EXTENSIONS
    )


def class_folders(root: Path) -> list[Path]:
    """The class folders of an ImageFolder tree (visible sub-folders holding images), sorted by name."""
    return sorted(d for d in root.iterdir() if _visible(d) and d.is_dir() and _images(d))


class FolderImages(ImageFiles):
    """A folder of images read lazily (see :class:`ImageFiles`), labelled or not.

    * ImageFolder layout, ``<root>/<class>/<image>``: labelled by the class folder's name.
    * A flat folder, ``<root>/<image>``: unlabelled (every label is -1; pretraining needs none).

    ``classes``: the class list to number the folders by (the training split's, for a test split:
    a class missing from the test split then shifts no label); a class folder not in it is an error.
    Hidden files and folders (``.ipynb_checkpoints/``, macOS ``._*.jpg``) are not images.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        image_size: int | None = None,
        skip_corrupt: bool = False,
        classes: list[str] | None = None,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise _not_found(f"image folder {self.root}", [self.root])
        class_dirs = class_folders(self.root)
        if class_dirs:
            self.classes = [d.name for d in class_dirs] if classes is None else list(classes)
            unknown = [d.name for d in class_dirs if d.name not in self.classes]
            if unknown:
                raise ValueError(
                    f"{self.root}: class folder(s) {unknown} are not among the training split's "
                    f"{len(self.classes)} classes; every test class needs training images"
                )
            index = {name: i for i, name in enumerate(self.classes)}
            samples = [(path, index[d.name]) for d in class_dirs for path in _images(d)]
        else:  # a flat folder of unlabelled images
            self.classes = []
            samples = [(path, -1) for path in _images(self.root)]
        if not samples:
            raise _not_found(
                f"images ({', '.join(self.EXTENSIONS)}) in {self.root} or in its class sub-folders",
                [self.root, self.root / "<class>"],
                "Put the images in the folder itself (unlabelled) or in one sub-folder per class (labelled).",
            )
        super().__init__(samples, image_size, skip_corrupt)

    @property
    def labelled(self) -> bool:
        return bool(self.classes)


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
