"""MoCo's momentum (EMA) encoder, its schedule, and the queue of negatives."""

from __future__ import annotations

import copy
import math

import torch
from torch import Tensor, nn

from contrast.checks import int_at_least


def momentum_copy(module: nn.Module) -> nn.Module:
    """A frozen deep copy of ``module`` for the momentum branch: no gradients, ever."""
    target = copy.deepcopy(module)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


@torch.no_grad()
def ema_update(online: nn.Module, target: nn.Module, momentum: float) -> None:
    """θ_target ← m·θ_target + (1 − m)·θ_online for every parameter; buffers (BN statistics) are copied."""
    online_params = [p.detach() for p in online.parameters()]
    target_params = list(target.parameters())
    torch._foreach_mul_(target_params, momentum)
    torch._foreach_add_(target_params, online_params, alpha=1.0 - momentum)
    for b_online, b_target in zip(online.buffers(), target.buffers()):
        b_target.copy_(b_online)


def cosine_momentum(base: float, step: int, total_steps: int) -> float:
    """BYOL / MoCo v3 schedule: m rises from ``base`` to 1 along a half cosine over training."""
    if total_steps <= 0:
        return base
    progress = min(step / total_steps, 1.0)
    return 1.0 - (1.0 - base) * (math.cos(math.pi * progress) + 1.0) / 2.0


class Queue(nn.Module):
    """A FIFO bank of the last ``size`` keys (MoCo v2), kept in the module's state (checkpointed).

    ``push(keys)`` writes the batch at the pointer and advances it modulo ``size``; ``size`` must
    be a multiple of the (global) batch size, as in MoCo, so a batch never wraps. (A deliberate
    difference: lightly's ``MemoryBankModule`` accepts any size and, when a batch would wrap, keeps
    only its first keys and restarts at 0, so some keys never become negatives.)
    ``negatives()`` returns the (size, dim) bank; the oldest keys are overwritten first.

    The pointer is kept twice: as a buffer (so checkpoints hold it) and as a Python int that
    ``push`` uses, so that a training step never reads a value back from the device. The int is
    re-read from the buffer once after a state dict is loaded.
    """

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        int_at_least("size", size)
        int_at_least("dim", dim)
        self.size = size
        bank = nn.functional.normalize(torch.randn(size, dim), dim=1)
        self.register_buffer("bank", bank)
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long))
        self._pointer: int | None = 0  # host copy of ``pointer``; None: read it at the next push

    @torch.no_grad()
    def push(self, keys: Tensor) -> None:
        n = keys.shape[0]
        if self.size % n != 0:
            raise ValueError(
                f"queue size {self.size} must be a multiple of the global batch size {n} (MoCo's convention)"
            )
        if self._pointer is None:  # once after a load: the only read from the device
            self._pointer = int(self.pointer)
        start = self._pointer
        self.bank[start : start + n] = keys.detach().to(self.bank.dtype)
        self._pointer = (start + n) % self.size
        self.pointer.fill_(self._pointer)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._pointer = None

    def negatives(self) -> Tensor:
        return self.bank.clone().detach()
