"""Row-wise contrastive cross-entropy, the kernel under both InfoNCE forms.

For rows ``a`` (R, D) and columns ``b`` (C, D) it returns, for every row i,

    loss_i = logsumexp_j(S_ij) - S_{i, t_i},    S = a @ b.T / τ,

with ``t_i = targets[i]`` the column of row i's positive and, when ``self_index`` is given,
``S_{i, self_index[i]} = -inf`` (a sample is not its own negative). This is exactly
``F.cross_entropy(S, targets, reduction="none")``; it is written by hand for two reasons:

* speed and memory: the forward pass builds the similarity matrix once and turns it into the
  softmax in place, and the backward pass needs only two matrix products with it
  (dL/da = (P b - b_t) / τ, dL/db = (Pᵀ a - scatter(a)) / τ), where autograd through
  ``cross_entropy`` keeps three R×C temporaries;
* the chunked path: above ``chunk_size`` rows it never holds more than ``chunk_size × C``
  similarities, keeping only the per-row log-sum-exp and recomputing the block in backward.

The gradient with respect to a learnable τ uses Σ_j P_ij S_ij = a_i · (P b)_i / τ, so it costs
nothing beyond the products the backward pass computes anyway.
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor

from contrast.blocks import block_rows

# Above this many similarities (R × C) the chunked path is chosen automatically:
# 2**27 float32 values is 512 MiB for one matrix.
AUTO_CHUNK_ELEMENTS = 2**27
# Block size of the automatic chunked path, in similarities per block (64 MiB in float32).
AUTO_BLOCK_ELEMENTS = 2**24


def resolve_chunk_size(rows: int, cols: int, chunk_size: int | None) -> int:
    """Rows per block by the package's one rule (:func:`contrast.blocks.block_rows`), with the
    losses' policy: one block (the unchunked path, fastest under autograd) up to AUTO_CHUNK_ELEMENTS."""
    return block_rows(rows, cols, chunk_size, whole_below=AUTO_CHUNK_ELEMENTS, block_elements=AUTO_BLOCK_ELEMENTS)


def _similarities(a_block: Tensor, b: Tensor, inv_tau: Tensor | float, self_block: Tensor | None) -> Tensor:
    if isinstance(inv_tau, Tensor):  # learnable τ: no host sync to read its value
        logits = (a_block @ b.T).mul_(inv_tau)
    else:  # 1/τ folded into the GEMM: one pass over the block fewer
        logits = torch.addmm(a_block.new_empty(()), a_block, b.T, beta=0, alpha=inv_tau)
    if self_block is not None:
        logits.scatter_(1, self_block[:, None], float("-inf"))
    return logits


