"""InfoNCE in its two common forms, with a fixed or learnable temperature.

* ``info_nce``: the single-view form of MoCo (He et al. 2020, "Momentum Contrast for Unsupervised
  Visual Representation Learning") and CPC (van den Oord et al. 2018): each query q_i is scored
  against every key, ``logits = q @ k.T / τ`` (N×N), and the positive is on the diagonal,
  ``target = arange(N)``. With a bank of ``negatives`` (a MoCo queue, M×D) the logits are
  ``[q_i·k_i | q_i @ negatives.T] / τ`` (N×(1+M)) and the target is column 0.
* ``nt_xent``: the concatenated 2N form of SimCLR (Chen et al. 2020, "A Simple Framework for
  Contrastive Learning of Visual Representations"): ``z = cat(q, k)`` (2N×D),
  ``logits = z @ z.T / τ`` with the diagonal set to -inf, row i's target is i+N and row i+N's
  is i; cross-entropy over the 2N rows (each sample has 2N-2 negatives).

Both L2-normalise rows first by default (cosine similarity), compute logits in float32 (or
float64 for float64 input) even under autocast, and return the mean, sum, or per-row losses.

One code path serves one process and many (open_clip's ``gather_features``): with
``gather=True`` the in-batch negatives are the embeddings of every rank, gathered with gradients
(:func:`contrast.distributed.gather`, the identity in one process), and each row's target is
offset by ``rank · N``, so W ranks × N rows give the loss and gradients of one process with W·N.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from contrast import distributed
from contrast.losses._validate import (
    check_embeddings,
    check_pair,
    check_reduction,
    check_temperature,
    compute_dtype,
    reduce,
)
from contrast.losses.kernel import contrastive_cross_entropy, no_autocast
from contrast.losses.module import LossModule
from contrast.losses.temperature import Temperature

TemperatureLike = float | Tensor | Temperature


def _prepare(x: Tensor, normalize: bool) -> Tensor:
    x = x.to(compute_dtype(x))
    return F.normalize(x, dim=1) if normalize else x


def _gathered(x: Tensor, gather: bool) -> tuple[Tensor, int]:
    """(the rows of every rank, this rank's offset in them) with ``gather``; else (x, 0)."""
    if gather and distributed.is_distributed():
        return distributed.gather(x), distributed.rank() * x.shape[0]
    return x, 0


def _min_rows(gather: bool) -> int:
    """In-batch negatives need two rows in all; under DDP with ``gather`` they may be on other ranks."""
    return 1 if gather and distributed.is_distributed() else 2


def info_nce(
    q: Tensor,
    k: Tensor,
    temperature: TemperatureLike = 0.1,
    *,
    negatives: Tensor | None = None,
    normalize: bool = True,
    symmetric: bool = False,
    reduction: str = "mean",
    chunk_size: int | None = None,
    validate: bool = True,
    gather: bool = False,
) -> Tensor:
    """Single-view InfoNCE: ``cross_entropy(q @ k.T / τ, arange(N))``.

    Args:
        q: (N, D) queries. Row i of ``q`` and row i of ``k`` are a positive pair.
        k: (N, D) keys.
        temperature: τ > 0, a float or a :class:`Temperature` module (learnable).
        negatives: optional (M, D) bank of extra negatives (the MoCo queue). Then the logits are
            ``[q_i·k_i | q_i @ negatives.T] / τ`` (N×(1+M)), target 0, and the other keys of the
            batch are *not* negatives, as in MoCo (nothing is gathered).
        normalize: L2-normalise q, k and negatives first (cosine similarity).
        symmetric: average the q→k and k→q losses (MoCo v3). Not defined with ``negatives``.
        reduction: "mean" | "sum" | "none" (N per-row losses; symmetric rows average both directions).
        chunk_size: rows per block for the memory-bounded path; None chooses automatically.
        validate: check for NaN/Inf input (one host sync); shapes and τ are always checked.
        gather: under DDP, the keys (and queries, when symmetric) of every rank are the negatives.

    Returns:
        A scalar, or (N,) losses for ``reduction="none"``.

    Example::

        q, k = torch.randn(256, 128), torch.randn(256, 128)
        loss = info_nce(q, k, temperature=0.2)
    """
    check_pair(q, k, min_rows=1 if negatives is not None else _min_rows(gather), check_finite=validate)
    check_reduction(reduction)
    if negatives is not None:
        if symmetric:
            raise ValueError("symmetric=True is not defined with negatives (the queue holds keys only)")
        check_embeddings(negatives, "negatives", check_finite=validate)
        if negatives.shape[1] != q.shape[1]:
            raise ValueError(
                f"negatives must have the embedding width D={q.shape[1]} of q, got shape {tuple(negatives.shape)}"
            )
    with no_autocast(q.device):
        q, k = _prepare(q, normalize), _prepare(k, normalize)  # (N, D) each
        tau = check_temperature(temperature, q.dtype)
        if negatives is not None:
            return reduce(_moco_losses(q, k, _prepare(negatives, normalize).to(q.dtype), tau), reduction)
        all_k, offset = _gathered(k, gather)  # (W·N, D)
        targets = torch.arange(offset, offset + q.shape[0], device=q.device)  # (N,) column of each positive
        losses = contrastive_cross_entropy(q, all_k, tau, targets, chunk_size=chunk_size)  # (N,)
        if symmetric:
            all_q, _ = _gathered(q, gather)
            losses = 0.5 * (losses + contrastive_cross_entropy(k, all_q, tau, targets, chunk_size=chunk_size))
        return reduce(losses, reduction)


def _moco_losses(q: Tensor, k: Tensor, negatives: Tensor, tau: float | Tensor) -> Tensor:
    l_pos = (q * k).sum(dim=1, keepdim=True)  # (N, 1)
    l_neg = q @ negatives.T  # (N, M)
    logits = torch.cat([l_pos, l_neg], dim=1) / tau  # (N, 1+M), the positive in column 0
    return F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long, device=q.device), reduction="none")


