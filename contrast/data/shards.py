"""Image–text pairs as users have them at scale: webdataset tar shards in img2dataset's layout, and
open_clip's CSV / TSV files.

* Shards (``dataset: webdataset``): ``00000.tar`` holding ``000010005.jpg`` with its caption in
  ``000010005.txt`` (or a ``caption_key`` of ``000010005.json``); a sample is the members that share
  a key (the name up to its first dot, webdataset's rule). Each shard is read once for its member
  index, (name, offset, size) of every member, cached beside it as ``<shard>.index.json`` (or under
  ``$CONTRAST_CACHE_DIR`` / ``~/.cache/contrast`` when the shards are read-only), written atomically
  and rebuilt when the shard's size or time changes. The images are then read by offset, one
  member at a time, so the shards are a map-style dataset: the global rank-strided shuffle and the
  exact mid-epoch resume of every other source hold on them, whatever the number of workers (what
  ``wids`` does for webdataset; its streaming loader shuffles in a buffer and resumes by epoch).
* CSV (``dataset: csv``): a table with an image path column (``csv_img_key``, relative to the
  file) and a caption column (``csv_caption_key``), separated by ``csv_separator`` (open_clip's
  ``--csv-img-key filepath --csv-caption-key title --csv-separator "\\t"``).

The splits: ``root`` is a folder with ``train/`` and ``test/`` (shards) or ``train.csv`` and
``test.csv`` (``.tsv``), or the training split itself (a folder of shards, a brace pattern such as
``shards/{00000..00099}.tar``, a CSV file) with ``eval_root`` the test split's.

A sample without a readable image or a caption (missing, or empty) stops the run with the shard and
key named, unless ``skip_corrupt``: then it is left out and counted in a warning.
"""

from __future__ import annotations

import csv
import json
import os
import re
import tarfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from contrast.data.files import DataNotFoundError, ImageFiles

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
INDEX_VERSION = 1


@dataclass(frozen=True)
class TarMember:
    """One member of a tar shard, read by offset: what :class:`~contrast.data.files.ImageFiles`
    decodes in place of a path (it needs ``suffix`` and ``read_bytes()``)."""

    shard: Path
    name: str
    offset: int
    size: int

    @property
    def suffix(self) -> str:
        return "." + self.name.rsplit(".", 1)[-1]

    def read_bytes(self) -> bytes:
        with open(self.shard, "rb") as f:
            f.seek(self.offset)
            data = f.read(self.size)
        if len(data) != self.size:
            raise OSError(f"{self.shard} ends before member {self.name} does (a truncated shard)")
        return data

    def __str__(self) -> str:
        return f"{self.shard}:{self.name}"


def expand(spec: str) -> list[Path]:
    """The shards of a spec: a folder (its ``*.tar``, sorted), a brace pattern (``a/{000..012}.tar``,
    ``a/{x,y}.tar``: webdataset's notation), or one ``.tar`` file."""
    match = re.search(r"\{([^{}]*)\}", spec)
    if match:
        body = match.group(1)
        numeric = re.fullmatch(r"(\d+)\.\.(\d+)", body)
        if numeric:
            first, last = numeric.groups()
            width = len(first) if first.startswith("0") else 0
            options = [str(i).zfill(width) for i in range(int(first), int(last) + 1)]
        else:
            options = body.split(",")
        return [shard for option in options for shard in expand(spec[: match.start()] + option + spec[match.end() :])]
    path = Path(spec).expanduser()
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix == ".tar" and not p.name.startswith("."))
    return [path]


def _cache_path(shard: Path) -> Path:
    beside = shard.with_name(shard.name + ".index.json")
    if os.access(shard.parent, os.W_OK):
        return beside
    import hashlib

    base = Path(os.environ.get("CONTRAST_CACHE_DIR") or Path.home() / ".cache" / "contrast") / "shard-index"
    return base / (hashlib.sha1(str(shard.resolve()).encode()).hexdigest() + ".json")


