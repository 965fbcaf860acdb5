"""Make image–text data offline in the two layouts users bring: img2dataset's webdataset shards and
open_clip's CSV, from an ImageFolder tree (CIFAR-10's JPEG copy, or the ImageNet-like photographs of
``make_imagenet_like.py``) with captions drawn from templates and synonyms of the class names.

* ``OUT/train/00000.tar`` … and ``OUT/test/…``: img2dataset's layout, ``--per-shard`` samples a
  shard, each sample ``<key>.jpg`` (the source JPEG's bytes, not re-encoded), ``<key>.txt`` (the
  caption) and ``<key>.json`` (key, caption, label, width, height, status), keys
  ``<shard><index in shard>`` zero-padded as img2dataset writes them;
* ``OUT/train.csv`` and ``OUT/test.csv``: open_clip's CSV (tab-separated ``filepath`` and ``title``
  columns), the paths relative to OUT, pointing at the source files (nothing copied).

Real tar files (Python's ``tarfile``, ustar, sorted, time 0: the same bytes for the same input).

    python benchmarks/make_shards.py --source $CONTRAST_DATA_DIR/cifar10-jpeg --out /tmp/cifar_shards
    python benchmarks/make_shards.py --source /tmp/imagenet_like --test-split val --out /tmp/photo_shards
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import tarfile
from pathlib import Path

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from contrast.data.captions import class_caption  # noqa: E402
from contrast.seeds import derive_seed  # noqa: E402


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    tar.addfile(info, io.BytesIO(data))


def write_split(source: Path, out: Path, csv_file: Path, per_shard: int, limit: int | None, seed: int) -> int:
    classes = sorted(d.name for d in source.iterdir() if d.is_dir() and not d.name.startswith("."))
    files = [(path, label) for label, name in enumerate(classes) for path in sorted((source / name).glob("*.jpg"))]
    order = torch.randperm(len(files), generator=torch.Generator().manual_seed(seed)).tolist()  # classes mixed
    files = [files[i] for i in order][:limit]
    out.mkdir(parents=True, exist_ok=True)
    shards = (len(files) + per_shard - 1) // per_shard
    shard_digits, sample_digits = max(5, len(str(shards - 1))), max(4, len(str(per_shard - 1)))
    rows = []
    for shard in range(shards):
        partial = out / f"{shard:0{shard_digits}d}.tar.partial"
        with tarfile.open(partial, "w", format=tarfile.USTAR_FORMAT) as tar:
            for i in range(shard * per_shard, min(len(files), (shard + 1) * per_shard)):
                path, label = files[i]
                g = torch.Generator().manual_seed(derive_seed(seed, "caption", i))
                caption = class_caption(classes[label], g)
                key = f"{shard:0{shard_digits}d}{i - shard * per_shard:0{sample_digits}d}"
                with Image.open(path) as image:
                    width, height = image.size
                meta = {"key": key, "caption": caption, "label": label, "width": width, "height": height}
                _add(tar, f"{key}.jpg", path.read_bytes())
                _add(tar, f"{key}.txt", caption.encode())
                _add(tar, f"{key}.json", json.dumps({**meta, "status": "success"}).encode())
                rows.append((os.path.relpath(path, csv_file.parent), caption))
        os.replace(partial, partial.with_suffix(""))  # a half-written shard is never taken for one
    with open(csv_file.with_suffix(".partial"), "w", newline="") as f:
        writer = csv.writer(f, delimiter="\t")
        writer.writerow(["filepath", "title"])
        writer.writerows(rows)
    os.replace(csv_file.with_suffix(".partial"), csv_file)
    return len(files)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", required=True, help="an ImageFolder tree with train/ and test/ (or --test-split)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--test-split", default="test", help="the source's test folder (val for ImageNet-like)")
    parser.add_argument("--per-shard", type=int, default=10000, help="samples a shard (img2dataset's default)")
    parser.add_argument("--train", type=int, help="at most this many training samples")
    parser.add_argument("--test", type=int, help="at most this many test samples")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    source, out = Path(args.source), Path(args.out)
    for split, folder, limit in (("train", "train", args.train), ("test", args.test_split, args.test)):
        n = write_split(source / folder, out / split, out / f"{split}.csv", args.per_shard, limit, args.seed)
        print(f"{split}: {n} samples in {out / split} and {out / f'{split}.csv'}")


if __name__ == "__main__":
    main()
