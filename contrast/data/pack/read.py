"""Reading a pack written by ``contrast pack`` (:mod:`contrast.data.pack.write`): the format's names
(index columns, file names, version) are stated here once, and the writer uses them."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from contrast.data.files import DamagedImageError, _not_found

FORMAT_VERSION = 2  # 2: meta.json holds the index's SHA-256
META, INDEX, CAPTIONS = "meta.json", "index.npy", "captions.jsonl"


# The columns of a pack's index.npy, named once: the writer and this reader use them.
INDEX_COLUMNS = ("shard", "offset", "size", "height", "width", "label")
_SHARD, _OFFSET, _SIZE, _HEIGHT, _WIDTH, _LABEL = range(len(INDEX_COLUMNS))


class PackedImages(Dataset):
    """A pack written by ``contrast pack`` (:mod:`contrast.data.pack.write`), read image by image.

    Nothing is loaded whole: the index is memory-mapped and each image is read with one positioned
    read (``os.pread``) from a file handle of this process (a DataLoader worker opens its own after
    the fork), so resident memory stays flat in the number of images and any order is as fast as
    any other (the global shuffle and the exact resume of :class:`EpochShuffle` work unchanged).
    ``image_size`` resizes (shorter side, centre crop) as :class:`ImageFiles` does. Refused when
    the pack is unfinished (no ``meta.json``), or its shards do not match the index."""

    def __init__(
        self, root: str | os.PathLike, image_size: int | None = None, classes: list[str] | None = None
    ) -> None:
        """``classes``: the class list to number the labels by (the training pack's, for a test
        pack packed on its own: a class missing from it then shifts no label)."""
        import json

        self.root = Path(root)
        meta_path = self.root / META
        if not meta_path.is_file():
            hint = (
                " (packing was interrupted: run the same contrast pack again)"
                if (self.root / "progress.json").is_file()
                else ""
            )
            raise _not_found(f"a finished pack (meta.json) in {self.root}{hint}", [meta_path])
        try:
            self.meta = json.loads(meta_path.read_text())
            version = self.meta.get("format_version")
        except (ValueError, AttributeError) as error:
            raise ValueError(f"{meta_path} is damaged ({error}); pack the source again into a new folder") from None
        if version != FORMAT_VERSION:
            raise ValueError(
                f"{meta_path}: pack format {version!r}; this version reads {FORMAT_VERSION} (format 1 did not bind the "
                "index to its shards): pack the source again into a new folder"
            )
        missing = [key for key in ("images", "shards", "classes", "index_sha256") if key not in self.meta]
        if missing:
            raise ValueError(f"{meta_path} is damaged: it lacks {missing}; pack the source again into a new folder")
        index_path = self.root / INDEX
        from contrast.checkpoint import sha256

        if not index_path.is_file() or sha256(index_path) != self.meta["index_sha256"]:
            raise ValueError(
                f"{index_path} is not the index written with these shards (its SHA-256 differs from {meta_path}'s "
                "index_sha256): a changed, reordered or damaged index would give wrong images or labels; pack again"
            )
        self.index = np.load(index_path, mmap_mode="r", allow_pickle=False)  # (N, len(INDEX_COLUMNS)) int64
        if (
            self.index.ndim != 2
            or self.index.shape[1] != len(INDEX_COLUMNS)
            or self.index.shape[0] != self.meta["images"]
        ):
            raise ValueError(
                f"{index_path}: expected ({self.meta['images']}, {len(INDEX_COLUMNS)}) rows, got {self.index.shape}"
            )
        self.shards = [self.root / shard["name"] for shard in self.meta["shards"]]
        for number, (path, shard) in enumerate(zip(self.shards, self.meta["shards"])):
            if not path.is_file() or path.stat().st_size != shard["bytes"]:
                found = path.stat().st_size if path.is_file() else "no file"
                raise ValueError(
                    f"{path}: a truncated or missing shard ({found} bytes, the pack says {shard['bytes']})"
                )
            rows = self.index[self.index[:, _SHARD] == number]
            if len(rows) and int((rows[:, _OFFSET] + rows[:, _SIZE]).max()) > shard["bytes"]:
                raise ValueError(f"{index_path} does not match {path}: it points past the shard's end")
        self.captions = self._captions() if "captions_sha256" in self.meta else None
        self.classes = list(self.meta["classes"])
        self.labels = torch.from_numpy(np.ascontiguousarray(self.index[:, _LABEL]))
        if classes is not None and self.classes and list(classes) != self.classes:
            unknown = [name for name in self.classes if name not in classes]
            if unknown:
                raise ValueError(
                    f"{self.root}: class(es) {unknown[:5]} are not among the training pack's {len(classes)} classes"
                )
            number = torch.tensor([list(classes).index(name) for name in self.classes])
            self.labels = torch.where(self.labels >= 0, number[self.labels.clamp(min=0)], self.labels)
            self.classes = list(classes)
        self.image_size = image_size
        self._files: dict[int, int] = {}
        self._pid = -1

    def _captions(self) -> list[str]:
        """A pair pack's captions (``captions.jsonl``: a JSON string a line, one per image in index order),
        checked against the SHA-256 that ``meta.json`` records."""
        import json

        from contrast.checkpoint import sha256

        path = self.root / CAPTIONS
        if not path.is_file() or sha256(path) != self.meta["captions_sha256"]:
            raise ValueError(f"{path} is missing or not the one written with this pack (SHA-256 differs); pack again")
        captions = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        if len(captions) != self.meta["images"] or not all(isinstance(c, str) for c in captions):
            raise ValueError(f"{path}: expected {self.meta['images']} captions (a JSON string a line); pack again")
        return captions

    @property
    def labelled(self) -> bool:
        return bool(self.classes) and bool((self.labels >= 0).all())

    def __len__(self) -> int:
        return int(self.index.shape[0])

    def read(self, i: int) -> bytes:
        """The JPEG bytes of image i (one positioned read)."""
        if self._pid != os.getpid():  # a new process (a DataLoader worker): handles of its own
            self._files, self._pid = {}, os.getpid()
        shard, offset, size = self.location(i)
        if shard not in self._files:
            self._files[shard] = os.open(self.shards[shard], os.O_RDONLY)
        return os.pread(self._files[shard], size, offset)

    def jpeg(self, i: int) -> tuple[bytes, int, int] | None:
        """(bytes, height, width) of image i, its size from the index (None when every image is resized
        to ``image_size``): the split path draws its boxes before decoding."""
        return None if self.image_size is not None else (self.read(i), *self.size(i))

    def sizes(self) -> set[tuple[int, int]]:
        """The distinct (width, height) of the images, from the index."""
        return {(int(w), int(h)) for h, w in np.unique(np.asarray(self.index[:, _HEIGHT : _WIDTH + 1]), axis=0)}

    def location(self, i: int) -> tuple[int, int, int]:
        """(shard, byte offset, byte size) of image i's JPEG."""
        row = self.index[i]
        return int(row[_SHARD]), int(row[_OFFSET]), int(row[_SIZE])

    def size(self, i: int) -> tuple[int, int]:
        """(height, width) of image i, from the index."""
        return int(self.index[i, _HEIGHT]), int(self.index[i, _WIDTH])

    def label(self, i: int) -> int:
        """Image i's label (-1: none), numbered by this reader's classes."""
        return int(self.labels[i])

    def largest_side(self) -> int:
        """The longest side of any image of the pack."""
        return int(np.asarray(self.index[:, _HEIGHT : _WIDTH + 1]).max())

    def image(self, i: int) -> Tensor:
        """Image i alone (the pair sources read pictures so)."""
        return self[i][0]

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        from torchvision.io import ImageReadMode, decode_jpeg
        from torchvision.transforms.v2 import functional as TF

        data = torch.frombuffer(bytearray(self.read(i)), dtype=torch.uint8)
        try:
            image = decode_jpeg(data, mode=ImageReadMode.RGB)
        except RuntimeError as error:
            raise self.damaged(i, error) from None
        if self.image_size is not None and tuple(image.shape[1:]) != (self.image_size, self.image_size):
            image = TF.center_crop(TF.resize(image, self.image_size, antialias=True), self.image_size)
        return image, int(self.labels[i])

    def damaged(self, i: int, error: BaseException) -> DamagedImageError:
        """The error for image ``i`` that failed to decode: its shard and offset."""
        shard, offset, _ = self.location(i)
        said = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        said = re.sub(r"^.*\.cpp:\d+, ", "", said)[-160:]  # torchvision's message, less its source location
        return DamagedImageError(
            f"{self.shards[shard]}: image {i} (at byte {offset}) cannot be decoded ({said}); the shard is damaged: "
            "pack the source again"
        )

    def __getstate__(self) -> dict:  # no file handles across processes
        return self.__dict__ | {"_files": {}, "_pid": -1}

    def __del__(self) -> None:
        for fd in getattr(self, "_files", {}).values():
            try:
                os.close(fd)
            except OSError:
                pass
