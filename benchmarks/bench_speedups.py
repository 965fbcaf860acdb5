"""What each speed change buys: SimCLR training throughput with the changes added one at a time.

Every rung keeps the changes of the rungs above it and adds one:

1. baseline: the JPEG ImageFolder decoded every time an image is read, per-sample torchvision
   views in DataLoader workers (``views="cpu"``, ``cache="none"``), the naive NT-Xent
   (concatenate, one 2N×2N matrix, mask, ``F.cross_entropy``);
2. decode once: every image decoded once into one uint8 tensor (``cache="memory"``);
3. batched views: the views made for the whole batch at once on the training device;
4. fused NT-Xent: ours (one GEMM, softmax in place, 2-GEMM backward);
5. (GPU) images held on the device (``cache="device"``): the loader yields only indices;
6. (GPU) bf16 autocast; 7. (GPU) channels-last;
8. (``--compile``) ``torch.compile`` of the backbone.

Each rung is a real Lightning fit of ``--warmup + --steps`` steps on the CIFAR-10 JPEG copy.
samples/s comes from :class:`contrast.speed.Throughput` over the steps after the warm-up. The
profile is Lightning's ``SimpleProfiler``: the mean host time per step of each phase over the
same steps (on a GPU the device runs behind the host, so there the phases are launch times
except where the host waits). It is the profile that chose the order of the work.

    python benchmarks/bench_speedups.py                  # CPU: tiny CNN, batch 256
    python benchmarks/bench_speedups.py --device cuda    # GPU: ResNet-18 (CIFAR stem), batch 512
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.profilers import SimpleProfiler

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    append_results,
    lightly_lr,
    markdown_table,
    naive_nt_xent,
    quiet_trainer,
    scale_config,
    simclr_notes,
    simclr_parser,
)

from contrast.data import ContrastiveData  # noqa: E402
from contrast.methods import SimCLR  # noqa: E402
from contrast.speed import Throughput  # noqa: E402

TEMPERATURE = 0.5


@dataclass(frozen=True)
class Setting:
    views: str = "cpu"
    cache: str = "none"
    loss: str = "naive"
    precision: str = "32"
    channels_last: bool = False
    compile: bool = False


# (name, change, needs a GPU): each rung applies its change to the setting of the rung above.
RUNGS = [
    ("baseline: decode every read, per-sample views in workers, naive NT-Xent", {}, False),
    ("+ decode once (cache=memory)", {"cache": "memory"}, False),
    ("+ batched views on the device", {"views": "batched"}, False),
    ("+ fused NT-Xent", {"loss": "fused"}, False),
    ("+ images on the device (cache=device)", {"cache": "device"}, True),
    ("+ bf16 autocast", {"precision": "bf16-mixed"}, True),
    ("+ channels-last", {"channels_last": True}, True),
    ("+ torch.compile", {"compile": True}, False),
]

SCALES = {
    "cpu": dict(backbone="tiny_cnn_w8", cifar_stem=False, batch=256, workers=1, subset=10240, warmup=5, steps=30),
    "cuda": dict(backbone="resnet18", cifar_stem=True, batch=512, workers=8, subset=None, warmup=20, steps=60),
}

# Phases of a step in Lightning's profiler (single device): action names, and the label shown.
PHASES = {
    "next batch": "[_TrainingEpochLoop].train_dataloader_next",
    "to device + views": "[Strategy]SingleDeviceStrategy.batch_to_device",
    "forward + loss": "[Strategy]SingleDeviceStrategy.training_step",
    "backward": "[Strategy]SingleDeviceStrategy.backward",
}
OPTIMIZER_STEP = "[LightningModule]SimCLR.optimizer_step"  # includes forward, loss and backward (the closure)
BATCH = "run_training_batch"


class NaiveNTXent(torch.nn.Module):
    def forward(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return naive_nt_xent(q, k, TEMPERATURE)


@dataclass
class Result:
    samples_per_s: float
    phases_ms: dict[str, list[float]]


def run_rung(name: str, setting: Setting, cfg: dict, device: str) -> Result:
    L.seed_everything(0, verbose=False)
    data = ContrastiveData(
        dataset="cifar10_jpeg",
        recipe_q="simclr_cifar10",
        views=setting.views,
        cache=setting.cache,
        batch_size=cfg["batch"],
        num_workers=cfg["workers"],
        train_subset=cfg["subset"],
        seed=0,
    )
    data.split(True)  # decoding (cache) is set-up, not training
    model = SimCLR(
        backbone=cfg["backbone"],
        cifar_stem=cfg["cifar_stem"],
        channels_last=setting.channels_last,
        projector_hidden=2048,
        projector_dim=128,
        temperature=TEMPERATURE,
        optimizer="sgd",
        lr=lightly_lr(cfg["batch"]),
        num_classes=10,
        compile=setting.compile,
    )
    if setting.loss == "naive":
        model.criterion = NaiveNTXent()
    throughput = Throughput(warmup=cfg["warmup"])
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as report_dir, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        profiler = SimpleProfiler(dirpath=report_dir, filename="profile")  # its report to a file, not stdout
        trainer = quiet_trainer(
            device == "cuda",
            setting.precision,
            max_steps=cfg["warmup"] + cfg["steps"],
            callbacks=[throughput],
            profiler=profiler,
        )
        trainer.fit(model, datamodule=data)
    print(f"  {name}: {time.perf_counter() - start:.0f} s", flush=True)
    return Result(throughput.samples_per_s[-1], phase_times(profiler.recorded_durations, cfg["warmup"]))


def phase_times(durations: dict[str, list[float]], warmup: int) -> dict[str, list[float]]:
    """Milliseconds of each phase at every step after the warm-up."""

    def ms(action: str) -> list[float]:
        return [1000 * t for t in durations.get(action, [])[warmup:]]

    phases = {label: ms(action) for label, action in PHASES.items()}
    phases["optimizer"] = [
        step - forward - backward
        for step, forward, backward in zip(ms(OPTIMIZER_STEP), phases["forward + loss"], phases["backward"])
    ]
    phases["step"] = [sum(parts) for parts in zip(phases["next batch"], phases["to device + views"], ms(BATCH))]
    return phases


def summarise(runs: list[Result]) -> tuple[float, float, float, dict[str, float]]:
    """Median, min and max samples/s over the repeats, and the median ms of each phase over all
    measured steps of all repeats."""
    rates = [r.samples_per_s for r in runs]
    phases = {label: statistics.median(v for r in runs for v in r.phases_ms[label]) for label in runs[0].phases_ms}
    return statistics.median(rates), min(rates), max(rates), phases


def main() -> None:
    parser = simclr_parser(__doc__, SCALES, "--device")
    parser.add_argument("--steps", type=int, help="measured steps per rung")
    parser.add_argument("--warmup", type=int, help="steps before the measurement")
    parser.add_argument("--compile", action="store_true", help="add the torch.compile rung")
    parser.add_argument("--repeats", type=int, default=1, help="run the ladder this many times (median, range)")
    args = parser.parse_args()

    cfg = scale_config(SCALES, args.device, args, keys=("steps", "warmup", "batch", "workers", "subset"))

    rungs, setting = [], Setting()
    for name, change, gpu_only in RUNGS:
        if (gpu_only and args.device != "cuda") or (change.get("compile") and not args.compile):
            continue
        setting = replace(setting, **change)
        rungs.append((name, setting))
    runs: dict[str, list[Result]] = {name: [] for name, _ in rungs}
    for repeat in range(args.repeats):  # the whole ladder per repeat: slow drifts of the machine hit every rung
        print(f"repeat {repeat + 1} of {args.repeats}", flush=True)
        for name, setting in rungs:
            runs[name].append(run_rung(name, setting, cfg, args.device))

    labels = [*PHASES, "optimizer", "step"]
    rows, baseline, previous = [], None, None
    for name, _ in rungs:
        rate, low, high, phases = summarise(runs[name])
        baseline = baseline or rate
        rows.append(
            [
                name,
                f"{rate:,.0f}" + (f" ({low:,.0f}-{high:,.0f})" if args.repeats > 1 else ""),
                f"{rate / (previous or rate):.2f}x",
                f"{rate / baseline:.2f}x",
                *(f"{phases[label]:.1f}" for label in labels),
            ]
        )
        previous = rate
    rate_header = "samples/s" + (" (min-max)" if args.repeats > 1 else "")
    header = ["rung", rate_header, "vs rung above", "vs baseline", *(f"{label} ms" for label in labels)]
    table = markdown_table(header, rows)
    print(table)
    if not args.no_append:
        notes = (
            f"{simclr_notes(cfg)}, {cfg['steps']} measured steps after {cfg['warmup']} per rung, "
            f"the ladder run {args.repeats} time(s). Each rung adds its change to the rung above. samples/s: "
            "contrast.speed.Throughput (median over the repeats). The ms columns are medians per step of "
            "Lightning's SimpleProfiler (host time): next batch = waiting for the "
            "DataLoader; to device + views = transfer and batched views; optimizer = optimizer step minus "
            "forward, loss and backward; step = the three timed blocks together."
        )
        append_results(f"What each speed change buys ({args.device})", args.device, table, notes)


if __name__ == "__main__":
    main()
