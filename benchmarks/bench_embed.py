"""``contrast embed`` against the loop a user writes by hand: images/s per core on the same files, the
same model and batch size, one torch thread, side by side in one run.

* plain: ``torchvision.datasets.ImageFolder`` (PIL decode, ``Resize`` + ``CenterCrop`` + ``ToTensor`` +
  ``Normalize``), a ``DataLoader``, the model's image tower, the embeddings gathered in a list and
  saved as one float32 ``.npy``;
* contrast: ``contrast embed --images FOLDER`` (torchvision's decoder, uint8 batches normalised by the
  model, float16 shards of 10,000 with their records).

The files: CIFAR-10's test split (``$CONTRAST_DATA_DIR/cifar10-jpeg/test``, 10,000 JPEGs, 32 px) or
``--folder`` (an ImageFolder tree, e.g. ``make_imagenet_like.py``'s photographs with ``--image-size 224``).

    python benchmarks/bench_embed.py
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import append_results, markdown_table, two_tower_checkpoint  # noqa: E402


@torch.no_grad()
def plain(folder: Path, model, image_size: int, batch: int, out: Path) -> float:
    from torchvision import datasets, transforms

    mean, std = model.hparams.image_mean, model.hparams.image_std
    preprocess = transforms.Compose(
        [
            transforms.Resize(image_size),
            transforms.CenterCrop(image_size),
            transforms.ToTensor(),
            transforms.Normalize(mean, std),
        ]
    )
    loader = torch.utils.data.DataLoader(datasets.ImageFolder(str(folder), preprocess), batch_size=batch)
    start = time.perf_counter()
    rows = [torch.nn.functional.normalize(model.embed_images(x), dim=1).numpy() for x, _ in loader]
    np.save(out / "plain.npy", np.concatenate(rows))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", help="an ImageFolder tree (default: CIFAR-10's test split)")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    folder = Path(args.folder or Path(os.environ.get("CONTRAST_DATA_DIR", "data")) / "cifar10-jpeg/test")
    from contrast.search.embed import embed

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        from contrast.methods import CrossModal

        small = dict(train_size=64, test_size=16, batch_size=8, image_size=args.image_size)
        ckpt = two_tower_checkpoint(root, "resnet18", **small)
        model = CrossModal.from_checkpoint(ckpt)
        count = sum(1 for _ in folder.rglob("*.jpg"))
        theirs = plain(folder, model, args.image_size, args.batch, root)
        start = time.perf_counter()
        embed(str(ckpt), str(root / "out"), str(folder), None, batch_size=args.batch, image_size=args.image_size)
        ours = time.perf_counter() - start
        a = np.load(root / "plain.npy")
        b = np.concatenate([np.load(p) for p in sorted((root / "out/images").glob("*.npy"))]).astype(np.float32)
        agreement = float(np.mean(np.sum(a * b, axis=1)))  # the same images, in the same order
    rows = [
        ["plain torch.utils.data loop", f"{count:,}", f"{theirs:.1f}", f"{count / theirs:,.0f}", "1.00x"],
        ["contrast embed", f"{count:,}", f"{ours:.1f}", f"{count / ours:,.0f}", f"{theirs / ours:.2f}x"],
    ]
    table = markdown_table(["pipeline", "images", "s", "images/s (one core)", "vs plain"], rows)
    print(table)
    print(f"mean cosine between the two pipelines' embeddings of each image: {agreement:.4f}")
    if not args.no_append:
        notes = (
            f"{folder.name} of {folder.parent.name}, a ResNet-18 image tower at {args.image_size} px (random weights), "
            f"batch {args.batch}, one torch thread, no DataLoader workers on either side; contrast's time includes "
            f"loading the checkpoint and writing float16 shards with their records. Mean cosine between the two "
            f"pipelines' embeddings of each image: {agreement:.4f} (PIL's and torchvision's decoders and "
            "resizers differ)."
        )
        append_results("contrast embed against a plain loop", "cpu", table, notes)


if __name__ == "__main__":
    main()
