"""Make an ImageNet-like folder offline: JPEGs of varied sizes (shorter and longer sides 160–800 px,
aspect ratios 1:2 to 2:1), in ImageFolder layout (``OUT/train/<class>/``, ``OUT/val/<class>/``).

Two kinds of pictures, chosen with ``--kind``:

* ``photos`` (default): crops of the real photographs scikit-learn ships in its wheel
  (``china.jpg``, ``flower.jpg``), resized to each target size: camera statistics (JPEG of
  natural images, ~500×375 typical), unlabelled in substance (10 pseudo-classes by crop position);
* ``cifar10``: CIFAR-10 (``$CONTRAST_DATA_DIR/cifar10-jpeg``) upscaled to the varied sizes, a
  labelled set for learning checks.

Deterministic for a seed; a CI-sized set (``--train 200 --val 50``) takes seconds.

    python benchmarks/make_imagenet_like.py --out /tmp/imagenet_like --train 2000 --val 500
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = 10


def target_size(rng: np.random.Generator) -> tuple[int, int]:
    """(width, height): aspect ratio log-uniform in [1/2, 2], area around 500×375, sides in [160, 800]."""
    ratio = math.exp(rng.uniform(math.log(0.5), math.log(2.0)))
    area = rng.uniform(0.4, 1.6) * 500 * 375
    width, height = math.sqrt(area * ratio), math.sqrt(area / ratio)
    return int(np.clip(width, 160, 800)), int(np.clip(height, 160, 800))


def photo_source():
    from sklearn.datasets import load_sample_images

    photos = [Image.fromarray(image) for image in load_sample_images().images]

    def make(i: int, rng: np.random.Generator) -> tuple[Image.Image, int]:
        photo = photos[i % len(photos)]
        w, h = photo.size
        cw, ch = int(w * rng.uniform(0.35, 1.0)), int(h * rng.uniform(0.35, 1.0))
        left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        label = (left * 5 // max(1, w - cw + 1)) * 2 + (i % len(photos))  # where the crop is, which photo
        return photo.crop((left, top, left + cw, top + ch)), int(label) % CLASSES

    return make


def cifar_source(train: bool):
    import os

    root = Path(os.environ.get("CONTRAST_DATA_DIR", "data")) / "cifar10-jpeg" / ("train" if train else "test")
    if not root.is_dir():
        raise SystemExit(f"--kind cifar10 needs {root} (set CONTRAST_DATA_DIR)")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    files = [sorted((root / c).glob("*.jpg")) for c in classes]

    def make(i: int, rng: np.random.Generator) -> tuple[Image.Image, int]:
        label = i % len(classes)
        path = files[label][(i // len(classes)) % len(files[label])]
        with Image.open(path) as image:
            return image.convert("RGB"), label

    return make


def write_split(out: Path, n: int, make, seed: int, quality: int) -> None:
    rng = np.random.default_rng(seed)
    for i in range(n):
        picture, label = make(i, rng)
        size = target_size(rng)
        folder = out / f"class_{label:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        picture.resize(size, Image.Resampling.BICUBIC).save(folder / f"{i:07d}.jpg", quality=quality)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--kind", choices=["photos", "cifar10"], default="photos")
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--val", type=int, default=500)
    parser.add_argument("--quality", type=int, default=90)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = Path(args.out)
    for split, n, seed in (("train", args.train, args.seed), ("val", args.val, args.seed + 1)):
        make = photo_source() if args.kind == "photos" else cifar_source(split == "train")
        write_split(out / split, n, make, seed, args.quality)
    print(f"wrote {args.train} + {args.val} JPEGs of varied sizes to {out}/train and {out}/val")


if __name__ == "__main__":
    main()
