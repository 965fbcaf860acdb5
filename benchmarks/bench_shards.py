"""Image–text shards into training batches, per worker core: contrast's shard source against
open_clip's own webdataset pipeline (``open_clip_train.data.get_wds_dataset`` with its training
preprocess and tokenizer) on the same img2dataset-layout shards, the same batch size and the same
number of DataLoader workers, one epoch each, alone, side by side.

* contrast: ``PairedData(dataset="webdataset", image_size=224, tokenizer="open_clip/ViT-B-32")``:
  members read by offset through the cached index, JPEG decoded by torchvision, shorter side resized
  to 224 and centre-cropped, uint8 batches (normalised on the device by the model), captions
  tokenised by open_clip's tokenizer once at set-up (reported apart), a global seeded shuffle.
* open_clip: shards shuffled in a buffer, samples streamed through a 1,000-sample shuffle buffer,
  PIL decode, ``RandomResizedCrop(224, scale=(0.9, 1))`` + ``ToTensor`` + ``Normalize`` (float32),
  captions tokenised per sample in the workers.

Data: ``--shards DIR`` (``make_shards.py`` output); without it, ImageNet-like photographs (varied
sizes around 500×375, ``make_imagenet_like.py``) are made and sharded in a temporary folder.

    python benchmarks/bench_shards.py --samples 2000 --workers 1
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import append_results, markdown_table  # noqa: E402

MODEL = "ViT-B-32"


def make_shards(folder: Path, samples: int, per_shard: int) -> Path:
    import make_imagenet_like
    import make_shards

    photos = folder / "photos"
    make_imagenet_like.main(["--out", str(photos), "--train", str(samples), "--val", "100"])
    make_shards.main(
        ["--source", str(photos), "--test-split", "val", "--out", str(folder / "shards"), "--per-shard", str(per_shard)]
    )
    return folder / "shards"


def run_ours(shards: Path, batch: int, workers: int) -> dict:
    from contrast.data import PairedData

    start = time.perf_counter()
    data = PairedData(
        dataset="webdataset",
        root=str(shards),
        image_size=224,
        batch_size=batch,
        num_workers=workers,
        tokenizer=f"open_clip/{MODEL}",
        max_length=77,
    )
    data.tokens(True)  # the member index and the captions' ids
    setup = time.perf_counter() - start
    return {"setup": setup, **_epoch(data.train_dataloader(), lambda b: (b[0].shape[0], b[1].shape[0]))}


def run_open_clip(shards: Path, batch: int, workers: int, samples: int) -> dict:
    import open_clip
    from open_clip_train.data import get_wds_dataset

    files = sorted((shards / "train").glob("*.tar"))
    pattern = f"{shards / 'train'}/{{{files[0].stem}..{files[-1].stem}}}.tar"
    args = SimpleNamespace(
        train_data=pattern,
        train_num_samples=samples,
        dataset_resampled=False,
        seed=0,
        batch_size=batch,
        workers=workers,
        world_size=1,
        train_data_upsampling_factors=None,
    )
    start = time.perf_counter()
    preprocess = open_clip.image_transform(224, is_train=True)
    info = get_wds_dataset(args, preprocess, is_train=True, tokenizer=open_clip.get_tokenizer(MODEL))
    setup = time.perf_counter() - start
    return {"setup": setup, **_epoch(info.dataloader, lambda b: (b[0].shape[0], b[1].shape[0]))}


def _epoch(loader, sizes) -> dict:
    """One pass: samples/s over the whole epoch, and after its first batch (the workers' start-up)."""
    start = time.perf_counter()
    count, first = 0, None
    for batch in loader:
        n, m = sizes(batch)
        assert n == m, "images and captions of a batch"
        count += n
        if first is None:
            first = (time.perf_counter(), count)
    end = time.perf_counter()
    steady = (count - first[1]) / (end - first[0]) if end > first[0] else float("nan")
    return {"samples": count, "seconds": end - start, "rate": count / (end - start), "steady": steady}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shards", help="a make_shards.py output folder (default: made here)")
    parser.add_argument("--samples", type=int, default=2000, help="training samples to make (without --shards)")
    parser.add_argument("--per-shard", type=int, default=500)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1, help="DataLoader workers of each pipeline")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        shards = Path(args.shards) if args.shards else make_shards(Path(tmp), args.samples, args.per_shard)
        samples = sum(1 for _ in (shards / "train.csv").open()) - 1
        ours = run_ours(shards, args.batch, args.workers)
        theirs = run_open_clip(shards, args.batch, args.workers, samples)
    rows = [
        [
            name,
            f"{r['samples']:,}",
            f"{r['setup']:.1f}",
            f"{r['seconds']:.1f}",
            f"{r['rate']:,.0f}",
            f"{r['steady']:,.0f}",
            f"{r['steady'] / theirs['steady']:.2f}x",
        ]
        for name, r in (("contrast (shard index, map-style)", ours), ("open_clip get_wds_dataset", theirs))
    ]
    header = ["pipeline", "samples", "set-up s", "epoch s", "samples/s", "samples/s after 1st batch", "vs open_clip"]
    table = markdown_table(header, rows)
    print(table)
    if not args.no_append:
        notes = (
            f"{samples:,} ImageNet-like JPEGs (about 500×375) in img2dataset-layout shards of {args.per_shard}, batch "
            f"{args.batch}, {args.workers} DataLoader worker(s) each, 224-px images and {MODEL}'s tokenizer, one "
            "torch thread. contrast: uint8 centre crops (normalised on the device), captions tokenised at set-up; "
            "open_clip: its training preprocess (RandomResizedCrop scale 0.9–1, float normalised), tokenised in "
            "the workers. The ratio is of the rates after the first batch."
        )
        append_results(
            "Image–text shards into batches: contrast vs open_clip's webdataset pipeline", "cpu", table, notes
        )


if __name__ == "__main__":
    main()
