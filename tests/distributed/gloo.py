"""Run a function in W gloo processes on the CPU and collect what each rank returns."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _entry(rank: int, compute, world: int, folder: str, timeout: float) -> None:
    init = f"file://{folder}/init"
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world, timeout=timedelta(seconds=timeout))
    try:
        torch.save(compute(rank), f"{folder}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def run_on_ranks(compute, world: int, folder: Path, timeout: float = 1800.0) -> list:
    """``compute(rank)`` (a module-level function) in ``world`` processes of one gloo group whose
    collectives give up after ``timeout`` seconds; the list of its results, rank 0 first."""
    mp.spawn(_entry, args=(compute, world, str(folder), timeout), nprocs=world, join=True)
    return [torch.load(folder / f"rank{r}.pt", weights_only=False) for r in range(world)]
