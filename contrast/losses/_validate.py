"""Argument checks shared by the losses: run once at the boundary, with messages that name the argument."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from contrast.checks import ConfigError

REDUCTIONS = ("mean", "sum", "none")


def check_embeddings(x: object, name: str, *, check_finite: bool = True) -> Tensor:
    """A non-empty 2-D floating tensor of finite values."""
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (N, D), got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(f"{name} must be 2-D with shape (N, D), got shape {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError(f"{name} must be non-empty, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(
            f"{name} must be a floating-point tensor of embeddings, got dtype {x.dtype}; convert with {name}.float()"
        )
    # One reduction and one host sync; the training loop can turn it off with validate=False.
    if check_finite and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or Inf values")
    return x


def check_pair(
    q: object, k: object, *, min_rows: int = 1, check_finite: bool = True, names: tuple[str, str] = ("q", "k")
) -> None:
    """q and k: (N, D) each, same shape and device, N >= min_rows (``names``: what the error calls them)."""
    a, b = names
    check_embeddings(q, a, check_finite=check_finite)
    check_embeddings(k, b, check_finite=check_finite)
    assert isinstance(q, Tensor) and isinstance(k, Tensor)
    if q.shape != k.shape:
        raise ValueError(
            f"{a} and {b} must have the same shape (N, D) (row i of each is a positive pair), "
            f"got {a} {tuple(q.shape)} and {b} {tuple(k.shape)}"
        )
    if q.device != k.device:
        raise ValueError(f"{a} and {b} must be on the same device, got {q.device} and {k.device}")
    # A deliberate difference: lightly's NTXentLoss returns 0 for a batch of one (no negatives, no
    # signal, no error); a loss that cannot learn is refused here instead.
    if q.shape[0] < min_rows:
        raise ValueError(
            f"q and k need at least {min_rows} rows for in-batch negatives, got N={q.shape[0]} "
            "(a batch of one has no negatives)"
        )


def check_temperature(temperature: object, dtype: torch.dtype | None = None) -> float | Tensor:
    """τ checked once and in the form the kernel takes: a positive finite float, or (learnable: a
    :class:`Temperature` module or a tensor that requires grad) a 0-dim tensor in ``dtype``."""
    if isinstance(temperature, torch.nn.Module):
        temperature = temperature()
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float, Tensor)):
        raise ValueError(
            f"temperature must be a positive float or a Temperature module, got {type(temperature).__name__}"
        )
    if isinstance(temperature, Tensor):
        if temperature.numel() != 1:
            raise ConfigError(
                "temperature", f"temperature must be a scalar, got a tensor of shape {tuple(temperature.shape)}"
            )
        if temperature.requires_grad:  # learnable: positivity is kept by the module's clamp
            return temperature.reshape(()) if dtype is None else temperature.reshape(()).to(dtype)
    temperature = float(temperature)
    # A deliberate difference: lightly's losses refuse only |τ| < 1e-8 and train with a negative τ,
    # which turns the objective upside down (positives pushed apart); τ <= 0 is refused here.
    if not math.isfinite(temperature) or temperature <= 0:
        raise ConfigError("temperature", f"temperature must be a finite number > 0, got {temperature}")
    return temperature


def check_labels(labels: Tensor | None, n: int, device: torch.device) -> Tensor | None:
    """None, or (N,) integer class ids on ``device``."""
    if labels is None:
        return None
    if not isinstance(labels, Tensor):
        raise ValueError(f"labels must be a torch.Tensor of shape (N,), got {type(labels).__name__}")
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise ValueError(f"labels must be an integer tensor of class ids, got dtype {labels.dtype}; use labels.long()")
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape (N,) = ({n},), got {tuple(labels.shape)}")
    return labels.to(device)


def check_reduction(reduction: str) -> str:
    if reduction not in REDUCTIONS:
        raise ConfigError("reduction", f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction


def reduce(losses: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    return losses


def compute_dtype(x: Tensor) -> torch.dtype:
    """float64 stays float64; everything else (bf16, fp16, fp32) is computed in float32."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32