def nt_xent(
    q: Tensor,
    k: Tensor,
    temperature: TemperatureLike = 0.5,
    *,
    normalize: bool = True,
    exclude_self: bool = True,
    reduction: str = "mean",
    chunk_size: int | None = None,
    validate: bool = True,
    gather: bool = False,
) -> Tensor:
    """NT-Xent, the concatenated 2N form of SimCLR.

    ``z = cat(q, k)`` (2N×D); ``logits = z @ z.T / τ`` with the diagonal excluded (-inf);
    row i (a view of sample i) has target i+N and row i+N has target i; cross-entropy over the
    2N rows. Each row has one positive and 2N-2 negatives.

    Args:
        q, k: (N, D) the two views; row i of each is a positive pair. N >= 2.
        temperature: τ > 0, a float or a :class:`Temperature` module.
        normalize: L2-normalise rows first (cosine similarity, as in SimCLR).
        exclude_self: mask the self-similarity z_i·z_i. ``False`` gives the literal
            ``cross_entropy(z @ z.T / τ, targets)`` seen in tutorials, where every row's largest
            logit is itself (1/τ after normalisation): a constant the encoder cannot lower.
        reduction: "mean" | "sum" | "none" (2N per-row losses: the q rows, then the k rows).
        chunk_size: rows per block for the memory-bounded path; None chooses automatically
            (chunked above 2**27 similarities, i.e. N > 5792).
        validate: check for NaN/Inf input (one host sync).
        gather: under DDP, q and k of every rank are the negatives.

    Example::

        z1, z2 = projector(encoder(view1)), projector(encoder(view2))
        loss = nt_xent(z1, z2, temperature=0.5)
    """
    check_pair(q, k, min_rows=_min_rows(gather), check_finite=validate)
    check_reduction(reduction)
    with no_autocast(q.device):
        q, k = _prepare(q, normalize), _prepare(k, normalize)  # (N, D) each
        tau = check_temperature(temperature, q.dtype)
        (all_q, offset), (all_k, _) = _gathered(q, gather), _gathered(k, gather)  # (W·N, D) each
        n, total = q.shape[0], all_q.shape[0]
        rows = torch.cat([q, k])  # (2N, D): this rank's q rows, then its k rows
        columns = rows if all_q is q else torch.cat([all_q, all_k])  # (2·W·N, D); one process: rows
        local = torch.arange(offset, offset + n, device=q.device)  # (N,) this rank's samples
        self_index = torch.cat([local, local + total])  # (2N,) the column of each row itself
        targets = torch.cat([local + total, local])  # (2N,) the other view of the same sample
        losses = contrastive_cross_entropy(
            rows, columns, tau, targets, self_index if exclude_self else None, chunk_size
        )  # (2N,)
        return reduce(losses, reduction)


class InfoNCE(LossModule):
    """Module form of :func:`info_nce`.

    Under DDP (``gather_distributed=True``) the keys of all ranks are gathered with gradients
    and each query's target is offset by ``rank * N``, so a step on 2 ranks × B samples equals a
    single-process step on 2B samples. With ``negatives`` (MoCo v2) nothing is gathered: the
    negatives come from the queue, which the method fills with the keys of all ranks.
    """

    def __init__(
        self, temperature: float | Temperature = 0.1, symmetric: bool = False, chunk_size: int | None = None, **options
    ) -> None:
        super().__init__(temperature, **options)
        self.symmetric, self.chunk_size = symmetric, chunk_size

    def forward(self, q: Tensor, k: Tensor, negatives: Tensor | None = None) -> Tensor:
        return info_nce(
            q,
            k,
            self.tau(),
            negatives=negatives,
            symmetric=self.symmetric,
            chunk_size=self.chunk_size,
            **self.options(),
        )

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, symmetric={self.symmetric}"


class NTXent(LossModule):
    """Module form of :func:`nt_xent`.

    Under DDP (``gather_distributed=True``) q and k of all ranks are gathered with gradients and
    used as negatives, so a step on 2 ranks × B samples equals a single-process step on 2B samples.
    """

    def __init__(
        self,
        temperature: float | Temperature = 0.5,
        exclude_self: bool = True,
        chunk_size: int | None = None,
        **options,
    ) -> None:
        super().__init__(temperature, **options)
        self.exclude_self, self.chunk_size = exclude_self, chunk_size

    def forward(self, q: Tensor, k: Tensor) -> Tensor:
        return nt_xent(q, k, self.tau(), exclude_self=self.exclude_self, chunk_size=self.chunk_size, **self.options())

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, exclude_self={self.exclude_self}"