def member_index(shard: Path) -> list[tuple[str, int, int]]:
    """(name, offset, size) of every file in ``shard``, from its cached index or by reading the tar
    once (then cached, atomically)."""
    if not shard.is_file():
        raise DataNotFoundError(f"shard {shard}: no such file")
    stat = shard.stat()
    stamp = {"version": INDEX_VERSION, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    cache = _cache_path(shard)
    try:
        cached = json.loads(cache.read_text())
        if {k: cached.get(k) for k in stamp} == stamp:
            return [tuple(m) for m in cached["members"]]
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no index yet, or a stale or damaged one: read the shard
    try:
        with tarfile.open(shard, "r:") as tar:
            members = [(m.name, m.offset_data, m.size) for m in tar if m.isfile()]
    except (tarfile.TarError, EOFError) as error:
        raise ValueError(f"shard {shard}: not a readable tar file ({error})") from None
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_name(cache.name + f".{os.getpid()}.partial")
        partial.write_text(json.dumps({**stamp, "members": members}))
        os.replace(partial, cache)  # a half-written index is never taken for one
    except OSError:
        pass  # an index that cannot be cached is read again next time
    return members


def _samples(shard: Path) -> list[tuple[str, TarMember | None, TarMember | None, TarMember | None]]:
    """(key, image member, .txt member, .json member) of each key of a shard, in shard order."""
    grouped: dict[str, dict[str, TarMember]] = {}
    for name, offset, size in member_index(shard):
        base = name.rsplit("/", 1)[-1]
        if "." not in base:
            continue
        key = name[: len(name) - len(base)] + base.split(".", 1)[0]
        grouped.setdefault(key, {})[base.split(".", 1)[1].lower()] = TarMember(shard, name, offset, size)
    return [
        (key, next((m[e] for e in IMAGE_EXTENSIONS if e in m), None), m.get("txt"), m.get("json"))
        for key, m in grouped.items()
    ]


def _caption(txt: TarMember | None, meta: TarMember | None, caption_key: str | None) -> str:
    if caption_key is not None:
        if meta is None:
            return ""
        value = json.loads(meta.read_bytes().decode("utf-8")).get(caption_key)
        return value.strip() if isinstance(value, str) else ""
    return txt.read_bytes().decode("utf-8").strip() if txt is not None else ""


def shard_pairs(spec: str, image_size: int, caption_key: str | None = None, skip_corrupt: bool = False):
    """(images, captions) of the shards of ``spec``: images an :class:`ImageFiles` over tar members."""
    shards = expand(spec)
    if not shards or not any(s.is_file() for s in shards):
        raise DataNotFoundError(f"shards {spec}: no .tar files found")
    images, captions, skipped = [], [], []
    for shard in shards:
        samples = _samples(shard)
        if not samples:
            raise ValueError(f"shard {shard}: holds no samples (members named <key>.<extension>)")
        for key, image, txt, meta in samples:
            what = "image (.jpg, .png, .webp)" if image is None else None
            caption = "" if what else _caption(txt, meta, caption_key)
            if not what and not caption:
                what = f"caption ({'.json key ' + repr(caption_key) if caption_key else '.txt'}, not empty)"
            if what:
                if not skip_corrupt:
                    raise ValueError(
                        f"shard {shard}: sample {key!r} has no {what} "
                        "(--data.skip_corrupt true leaves such samples out)"
                    )
                skipped.append(f"{shard.name}:{key}")
                continue
            images.append((image, -1))
            captions.append(caption)
    if skipped:
        warnings.warn(f"left out {len(skipped)} samples without an image or caption, e.g. {skipped[0]}", stacklevel=2)
    if not images:
        raise ValueError(f"shards {spec}: no sample has both an image and a caption")
    return ImageFiles(images, image_size), captions  # an undecodable image: the pair dataset's to skip


def csv_rows(file: Path, img_key: str, caption_key: str, separator: str, options: str) -> list[tuple[str, str]]:
    """(image path as written, caption stripped) of each row of an open_clip CSV / TSV file; a missing
    column is named with the columns found and ``options``, the options that choose them."""
    with open(file, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter=separator)
        missing = [key for key in (img_key, caption_key) if key not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"CSV {file}: no column {missing[0]!r} (columns: {reader.fieldnames}); set {options}")
        return [(row[img_key], (row[caption_key] or "").strip()) for row in reader]


def csv_pairs(path: str, image_size: int, img_key: str, caption_key: str, separator: str, skip_corrupt: bool = False):
    """(images, captions) of an open_clip CSV / TSV file; image paths relative to the file."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise DataNotFoundError(f"CSV {file}: no such file")
    options = "--data.csv_img_key / --data.csv_caption_key, and --data.csv_separator (a tab by default, as open_clip)"
    rows = csv_rows(file, img_key, caption_key, separator, options)
    empty = [n + 2 for n, (_, caption) in enumerate(rows) if not caption]
    if empty and not skip_corrupt:
        raise ValueError(
            f"CSV {file}: {len(empty)} empty captions (line {empty[0]} first); --data.skip_corrupt true leaves them out"
        )
    if empty:
        warnings.warn(f"CSV {file}: left out {len(empty)} rows with empty captions", stacklevel=2)
    rows = [(name, caption) for name, caption in rows if caption]
    if not rows:
        raise ValueError(f"CSV {file}: no rows with a caption")
    images = ImageFiles([(file.parent / name, -1) for name, _ in rows], image_size)
    return images, [caption for _, caption in rows]


def split_spec(root: str | None, eval_root: str | None, train: bool, dataset: str) -> str:
    """The shards (or CSV file) of a split; see the module doc."""
    if root is None:
        raise DataNotFoundError(f"dataset {dataset}: give the data with --data.root (see contrast.data.shards)")
    base = Path(root).expanduser()
    suffix = "" if dataset == "webdataset" else ".csv" if (base / "train.csv").is_file() else ".tsv"
    names = (f"train{suffix}", f"test{suffix}")  # train/ and test/ of shards, or train.csv / .tsv and test's
    if base.is_dir() and (base / names[0]).exists():
        return str(base / names[0 if train else 1])
    if train:
        return root
    if eval_root is None:
        raise DataNotFoundError(
            f"dataset {dataset}: no test split; put the data in {root}/{names[0]} and {root}/{names[1]}, "
            "or give the test split with --data.eval_root"
        )
    return eval_root


def split_of(images: ImageFiles, captions: list[str]):
    """A :class:`~contrast.data.pair_sources.PairedSplit` of unlabelled pairs, one caption per image."""
    from contrast.data.pair_sources import PairedSplit

    n = len(captions)
    return PairedSplit(images, torch.full((n,), -1, dtype=torch.long), torch.arange(n), captions)
