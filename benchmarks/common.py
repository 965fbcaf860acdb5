"""Shared benchmark helpers: machine description, timing, and appending to RESULTS.md."""

from __future__ import annotations

import datetime
import os
import platform
import resource
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def machine(device: str = "cpu") -> str:
    import torch

    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name()} (torch {torch.__version__})"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()}-core CPU ({cpu}), {torch.get_num_threads()} torch threads, torch {torch.__version__}"


def timeit(fn: Callable[[], object], repeats: int, warmup: int = 1, sync: Callable[[], None] | None = None) -> float:
    """Median wall time of ``fn`` in seconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if sync:
            sync()
        start = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def current_rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def append_results(title: str, device: str, table: str, notes: str = "", results: Path = RESULTS) -> None:
    """One entry (date, machine, command, table, notes) appended to ``results`` (benchmarks/RESULTS.md;
    a session on another machine writes its own file of the same form, to be appended here)."""
    command = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0])] + sys.argv[1:])
    entry = (
        f"\n## {title}\n\n- date: {datetime.date.today().isoformat()}\n- machine: {machine(device)}\n"
        f"- command: `{command}`\n\n{table}\n"
    )
    if notes:
        entry += f"\n{notes}\n"
    if not results.exists():
        results.write_text("# Benchmark results\n\nAppended by the scripts in this folder; newest last.\n")
    append_line(results, entry)


def append_line(path: Path, text: str) -> None:
    """``text`` and a newline appended to ``path``, on disk (fsync) before this returns: a run stopped
    later keeps every figure written so far."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(text + "\n")
        f.flush()
        os.fsync(f.fileno())


def naive_nt_xent(q, k, temperature: float):
    """NT-Xent as most code writes it: concatenate, one 2N×2N matrix, mask the diagonal, cross-entropy."""
    import torch
    import torch.nn.functional as F

    n = q.shape[0]
    z = F.normalize(torch.cat([q, k]), dim=1)
    logits = (z @ z.T / temperature).fill_diagonal_(float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(logits, targets)


# ---------------------------------------------------------------------- SimCLR-on-CIFAR benchmarks
def simclr_parser(description: str, scales: dict, scale_flag: str):
    """The command line bench_e2e and bench_speedups share: the scale, batch, workers, subset."""
    import argparse

    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(scale_flag, choices=sorted(scales), default="cpu")
    parser.add_argument("--batch", type=int)
    parser.add_argument("--workers", type=int, help="DataLoader workers")
    parser.add_argument("--subset", type=int, help="train on n images only")
    parser.add_argument("--no-append", action="store_true", help="print the table without appending it")
    return parser


def scale_config(scales: dict, scale: str, args, keys=("batch", "workers", "subset")) -> dict:
    """The scale's settings with the command line's overrides; on a GPU, checks for one and turns
    on cuDNN autotuning and TF32 matmuls."""
    import torch

    cfg = dict(scales[scale])
    cfg.update({key: getattr(args, key) for key in keys if getattr(args, key, None) is not None})
    if scale in ("gpu", "cuda"):
        if not torch.cuda.is_available():
            raise SystemExit(f"{scale} needs a CUDA device")
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    print(f"config: {cfg}", flush=True)
    return cfg


def lightly_lr(batch: int) -> float:
    """lightly's CIFAR-10 benchmark rule: SGD lr 0.06 × batch / 128."""
    return 0.06 * batch / 128


def simclr_notes(cfg: dict) -> str:
    """The start of a results note: data, backbone, batch, workers."""
    stem = ", CIFAR stem" if cfg["cifar_stem"] else ""
    subset = f" ({cfg['subset']} training images)" if cfg.get("subset") else ""
    workers = f"{cfg['workers']} DataLoader workers"
    return f"SimCLR on cifar10-jpeg{subset}, {cfg['backbone']}{stem}, batch {cfg['batch']}, {workers}"


def quiet_trainer(gpu: bool, precision: str, **kwargs):
    """One device, training only: no logger, checkpoints, progress bar, summary or validation."""
    import lightning as L

    options = dict(
        accelerator="gpu" if gpu else "cpu",
        devices=1,
        precision=precision,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
    )
    return L.Trainer(**(options | kwargs))


def two_tower_checkpoint(folder: Path, backbone: str, **data_args) -> Path:
    """A CrossModal checkpoint with random weights (what load benchmarks need: the towers' cost, not
    their quality), its data's arguments recorded as ``contrast fit`` records them."""
    import torch

    from contrast.data import PairedData
    from contrast.methods import CrossModal

    torch.manual_seed(0)
    data = PairedData(**data_args)
    model = CrossModal(backbone=backbone, embed_dim=128, **data.facts())
    path = folder / "two_towers.ckpt"
    payload = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}
    torch.save({**payload, "datamodule_hyper_parameters": dict(data.hparams)}, path)
    return path
