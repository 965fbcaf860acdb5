"""Time to accuracy: wall clock from process start to the first kNN evaluation at or above a target.

Runs a config through the same CLI a user runs (``contrast fit``), with kNN evaluated every N
epochs and its time counted, decoding and model set-up included (the clock starts when this
script starts). Protocol of every figure: weighted kNN (Wu et al. 2018), k=200, τ=0.1, on
backbone features, the whole train split as the bank, the test split scored, as lightly's CIFAR-10
benchmark (which reports the best epoch). Targets: 84.8 (SimCLR) and 84.7 (MoCo v2), lightly's
published figures for its 200-epoch recipes (``configs/*_lightly.yaml``).

    python benchmarks/bench_tta.py --config configs/simclr_cifar10_lightly.yaml --target 84.8
    python benchmarks/bench_tta.py --config configs/moco_v2_cifar10_lightly.yaml --target 84.7
    python benchmarks/bench_tta.py --config configs/quickstart.yaml --target 60 --knn-every 1  # a CPU toy

Reports time-to-target, final and best kNN top-1, seconds per epoch and samples per second, and
appends them to RESULTS.md. Extra arguments are passed to ``contrast fit`` (e.g.
``--trainer.max_epochs 50``).
"""

from __future__ import annotations

import time

START = time.perf_counter()  # the process start, as near as a Python script gets

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import lightning as L  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import append_results, markdown_table  # noqa: E402

from contrast.eval import KNNCallback  # noqa: E402
from contrast.speed import Throughput  # noqa: E402
from contrast.train import lightning_cli  # noqa: E402


class TimeToTarget(L.Callback):
    """After each kNN evaluation: (seconds since START, epoch, top-1); stops at the target if asked."""

    def __init__(self, target: float, stop: bool) -> None:
        self.target, self.stop = target, stop
        self.evaluations: list[tuple[float, int, float]] = []
        self.reached: tuple[float, int] | None = None
        self.epoch_seconds: list[float] = []
        self._epoch_start = 0.0

    def on_train_epoch_start(self, trainer, module) -> None:
        self._epoch_start = time.perf_counter()

    def on_train_epoch_end(self, trainer, module) -> None:  # runs after KNNCallback's (registered after it)
        knn = next(cb for cb in trainer.callbacks if isinstance(cb, KNNCallback))
        self.epoch_seconds.append(time.perf_counter() - self._epoch_start)  # training and kNN
        if knn._evaluated_at_step != trainer.global_step:
            return
        elapsed, top1 = time.perf_counter() - START, knn.results["top1"]
        self.evaluations.append((elapsed, trainer.current_epoch + 1, top1))
        print(f"time to accuracy: {elapsed:.1f} s, epoch {trainer.current_epoch + 1}, top-1 {top1:.2f}%", flush=True)
        if self.reached is None and top1 >= self.target:
            self.reached = (elapsed, trainer.current_epoch + 1)
            trainer.should_stop = trainer.should_stop or self.stop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--target", type=float, required=True, help="kNN top-1 in percent")
    parser.add_argument("--knn-every", type=int, default=1, help="evaluate kNN every N epochs (counted in the time)")
    parser.add_argument("--stop-at-target", action="store_true", help="stop training once the target is reached")
    parser.add_argument("--no-append", action="store_true")
    args, overrides = parser.parse_known_args()

    cli = lightning_cli(["--config", args.config, *overrides], run=False)
    trainer, model, data = cli.trainer, cli.model, cli.datamodule
    knn = [cb for cb in trainer.callbacks if isinstance(cb, KNNCallback)]
    if not knn:
        raise SystemExit(f"{args.config} has no KNNCallback: add one to score the run")
    knn[0].every_n_epochs, knn[0].baseline = args.knn_every, False
    tta = TimeToTarget(args.target, args.stop_at_target)
    trainer.callbacks.append(tta)
    speed = next((cb for cb in trainer.callbacks if isinstance(cb, Throughput)), None)
    if speed is None:
        speed = Throughput(warmup=min(20, max(1, len(data.split(True)) // data.batch_size // 2)))
        trainer.callbacks.append(speed)
    trainer.fit(model, data)
    total = time.perf_counter() - START

    tops = [top1 for _, _, top1 in tta.evaluations]
    reached = f"{tta.reached[0]:.1f} s (epoch {tta.reached[1]})" if tta.reached else "not reached"
    row = [
        Path(args.config).name,
        f"{args.target:g}",
        reached,
        f"{tops[-1]:.2f}" if tops else "-",
        f"{max(tops):.2f}" if tops else "-",
        f"{trainer.current_epoch}",
        f"{statistics.median(tta.epoch_seconds[1:] or tta.epoch_seconds):.2f}" if tta.epoch_seconds else "-",
        f"{statistics.median(speed.samples_per_s):,.0f}" if speed.samples_per_s else "-",
        f"{total:.0f}",
    ]
    header = [
        "config",
        "target %",
        "time to target",
        "final top-1 %",
        "best top-1 %",
        "epochs",
        "s/epoch (median after 1st, kNN included)",
        "samples/s (median)",
        "total s",
    ]
    table = markdown_table(header, [row])
    print(table)
    if not args.no_append:
        device = "cuda" if trainer.strategy.root_device.type == "cuda" else "cpu"
        notes = (
            f"kNN (weighted, k={knn[0].knn.k}, τ={knn[0].knn.temperature:g}) on backbone features, the whole "
            f"train split as the bank, the test split scored, every {args.knn_every} epoch(s), its time counted; "
            "the clock starts at process start (decoding and model set-up included). Overrides: "
            f"{' '.join(overrides) or 'none'}."
        )
        append_results(f"Time to accuracy ({Path(args.config).stem})", device, table, notes)


if __name__ == "__main__":
    main()
