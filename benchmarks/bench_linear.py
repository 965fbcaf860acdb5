"""Linear evaluation on this machine: the three protocols on one checkpoint, and the feature mode's memory.

1. ``--ckpt CKPT`` (a ``contrast fit`` checkpoint pretrained on CIFAR-10): top-1 of
   * the L-BFGS probe (full batch, float64, standardised features, weight decay chosen on a
     held-out tenth): ``contrast probe --ckpt CKPT``;
   * the feature mode (BatchNorm + linear head, mini-batch SGD on float16 features extracted once):
     ``contrast probe --ckpt CKPT --mode sgd``;
   * augmented views (LinearEval: RandomResizedCrop + flip, the frozen backbone run every step):
     ``contrast fit --config configs/linear_cifar10.yaml --model.init_args.weights CKPT``;
   side by side, each with its command and time.
2. ``--memory``: peak resident memory of the feature mode on N synthetic float16 features
   (default 1,281,167 × 2048, ImageNet's training set through a ResNet-50) against their own size,
   for features held in memory and memory-mapped from disk; one epoch at batch 1024, 1000 classes.

    python benchmarks/bench_linear.py --ckpt runs/cifar/checkpoints/last.ckpt --aug_epochs 10 \
        --aug_recipes linear_cifar10 linear_cifar10_mild linear_cifar10_flip
    python benchmarks/bench_linear.py --memory
"""

from __future__ import annotations

import argparse
import json
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


