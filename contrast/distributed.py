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


def close() -> None:
    """End this process's part of the process group, if it has one. Without it, gloo's worker threads
    outlive the interpreter at exit and a finished run can end in SIGABRT ("terminate called
    without an active exception")."""
    if dist.is_available() and dist.is_initialized():
        try:
            dist.destroy_process_group()
        except Exception:  # noqa: BLE001 - a group a lost rank broke: the process ends anyway
            pass


def silent_ranks(wait: float = 10.0) -> list[int] | None:
    """The ranks that do not answer within ``wait`` seconds, asked through the group's key-value
    store (not a collective: the point is that a collective stopped). Each rank that calls this
    says it is here and waits for the others; a rank that hangs, or that died, never says so.
    None when there is no store to ask (one process, or the store went down with its host)."""
    import time

    if not is_distributed():
        return None
    try:
        store = dist.PrefixStore("contrast/answering/", dist.distributed_c10d._get_default_store())
        me, world = dist.get_rank(), dist.get_world_size()
        store.set(str(me), "1")
        waiting = [r for r in range(world) if r != me]
        deadline = time.monotonic() + wait
        while waiting and time.monotonic() < deadline:
            waiting = [r for r in waiting if not store.check([str(r)])]
            time.sleep(0.1)
        return waiting
    except Exception:  # noqa: BLE001 - the store's host ended (rank 0 under Lightning's launcher)
        return None


class _GatherWithGradient(torch.autograd.Function):
    """All-gather along dim 0; backward sums every rank's gradient for this rank's slice."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        ctx.rows, ctx.rank, ctx.world = x.shape[0], dist.get_rank(), dist.get_world_size()
        x = x.contiguous()
        if dist.get_backend() == "nccl":
            out = x.new_empty((ctx.world * ctx.rows, *x.shape[1:]))
            dist.all_gather_into_tensor(out, x)
            return out
        parts = [torch.empty_like(x) for _ in range(ctx.world)]
        dist.all_gather(parts, x)
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        grad = grad.contiguous()
        if dist.get_backend() == "nccl":
            out = grad.new_empty((ctx.rows, *grad.shape[1:]))
            dist.reduce_scatter_tensor(out, grad, op=dist.ReduceOp.SUM)
            return out
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)  # gloo has no reduce-scatter of tensors
        return grad[ctx.rank * ctx.rows : (ctx.rank + 1) * ctx.rows].clone()


def gather(x: Tensor) -> Tensor:
    """Concatenate ``x`` (n, ...) from every rank along dim 0, keeping gradients.

    The backward pass sums the gradients of all ranks for each rank's slice, so a loss on the
    gathered tensor has the same gradient as the loss on the concatenated batch in one process
    once DDP averages the parameter gradients over ranks. Every rank must pass the same n.
    """
    if not is_distributed():
        return x
    return _GatherWithGradient.apply(x)


@torch.no_grad()
def gather_no_grad(x: Tensor) -> Tensor:
    """Concatenate ``x`` from every rank along dim 0 without gradients (MoCo keys, kNN features)."""
    if not is_distributed():
        return x
    parts = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


@torch.no_grad()
def gather_variable(x: Tensor) -> Tensor:
    """Like :func:`gather_no_grad` for shards of different lengths (an evaluation set split over
    ranks without padding): rank 0's rows, then rank 1's, ..."""
    if not is_distributed():
        return x
    size = torch.tensor([x.shape[0]], device=x.device)
    sizes = gather_no_grad(size).tolist()
    padded = torch.zeros((max(sizes), *x.shape[1:]), dtype=x.dtype, device=x.device)
    padded[: x.shape[0]] = x
    parts = gather_no_grad(padded).split(max(sizes))
    return torch.cat([part[:n] for part, n in zip(parts, sizes)])


@torch.no_grad()
def broadcast_buffers(module: torch.nn.Module, src: int = 0) -> None:
    """Copy ``src``'s buffers (BatchNorm running statistics) to every rank, as DDP does before each
    forward; without SyncBatchNorm they drift apart between forwards."""
    if not is_distributed():
        return
    for buffer in module.buffers():
        dist.broadcast(buffer, src)


@torch.no_grad()
def sum_over_ranks(x: Tensor) -> Tensor:
    """The sum of ``x`` over all ranks (a copy; ``x`` itself on one process)."""
    if not is_distributed():
        return x.clone()
    total = x.detach().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total


@torch.no_grad()
def mean_over_ranks(x: Tensor) -> Tensor:
    """The mean of ``x`` over all ranks (a copy; no gradient). The identity in one process."""
    if not is_distributed():
        return x
    x = x.detach().clone()
    dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x / world_size()


@torch.no_grad()
def batch_shuffle(x: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Shuffle the global batch across ranks (MoCo's shuffling BN, He et al. 2020, §3.3).

    ``x`` (n, ...) is this rank's part. All ranks' parts are gathered (W·n rows), permuted with
    ``generator`` (seeded alike on every rank, so no broadcast is needed), and this rank gets rows
    rank·n … (rank+1)·n of the permuted batch. Returns (those n rows, the permutation) for
    :func:`batch_unshuffle`. In one process it permutes the batch."""
    everything = gather_no_grad(x)  # (W·n, ...)
    permutation = torch.randperm(everything.shape[0], generator=generator)  # (W·n,) drawn on the host
    if everything.device.type == "cuda":  # to the device without waiting for it
        permutation = permutation.pin_memory().to(everything.device, non_blocking=True)
    else:
        permutation = permutation.to(everything.device)
    n = x.shape[0]
    return everything[permutation[rank() * n : (rank() + 1) * n]], permutation


@torch.no_grad()
def batch_unshuffle(y: Tensor, permutation: Tensor) -> Tensor:
    """Undo :func:`batch_shuffle` on its output ``y`` (n, ...): row i of the result belongs to row i
    of this rank's original part."""
    everything = gather_no_grad(y)  # (W·n, ...) in the shuffled order
    n = y.shape[0]
    inverse = torch.argsort(permutation)  # (W·n,) where each original row went
    return everything[inverse[rank() * n : (rank() + 1) * n]]
