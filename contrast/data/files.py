"""Image files read lazily, one decoder for all (a list of (path, label), or an ImageFolder tree);
where data is looked for, and the errors that name a missing or damaged file."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset

from contrast.data.pixels import decode_rgb


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

    def jpeg(self, index: int) -> tuple[bytes, int, int] | None:
        """(bytes, height, width) of image ``index`` read whole when it is a JPEG, its size from the
        header alone, so that crop boxes are drawn before it is decoded (at a reduced DCT size where they
        allow); None for other formats or when every image is resized to ``image_size``."""
        path = self.samples[index][0]
        if self.image_size is not None or path.suffix.lower() not in (".jpg", ".jpeg"):
            return None
        import io

        from PIL import Image

        try:
            data = path.read_bytes()
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
        except Exception as error:  # noqa: BLE001 - PIL raises several types for a corrupt header
            raise self._damaged(path, error) from None
        return data, height, width

    def damaged(self, index: int, error: BaseException) -> DamagedImageError:
        """The error for image ``index`` that failed to decode (its file named)."""
        return self._damaged(self.samples[index][0], error)

    def _damaged(self, path, error: BaseException) -> DamagedImageError:
        first = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        return DamagedImageError(f"could not decode image {path}: {first} (--data.skip_corrupt true skips such files)")

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
        """Image ``path`` as (3, H, W) uint8 at ``image_size``: a file, or anything with a ``suffix``
        and ``read_bytes()`` (a member of an image–text shard, :mod:`contrast.data.shards`)."""
        from torchvision.transforms.v2 import functional as TF

        try:
            if path.suffix.lower() in (*self.PIL_ONLY, ".png"):  # 16-bit, float, palette, alpha: by value range
                image = decode_rgb(path.read_bytes())
            else:
                from torchvision.io import ImageReadMode, decode_image

                data = torch.frombuffer(bytearray(path.read_bytes()), dtype=torch.uint8)
                image = decode_image(data, mode=ImageReadMode.RGB)
        except Exception as error:  # torchvision and PIL raise several types for corrupt files
            raise self._damaged(path, error) from None
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
