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
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

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
from contrast.losses.temperature import Temperature

TemperatureLike = float | Tensor | Temperature


def _prepare(x: Tensor, normalize: bool) -> Tensor:
    x = x.to(compute_dtype(x))
    return F.normalize(x, dim=1) if normalize else x


def _tau(temperature: float | Tensor, dtype: torch.dtype) -> float | Tensor:
    return temperature.to(dtype) if isinstance(temperature, Tensor) else temperature


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
) -> Tensor:
    """Single-view InfoNCE: ``cross_entropy(q @ k.T / τ, arange(N))``.

    Args:
        q: (N, D) queries. Row i of ``q`` and row i of ``k`` are a positive pair.
        k: (N, D) keys.
        temperature: τ > 0, a float or a :class:`Temperature` module (learnable).
        negatives: optional (M, D) bank of extra negatives (the MoCo queue). Then the logits are
            ``[q_i·k_i | q_i @ negatives.T] / τ`` (N×(1+M)), target 0, and the other keys of the
            batch are *not* negatives, as in MoCo.
        normalize: L2-normalise q, k and negatives first (cosine similarity).
        symmetric: average the q→k and k→q losses (MoCo v3). Not defined with ``negatives``.
        reduction: "mean" | "sum" | "none" (N per-row losses; symmetric rows average both directions).
        chunk_size: rows per block for the memory-bounded path; None chooses automatically.
        validate: check for NaN/Inf input (one host sync); shapes and τ are always checked.

    Returns:
        A scalar, or (N,) losses for ``reduction="none"``.

    Example::

        q, k = torch.randn(256, 128), torch.randn(256, 128)
        loss = info_nce(q, k, temperature=0.2)
    """
    check_pair(q, k, min_rows=1 if negatives is not None else 2, check_finite=validate)
    check_reduction(reduction)
    tau = check_temperature(temperature)
    if negatives is not None:
        if symmetric:
            raise ValueError("symmetric=True is not defined with negatives (the queue holds keys only)")
        check_embeddings(negatives, "negatives", check_finite=validate)
        if negatives.shape[1] != q.shape[1]:
            raise ValueError(
                f"negatives must have the embedding width D={q.shape[1]} of q, got shape {tuple(negatives.shape)}"
            )
    with no_autocast(q.device):
        q, k = _prepare(q, normalize), _prepare(k, normalize)
        tau = _tau(tau, q.dtype)
        if negatives is not None:
            return reduce(_moco_losses(q, k, _prepare(negatives, normalize).to(q.dtype), tau), reduction)
        targets = torch.arange(q.shape[0], device=q.device)
        losses = contrastive_cross_entropy(q, k, tau, targets, chunk_size=chunk_size)
        if symmetric:
            losses = 0.5 * (losses + contrastive_cross_entropy(k, q, tau, targets, chunk_size=chunk_size))
        return reduce(losses, reduction)


