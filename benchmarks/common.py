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


def append_results(title: str, device: str, table: str, notes: str = "") -> None:
    command = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0])] + sys.argv[1:])
    entry = (
        f"\n## {title}\n\n- date: {datetime.date.today().isoformat()}\n- machine: {machine(device)}\n"
        f"- command: `{command}`\n\n{table}\n"
    )
    if notes:
        entry += f"\n{notes}\n"
    if not RESULTS.exists():
        RESULTS.write_text("# Benchmark results\n\nAppended by the scripts in this folder; newest last.\n")
    with RESULTS.open("a") as f:
        f.write(entry)


def naive_nt_xent(q, k, temperature: float):
    """NT-Xent as most code writes it: concatenate, one 2N×2N matrix, mask the diagonal, cross-entropy."""
    import torch
    import torch.nn.functional as F

    n = q.shape[0]
    z = F.normalize(torch.cat([q, k]), dim=1)
    logits = (z @ z.T / temperature).fill_diagonal_(float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(logits, targets)