def _run(args: list[str], cwd: Path) -> tuple[str, float]:
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "contrast.cli", *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - start
    print(result.stdout.strip().splitlines()[-1] if result.stdout.strip() else "", f"({seconds:.0f} s)", flush=True)
    if result.returncode != 0:
        raise SystemExit(f"contrast {' '.join(args)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    return result.stdout, seconds


def protocols(ckpt: Path, aug_epochs: int, sgd_epochs: int, aug_recipes: list[str]) -> list[list[str]]:
    from contrast.views import get_recipe

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        probe = ["probe", "--ckpt", str(ckpt.resolve())]
        out, seconds = _run(probe, work)
        top1 = float(re.search(r"top-1 ([0-9.]+)%", out).group(1))
        rows.append(
            [
                "L-BFGS probe (fixed features, float64, standardised, wd on a held-out tenth)",
                f"{top1:.2f}",
                "—",
                f"{seconds:.0f} s",
                "contrast " + " ".join(probe[:1] + ["--ckpt", "CKPT"]),
            ]
        )
        sgd = [*probe, "--mode", "sgd", "--epochs", str(sgd_epochs)]
        out, seconds = _run(sgd, work)
        s1, s5 = (float(v) for v in re.search(r"top-1 ([0-9.]+)%  top-5 ([0-9.]+)%", out).groups())
        rows.append(
            [
                f"feature mode (float16 features, BatchNorm + linear head, {sgd_epochs} epochs SGD lr 0.1 cosine)",
                f"{s1:.2f}",
                f"{s5:.2f}",
                f"{seconds:.0f} s",
                f"contrast probe --ckpt CKPT --mode sgd --epochs {sgd_epochs}",
            ]
        )
        for recipe in aug_recipes:
            crop = get_recipe(recipe).crop_scale
            fit = [
                "fit",
                "--config",
                str(ROOT / "configs/linear_cifar10.yaml"),
                "--model.init_args.weights",
                str(ckpt.resolve()),
                "--data.recipe_q",
                recipe,
                "--trainer.max_epochs",
                str(aug_epochs),
                "--trainer.check_val_every_n_epoch",
                str(aug_epochs),
                "--trainer.enable_progress_bar",
                "false",
                "--run_dir",
                str(work / f"linear_{recipe}"),
            ]
            out, seconds = _run(fit, work)
            a1, a5 = (float(v) for v in re.search(r"top-1 ([0-9.]+)%  top-5 ([0-9.]+)%", out).groups())
            rows.append(
                [
                    f"augmented views (LinearEval, {recipe}: RandomResizedCrop 32 scale {crop} + flip, {aug_epochs} "
                    "epochs SGD lr 0.1 cosine, BatchNorm + linear head)",
                    f"{a1:.2f}",
                    f"{a5:.2f}",
                    f"{seconds:.0f} s",
                    f"contrast fit --config configs/linear_cifar10.yaml --model.init_args.weights CKPT "
                    f"--data.recipe_q {recipe} --trainer.max_epochs {aug_epochs}",
                ]
            )
    return rows


MEMORY_CHILD = r"""
import json, resource, sys, time
import numpy as np, torch
from contrast.eval.linear import linear_sgd
n, d, storage, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
labels = torch.from_numpy(np.random.default_rng(0).integers(0, 1000, n))
test_n = 10000
if storage == "memory":
    x = torch.empty(n, d, dtype=torch.float16)
    for s in range(0, n, 65536):
        x[s:s + 65536] = torch.randn(min(65536, n - s), d).half()
    test = x[:test_n]
else:
    x = np.load(path, mmap_mode="r")
    test = x[:test_n]
start = time.perf_counter()
result = linear_sgd(x, labels, test, labels[:test_n], num_classes=1000, epochs=1, batch_size=1024, lr=0.1)
seconds = time.perf_counter() - start
print(json.dumps({"peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "seconds": seconds,
                  "top1": result.top1}))
"""


def memory(n: int, d: int) -> list[list[str]]:
    import numpy as np

    size = n * d * 2
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "features.npy"
        out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(n, d))
        rng = np.random.default_rng(0)
        for s in range(0, n, 65536):
            out[s : s + 65536] = rng.standard_normal((min(65536, n - s), d), dtype=np.float32).astype(np.float16)
        out.flush()
        del out
        for storage in ("memory", "disk"):
            env = dict(os.environ, PYTHONPATH=str(ROOT))
            result = subprocess.run(
                [sys.executable, "-c", MEMORY_CHILD, str(n), str(d), storage, str(path)],
                capture_output=True,
                text=True,
                check=True,
                env=env,
            )
            figures = json.loads(result.stdout.strip().splitlines()[-1])
            rows.append(
                [
                    "feature mode, float16 features "
                    + ("in memory" if storage == "memory" else "memory-mapped from disk"),
                    f"{n:,} × {d}",
                    f"{size / 2**30:.2f} GiB",
                    f"{figures['peak'] / 2**30:.2f} GiB",
                    f"{figures['peak'] / size:.2f}×",
                    f"{figures['seconds']:.0f} s",
                ]
            )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", type=Path, default=None, help="a CIFAR-10 checkpoint of contrast fit")
    parser.add_argument("--aug_epochs", type=int, default=10)
    parser.add_argument("--sgd_epochs", type=int, default=100)
    parser.add_argument(
        "--aug_recipes",
        nargs="+",
        default=["linear_cifar10", "linear_cifar10_mild", "linear_cifar10_flip"],
        help="augmented views' recipes",
    )
    parser.add_argument("--memory", action="store_true", help="the feature mode's peak memory on synthetic features")
    parser.add_argument("--n", type=int, default=1_281_167)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args(argv)
    if args.ckpt is not None:
        rows = protocols(args.ckpt, args.aug_epochs, args.sgd_epochs, args.aug_recipes)
        table = markdown_table(["protocol", "top-1", "top-5", "time", "command"], rows)
        print(table)
        if not args.no_append:
            notes = (
                f"One checkpoint ({args.ckpt.name}) pretrained on CIFAR-10 on this CPU (see the command above the "
                "table); the test split (10,000 images) scored on the whole 32-px image by all three. Target: the "
                "feature mode within 1.5 points of the L-BFGS probe; augmented views at least the feature mode."
            )
            append_results(
                "Linear evaluation: L-BFGS probe, feature mode, augmented views (CIFAR-10)", "cpu", table, notes
            )
    if args.memory:
        rows = memory(args.n, args.dim)
        table = markdown_table(["what", "features", "their size", "peak RSS", "peak / size", "1 epoch"], rows)
        print(table)
        if not args.no_append:
            notes = (
                "Synthetic float16 features (random normal), 1000 classes, BatchNorm + linear head, one epoch at batch "
                "1024 plus scoring 10,000 of them; peak RSS of the child process (Linux ru_maxrss; memory-mapped pages "
                "count as resident when touched). Target: under 2× the features' size."
            )
            append_results(
                "Linear evaluation, feature mode: peak memory on ImageNet-sized features", "cpu", table, notes
            )


if __name__ == "__main__":
    main()