def no_autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast off on ``device`` (the losses compute in float32 or float64 under any autocast);
    a no-op on device types without autocast (e.g. ``meta``, used to trace the training step)."""
    if torch.amp.is_autocast_available(device.type):
        return torch.autocast(device_type=device.type, enabled=False)
    return contextlib.nullcontext()


class _ContrastiveCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b, temperature, targets, self_index, chunk):  # type: ignore[override]
        rows = a.shape[0]
        inv_tau = 1.0 / temperature
        lse = a.new_empty(rows)
        positive = a.new_empty(rows)
        losses = a.new_empty(rows)
        probs, row_scale = None, None
        for start in range(0, rows, chunk):
            stop = min(start + chunk, rows)
            self_block = None if self_index is None else self_index[start:stop]
            logits = _similarities(a[start:stop], b, inv_tau, self_block)
            positive[start:stop] = logits.gather(1, targets[start:stop, None]).squeeze(1)
            row_max, argmax = logits.max(dim=1)
            # In place: the block becomes exp(S - max); the softmax is that times 1/rowsum,
            # a factor the backward pass applies to (R×D) products instead of the (R×C) block.
            logits.sub_(row_max[:, None]).exp_()
            # Σ exp(S - max) = 1 + the sum over the other columns: summed without the 1 and taken
            # through log1p, so that a near-converged loss (1e-7) keeps its low bits in float32.
            logits.scatter_(1, argmax[:, None], 0.0)
            rest = logits.sum(dim=1)
            logits.scatter_(1, argmax[:, None], 1.0)
            log_total = torch.log1p(rest)
            total = rest + 1.0
            lse[start:stop] = row_max + log_total
            # (max - s_positive) + log Σ: the two large terms cancel first, exactly
            losses[start:stop] = (row_max - positive[start:stop]) + log_total
            if chunk >= rows:
                probs, row_scale = logits, total.reciprocal()
        ctx.chunk = chunk
        ctx.tau_is_tensor = isinstance(temperature, Tensor)
        ctx.save_for_backward(
            a, b, temperature if ctx.tau_is_tensor else None, targets, self_index, lse, positive, probs, row_scale
        )
        ctx.temperature = None if ctx.tau_is_tensor else temperature
        return losses

    @staticmethod
    def backward(ctx, grad_losses):  # type: ignore[override]
        a, b, tau_tensor, targets, self_index, lse, positive, probs, row_scale = ctx.saved_tensors
        temperature = tau_tensor if ctx.tau_is_tensor else ctx.temperature
        inv_tau = 1.0 / temperature
        with no_autocast(a.device):
            g = grad_losses.to(a.dtype)
            ga = a * g[:, None]
            rows = a.shape[0]
            grad_a = torch.empty_like(a)
            grad_b = torch.zeros_like(b)
            expected_similarity = a.new_empty(rows)  # Σ_j P_ij S_ij, for dL/dτ
            for start in range(0, rows, ctx.chunk):
                stop = min(start + ctx.chunk, rows)
                if probs is None:  # chunked: recompute the softmax block P = exp(S - lse)
                    self_block = None if self_index is None else self_index[start:stop]
                    block = _similarities(a[start:stop], b, inv_tau, self_block)
                    block.sub_(lse[start:stop, None]).exp_()
                    pb = block @ b
                    grad_b.addmm_(block.T, ga[start:stop])
                else:  # P = diag(row_scale) · probs
                    pb = (probs @ b).mul_(row_scale[:, None])
                    grad_b.addmm_(probs.T, ga * row_scale[:, None])
                expected_similarity[start:stop] = (a[start:stop] * pb).sum(dim=1)
                grad_a[start:stop] = pb
            expected_similarity.mul_(inv_tau)
            # Positive-pair terms: -b_t for row i, -a_i scattered onto column t_i.
            grad_a.sub_(b[targets]).mul_(g[:, None] * inv_tau)
            grad_b.index_add_(0, targets, ga, alpha=-1.0).mul_(inv_tau)
            grad_tau = None
            if ctx.tau_is_tensor and ctx.needs_input_grad[2]:
                grad_tau = -(g * (expected_similarity - positive)).sum() * inv_tau
                grad_tau = grad_tau.to(tau_tensor.dtype).reshape(tau_tensor.shape)
        return grad_a, grad_b, grad_tau, None, None, None


def contrastive_cross_entropy(
    a: Tensor,
    b: Tensor,
    temperature: float | Tensor,
    targets: Tensor,
    self_index: Tensor | None = None,
    chunk_size: int | None = None,
) -> Tensor:
    """Per-row losses (R,) of ``cross_entropy(a @ b.T / τ, targets)`` with optional self-masking.

    ``a`` and ``b`` must already be in the compute dtype (float32 or float64) and may be the
    same tensor (NT-Xent). ``temperature`` is a positive float, or a 0-dim tensor in that dtype
    (learnable; :func:`contrast.losses._validate.check_temperature` gives either).
    ``chunk_size`` is the number of rows per block; None chooses automatically (one block up to
    ``AUTO_CHUNK_ELEMENTS`` similarities).
    """
    chunk = resolve_chunk_size(a.shape[0], b.shape[0], chunk_size)
    return _ContrastiveCrossEntropy.apply(a, b, temperature, targets, self_index, chunk)