def _moco_losses(q: Tensor, k: Tensor, negatives: Tensor, tau: float | Tensor) -> Tensor:
    positive = (q * k).sum(dim=1, keepdim=True)
    logits = torch.cat([positive, q @ negatives.T], dim=1) / tau
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

    Example::

        z1, z2 = projector(encoder(view1)), projector(encoder(view2))
        loss = nt_xent(z1, z2, temperature=0.5)
    """
    check_pair(q, k, min_rows=2, check_finite=validate)
    check_reduction(reduction)
    tau = check_temperature(temperature)
    with no_autocast(q.device):
        z = torch.cat([_prepare(q, normalize), _prepare(k, normalize)], dim=0)
        losses = _nt_xent_rows(z, z, 0, _tau(tau, z.dtype), exclude_self, chunk_size)
        return reduce(losses, reduction)


def _nt_xent_rows(
    rows: Tensor, columns: Tensor, offset: int, tau: float | Tensor, exclude_self: bool, chunk_size: int | None
) -> Tensor:
    """NT-Xent losses of ``rows`` = cat(q_local, k_local) (2n) against ``columns`` = cat(q_all, k_all) (2N).

    The local samples are columns offset .. offset+n of each half (offset = rank * n).
    """
    n, total = rows.shape[0] // 2, columns.shape[0] // 2
    local = torch.arange(offset, offset + n, device=rows.device)
    self_index = torch.cat([local, local + total])
    targets = torch.cat([local + total, local])
    return contrastive_cross_entropy(rows, columns, tau, targets, self_index if exclude_self else None, chunk_size)


class _ContrastiveLoss(nn.Module):
    def __init__(self, temperature: float | Temperature, normalize: bool, reduction: str, gather_distributed: bool):
        super().__init__()
        if not isinstance(temperature, Temperature):
            temperature = float(check_temperature(temperature))
        check_reduction(reduction)
        self.temperature = temperature
        self.normalize = normalize
        self.reduction = reduction
        self.gather_distributed = gather_distributed

    def tau(self) -> float | Tensor:
        return self.temperature() if isinstance(self.temperature, Temperature) else self.temperature


class InfoNCE(_ContrastiveLoss):
    """Module form of :func:`info_nce`.

    Under DDP (``gather_distributed=True``) the keys of all ranks are gathered with gradients
    and each query's target is offset by ``rank * N``, so a step on 2 ranks × B samples equals a
    single-process step on 2B samples. With ``negatives`` (MoCo v2) nothing is gathered: the
    negatives come from the queue, which the method fills with the keys of all ranks.
    """

    def __init__(
        self,
        temperature: float | Temperature = 0.1,
        normalize: bool = True,
        symmetric: bool = False,
        reduction: str = "mean",
        gather_distributed: bool = True,
        chunk_size: int | None = None,
        validate: bool = True,
    ) -> None:
        super().__init__(temperature, normalize, reduction, gather_distributed)
        self.symmetric = symmetric
        self.chunk_size = chunk_size
        self.validate = validate

    def forward(self, q: Tensor, k: Tensor, negatives: Tensor | None = None) -> Tensor:
        kwargs = dict(
            normalize=self.normalize, reduction=self.reduction, chunk_size=self.chunk_size, validate=self.validate
        )
        if negatives is not None or not (self.gather_distributed and distributed.is_distributed()):
            return info_nce(q, k, self.tau(), negatives=negatives, symmetric=self.symmetric, **kwargs)
        check_pair(q, k, min_rows=1, check_finite=self.validate)
        tau = check_temperature(self.tau())
        with no_autocast(q.device):
            q, k = _prepare(q, self.normalize), _prepare(k, self.normalize)
            tau = _tau(tau, q.dtype)
            n, offset = q.shape[0], distributed.rank() * q.shape[0]
            targets = torch.arange(offset, offset + n, device=q.device)
            losses = contrastive_cross_entropy(q, distributed.gather(k), tau, targets, chunk_size=self.chunk_size)
            if self.symmetric:
                back = contrastive_cross_entropy(k, distributed.gather(q), tau, targets, chunk_size=self.chunk_size)
                losses = 0.5 * (losses + back)
            return reduce(losses, self.reduction)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, normalize={self.normalize}, symmetric={self.symmetric}"


class NTXent(_ContrastiveLoss):
    """Module form of :func:`nt_xent`.

    Under DDP (``gather_distributed=True``) q and k of all ranks are gathered with gradients and
    used as negatives, so a step on 2 ranks × B samples equals a single-process step on 2B samples.
    """

    def __init__(
        self,
        temperature: float | Temperature = 0.5,
        normalize: bool = True,
        exclude_self: bool = True,
        reduction: str = "mean",
        gather_distributed: bool = True,
        chunk_size: int | None = None,
        validate: bool = True,
    ) -> None:
        super().__init__(temperature, normalize, reduction, gather_distributed)
        self.exclude_self = exclude_self
        self.chunk_size = chunk_size
        self.validate = validate

    def forward(self, q: Tensor, k: Tensor) -> Tensor:
        if not (self.gather_distributed and distributed.is_distributed()):
            return nt_xent(
                q,
                k,
                self.tau(),
                normalize=self.normalize,
                exclude_self=self.exclude_self,
                reduction=self.reduction,
                chunk_size=self.chunk_size,
                validate=self.validate,
            )
        check_pair(q, k, min_rows=1, check_finite=self.validate)
        tau = check_temperature(self.tau())
        with no_autocast(q.device):
            q, k = _prepare(q, self.normalize), _prepare(k, self.normalize)
            rows = torch.cat([q, k], dim=0)
            columns = torch.cat([distributed.gather(q), distributed.gather(k)], dim=0)
            offset = distributed.rank() * q.shape[0]
            losses = _nt_xent_rows(rows, columns, offset, _tau(tau, q.dtype), self.exclude_self, self.chunk_size)
            return reduce(losses, self.reduction)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, normalize={self.normalize}, exclude_self={self.exclude_self}"
