"""Resident memory of a training run on 10,000 against 100,000 packed images (target: within 100 MB).

Both packs hold the same small JPEGs (64×64, from make_imagenet_like photos, repeated through a
list file), so only the number of images differs. Each run is a fresh process: SimCLR, tiny CNN,
``--data.views split``, 200 steps of batch 64 in the main process (no workers), the kNN evaluation
off; its peak RSS (VmHWM) is read from the process itself. Appends its table to RESULTS.md.

    python benchmarks/bench_packed_memory.py
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import append_results, markdown_table  # noqa: E402

# The peak of this process's own memory (VmHWM): ru_maxrss would carry the parent's peak over the fork.
RUN = """
import sys
from contrast.cli import main
code = main(sys.argv[1:])
peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM")).split()[1]
print("PEAK_RSS", int(peak) * 1024, flush=True)
raise SystemExit(code)
"""


def make_pack(work: Path, n: int, distinct: int) -> Path:
    from PIL import Image

    from contrast.data.pack import pack

    folder = work / "tiny"
    if not folder.is_dir():
        import numpy as np
        from make_imagenet_like import photo_source

        make, rng = photo_source(), np.random.default_rng(0)
        folder.mkdir(parents=True)
        for i in range(distinct):
            picture, _ = make(i, rng)
            picture.resize((64, 64), Image.Resampling.BICUBIC).save(folder / f"{i}.jpg", quality=90)
    lines = [f"tiny/{i % distinct}.jpg,{i % 10}" for i in range(n)]
    (work / f"list_{n}.txt").write_text("\n".join(lines) + "\n")
    pack(work / f"list_{n}.txt", work / f"pack_{n}" / "train", workers=2, progress=False)
    return work / f"pack_{n}"


def peak_rss(root: Path, steps: int, run_dir: Path) -> int:
    args = [
        "fit", "--config", str(Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml"),
        "--data.dataset", "packed", "--data.root", str(root), "--data.views", "split",
        "--data.recipe_q", "simclr_cifar10", "--data.batch_size", "64", "--data.num_workers", "0",
        "--trainer.max_steps", str(steps), "--trainer.limit_train_batches", str(steps), "--trainer.callbacks", "[]",
        "--trainer.enable_progress_bar", "false", "--trainer.limit_val_batches", "0", "--run_dir", str(run_dir),
    ]  # fmt: skip
    out = subprocess.run([sys.executable, "-c", RUN, *args], capture_output=True, text=True, check=True).stdout
    return int(next(line.split()[1] for line in out.splitlines() if line.startswith("PEAK_RSS")))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args(argv)
    rows, peaks = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for n in (10_000, 100_000):
            root = make_pack(work, n, distinct=200)
            meta = json.loads((root / "train" / "meta.json").read_text())
            peaks[n] = peak_rss(root, args.steps, work / f"run_{n}")
            size = sum(s["bytes"] for s in meta["shards"]) / 2**20
            rows.append([f"{n:,}", f"{size:.0f} MiB", f"{peaks[n] / 2**20:.0f} MiB"])
    rows.append(["difference", "", f"{(peaks[100_000] - peaks[10_000]) / 2**20:+.0f} MiB"])
    table = markdown_table(["packed images", "shards", "peak RSS of the run"], rows)
    print(table)
    if not args.no_append:
        notes = (
            f"SimCLR (quickstart config, tiny CNN), --data.views split, recipe simclr_cifar10, batch 64, {args.steps} "
            "steps in the main process, no kNN callback; 64×64 JPEGs. Target: the two runs within 100 MB."
        )
        append_results("Packed images: resident memory against the number of images", "cpu", table, notes)


if __name__ == "__main__":
    main()
