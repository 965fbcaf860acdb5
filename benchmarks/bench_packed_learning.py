"""Learning through the packed path: SimCLR on upscaled CIFAR-10, the same recipe, budget and seeds,
(a) in memory with batched views (the images decoded once into one tensor) against (b) packed with
views cut from the whole image (``--data.views split``). Target: kNN top-1 within 2 points.

The data: ``train_per_class`` × 10 training and ``test_per_class`` × 10 test images of
``$CONTRAST_DATA_DIR/cifar10-jpeg``, upscaled to 64 px (bicubic, JPEG q95), so that the 32-px views
are cut from a larger image, as on photos. The model: the quickstart config (SimCLR, tiny CNN),
recipe ``simclr_cifar10``; kNN k=200, τ=0.1 on backbone features, the train split as the bank.
Appends its table to RESULTS.md.

    python benchmarks/bench_packed_learning.py --epochs 15 --seeds 0,1
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import append_results, markdown_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def upscaled_cifar(out: Path, train_per_class: int, test_per_class: int) -> None:
    from PIL import Image

    source = Path(os.environ.get("CONTRAST_DATA_DIR", "data")) / "cifar10-jpeg"
    if not source.is_dir():
        raise SystemExit(f"needs {source} (set CONTRAST_DATA_DIR)")
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        for folder in sorted(p for p in (source / split).iterdir() if p.is_dir()):
            target = out / split / folder.name
            target.mkdir(parents=True, exist_ok=True)
            for path in sorted(folder.glob("*.jpg"))[:per_class]:
                with Image.open(path) as image:
                    image.convert("RGB").resize((64, 64), Image.Resampling.BICUBIC).save(target / path.name, quality=95)


def fit(args: list[str], cwd: Path) -> tuple[float, float]:
    command = [
        sys.executable,
        "-m",
        "contrast.cli",
        "fit",
        "--config",
        str(ROOT / "configs" / "quickstart.yaml"),
        *args,
    ]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(result.stderr[-3000:])
    top1 = float(re.search(r"kNN accuracy .*: top-1 ([\d.]+)%", result.stdout).group(1))
    return top1, time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-per-class", type=int, default=500)
    parser.add_argument("--test-per-class", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args(argv)
    from contrast.data.pack import pack

    seeds = [int(s) for s in args.seeds.split(",")]
    common = ["--data.recipe_q", "simclr_cifar10", "--trainer.max_epochs", str(args.epochs), "--data.batch_size", "128"]
    common += ["--trainer.enable_progress_bar", "false"]
    results: dict[str, list[tuple[float, float]]] = {"memory": [], "packed": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        upscaled_cifar(work / "cifar64", args.train_per_class, args.test_per_class)
        for split, name in (("train", "train"), ("test", "val")):
            pack(work / "cifar64" / split, work / "packs" / name, progress=False)
        for seed in seeds:
            seeded = [*common, "--seed_everything", str(seed), "--data.seed", str(seed)]
            memory = ["--data.dataset", "imagefolder", "--data.root", str(work / "cifar64"), "--data.image_size", "64"]
            memory += ["--data.cache", "memory", "--data.views", "batched"]
            packed = ["--data.dataset", "packed", "--data.root", str(work / "packs"), "--data.views", "split"]
            results["memory"].append(fit([*seeded, *memory, "--run_dir", f"memory_{seed}"], work))
            results["packed"].append(fit([*seeded, *packed, "--run_dir", f"packed_{seed}"], work))
    mean = {k: sum(t for t, _ in v) / len(v) for k, v in results.items()}
    rows = [
        [
            "in memory, batched views (image decoded once, crop of the 64-px image on the device)",
            ", ".join(f"{t:.2f}" for t, _ in results["memory"]),
            f"{mean['memory']:.2f}",
            f"{sum(s for _, s in results['memory']) / len(seeds):.0f} s",
        ],
        [
            "packed, split views (crop of the whole image in the worker, colour on the device)",
            ", ".join(f"{t:.2f}" for t, _ in results["packed"]),
            f"{mean['packed']:.2f}",
            f"{sum(s for _, s in results['packed']) / len(seeds):.0f} s",
        ],
    ]
    table = markdown_table(["path", "kNN top-1 per seed (%)", "mean", "time per run"], rows)
    print(table)
    print(f"difference: {mean['packed'] - mean['memory']:+.2f} points (target: within 2)")
    if not args.no_append:
        notes = (
            f"SimCLR (quickstart config: tiny CNN, batch 128), recipe simclr_cifar10, {args.epochs} epochs on "
            f"{10 * args.train_per_class} cifar10-jpeg training images upscaled to 64 px, {10 * args.test_per_class} "
            f"test images; seeds {args.seeds}; kNN k=200, τ=0.1, backbone features, the train split as the bank. "
            f"Difference of the means: {mean['packed'] - mean['memory']:+.2f} points (target: within 2)."
        )
        append_results(
            "Learning through the packed path (split views) against in-memory batched views", "cpu", table, notes
        )


if __name__ == "__main__":
    main()
