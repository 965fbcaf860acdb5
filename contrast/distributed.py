"""Rank helpers and all-gather with gradients. Every helper is a no-op in a single process."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def gather(x: Tensor) -> Tensor:
    """Concatenate ``x`` (n, ...) from every rank along dim 0, keeping gradients.

    The backward pass sums the gradients of all ranks for each rank's slice, so a loss on the
    gathered tensor has the same gradient as the loss on the concatenated batch in one process
    once DDP averages the parameter gradients over ranks. Every rank must pass the same n.
    """
    if not is_distributed():
        return x
    import torch.distributed.nn.functional as dist_fn

    return torch.cat(dist_fn.all_gather(x), dim=0)


@torch.no_grad()
def gather_no_grad(x: Tensor) -> Tensor:
    """Concatenate ``x`` from every rank along dim 0 without gradients (MoCo keys, kNN features)."""
    if not is_distributed():
        return x
    parts = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)
