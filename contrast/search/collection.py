"""What ``contrast embed`` reads (a collection of images, or of captions) and what it writes next to
the embeddings to find each one again; and the fingerprint that ties embeddings and indexes to the
model that made them.

Images (``--images``): an image folder (flat, or one folder per class), a pack (``contrast pack``),
img2dataset's tar shards (a folder of ``.tar``, a brace pattern, or a folder with ``train/``), or an
open_clip CSV / TSV file. Texts (``--texts``): a text file with one caption per line, or the captions of
shards, of a CSV file or of a pack of pairs (``contrast pack --captions``). Each item's record (what the
metadata file keeps): its ``id`` (its number in the collection), and ``path``, or ``shard`` and ``key``
(with the member's name, offset and size), or ``pack`` and ``index`` (and its ``caption`` where it has
one).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch.utils.data import Dataset


class Collection(Dataset):
    """Items ``i`` -> (image (3, S, S) uint8 or caption, i); ``records[i]``: where item i came from."""

    def __init__(self, items, records: list[dict], kind: str) -> None:
        self.items, self.records, self.kind = items, records, kind

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int):
        if self.kind == "texts":
            return self.records[i]["caption"], i
        item = self.items[i]
        return (item[0] if isinstance(item, tuple) else item), i


def _kind(source: Path) -> str:
    if source.suffix in (".csv", ".tsv") and source.is_file():
        return "csv"
    if source.suffix == ".txt" and source.is_file():
        return "lines"
    if (source / "meta.json").is_file():
        return "pack"
    if "{" in str(source) or source.suffix == ".tar" or (source.is_dir() and any(source.glob("*.tar"))):
        return "shards"
    if source.is_dir() and (source / "train").is_dir() and any((source / "train").glob("*.tar")):
        return "shards"
    return "folder"


def _shards(source: Path, image_size: int):
    from contrast.data.shards import shard_pairs

    spec = str(source / "train") if (source / "train").is_dir() else str(source)
    images, captions = shard_pairs(spec, image_size)
    records = [
        {
            "shard": str(member.shard),
            "key": member.name.rsplit(".", 1)[0],
            "member": member.name,
            "offset": member.offset,
            "size": member.size,
            "caption": caption,
        }
        for (member, _), caption in zip(images.samples, captions)
    ]
    return images, records


def images_of(spec: str, image_size: int) -> Collection:
    """The images of ``spec`` (see the module doc), resized and centre-cropped to ``image_size``."""
    source = Path(spec).expanduser()
    kind = _kind(source)
    if kind == "csv":
        from contrast.data.shards import csv_pairs

        separator = "\t" if source.suffix == ".tsv" or "\t" in source.open().readline() else ","
        images, captions = csv_pairs(str(source), image_size, "filepath", "title", separator)
        records = [{"path": str(path), "caption": c} for (path, _), c in zip(images.samples, captions)]
    elif kind == "pack":
        from contrast.data.pack.read import PackedImages

        images = PackedImages(source, image_size)
        records = [{"pack": str(source), "index": i} for i in range(len(images))]
        for record, caption in zip(records, images.captions or []):  # a pack of image–caption pairs
            record["caption"] = caption
    elif kind == "shards":
        images, records = _shards(source, image_size)
    elif kind == "lines":
        raise ValueError(f"--images {spec}: a text file; give it as --texts")
    else:
        from contrast.data.files import FolderImages

        images = FolderImages(source, image_size)
        records = [{"path": str(path)} for path, _ in images.samples]
    for i, record in enumerate(records):
        record["id"] = i
        for key in ("path", "shard", "pack"):  # absolute: the service may run from another folder
            if key in record:
                record[key] = str(Path(record[key]).resolve())
    return Collection(images, records, "images")


def texts_of(spec: str) -> Collection:
    """The captions of ``spec``: a text file (one a line), or the captions of shards or a CSV file."""
    source = Path(spec).expanduser()
    kind = _kind(source)
    if kind == "lines":
        captions = [line.strip() for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not captions:
            raise ValueError(f"--texts {spec}: no captions (one a line)")
        records = [{"caption": c} for c in captions]
    elif kind in ("csv", "shards", "pack"):
        records = [{k: v for k, v in r.items() if k != "id"} for r in images_of(spec, 8).records]
        if records and "caption" not in records[0]:
            raise ValueError(f"--texts {spec}: a pack of images without captions (contrast pack --captions)")
    else:
        raise ValueError(f"--texts {spec}: expected a .txt file (a caption a line), shards, a CSV file or a pair pack")
    for i, record in enumerate(records):
        record["id"] = i
    return Collection(None, records, "texts")


def fingerprint(model: torch.nn.Module) -> str:
    """A digest of a model's weights (names, shapes, values): what embeddings and indexes record, so
    that a search with another model is refused."""
    digest = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        digest.update(name.encode())
        tensor = value.detach().cpu().contiguous()
        digest.update(str(tuple(tensor.shape)).encode() + str(tensor.dtype).encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()[:16]
