"""Pair objectives on (q, k) batches with in-batch negatives, built on torch's own losses.

These are the margin losses of the cross-modal retrieval family (VSE++, Faghri et al. 2018;
FaceNet, Schroff et al. 2015): row i of ``q`` and row i of ``k`` are a positive pair, and the
other rows of ``k`` are negatives for ``q_i``. With ``labels`` (N,) integer class ids, a row
``k_j`` is a negative for ``q_i`` only when ``labels[j] != labels[i]``.

Each function builds its pairs or triplets and hands them to the torch loss, so the values
and gradients are exactly torch's on those inputs:

* ``triplet_margin``: ``nn.TripletMarginLoss(q_i, k_i, k_j)``, negatives chosen by ``mining``;
* ``margin_ranking``: ``nn.MarginRankingLoss(s_ii, s_ij, y=1)`` = max(0, margin - s_ii + s_ij)
  over all negatives j, with s = cosine (or dot) similarity;
* ``cosine_embedding``: ``nn.CosineEmbeddingLoss`` on (q_i, k_i) with y=1 and on
  (q_i, k_{i+shift}) with y=-1;
* ``hinge_embedding``: ``nn.HingeEmbeddingLoss`` on the p-norm distances of the same pairs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from contrast.checks import ConfigError
from contrast.losses._validate import check_labels, check_pair, check_reduction

MINING = ("all", "hardest", "semi-hard")


def _negative_mask(n: int, labels: Tensor | None, device: torch.device) -> Tensor:
    """(N, N) bool: True where k_j is a negative for q_i."""
    if labels is None:
        return ~torch.eye(n, dtype=torch.bool, device=device)
    return labels[:, None] != labels[None, :]


def _require_negatives(mask: Tensor) -> None:
    if not bool(mask.any(dim=1).all()):
        raise ValueError("every row needs at least one negative, but some row's label is shared by the whole batch")


def _check_margin(margin: float, *, allow_negative: bool = False) -> float:
    margin = float(margin)
    if margin != margin or (margin < 0 and not allow_negative):
        raise ConfigError("margin", f"margin must be a number >= 0, got {margin}")
    return margin


def triplet_margin(
    q: Tensor,
    k: Tensor,
    margin: float = 1.0,
    *,
    p: float = 2.0,
    swap: bool = False,
    mining: str = "all",
    labels: Tensor | None = None,
    reduction: str = "mean",
    validate: bool = True,
) -> Tensor:
    """Triplet loss ``max(0, d(q_i, k_i) - d(q_i, k_j) + margin)`` on in-batch negatives k_j.

    mining:
        "all": every negative of every anchor (N(N-1) triplets without labels);
        "hardest": per anchor, the negative closest to it (VSE++ max-of-hinges);
        "semi-hard": per anchor, the closest negative that is still farther than the positive
            (FaceNet); an anchor with none falls back to its farthest negative (as TF-Addons).
    Distances are p-norm distances as in ``F.pairwise_distance``; ``swap`` uses the distance swap
    of Balntas et al. (2016). Returns torch's ``triplet_margin_loss`` on the selected triplets.
    ``validate=False`` (the training step) skips the checks that read values back from the device
    (finite inputs, a negative for every row), so the step has no host sync.
    """
    check_pair(q, k, min_rows=2, check_finite=validate)
    check_reduction(reduction)
    _check_margin(margin)
    if mining not in MINING:
        raise ConfigError("mining", f"mining must be one of {MINING}, got {mining!r}")
    labels = check_labels(labels, q.shape[0], q.device)
    mask = _negative_mask(q.shape[0], labels, q.device)
    if validate or mining == "all":  # "all" selects its triplets by value (nonzero) anyway
        _require_negatives(mask)
    if mining == "all":
        anchor, negative = mask.nonzero(as_tuple=True)
    else:
        with torch.no_grad():
            distance = torch.cdist(q.detach().float(), k.detach().float(), p=p)
            positive = distance.diagonal()[:, None]
            if mining == "hardest":
                candidates = distance.masked_fill(~mask, float("inf"))
                negative = candidates.argmin(dim=1)
            else:
                semi = mask & (distance > positive)
                closest = distance.masked_fill(~semi, float("inf")).argmin(dim=1)
                farthest = distance.masked_fill(~mask, float("-inf")).argmax(dim=1)
                negative = torch.where(semi.any(dim=1), closest, farthest)
        anchor = torch.arange(q.shape[0], device=q.device)
    return F.triplet_margin_loss(q[anchor], k[anchor], k[negative], margin=margin, p=p, swap=swap, reduction=reduction)


def _similarity(q: Tensor, k: Tensor, normalize: bool) -> Tensor:
    if normalize:
        q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
    return q @ k.T


def margin_ranking(
    q: Tensor,
    k: Tensor,
    margin: float = 0.2,
    *,
    normalize: bool = True,
    labels: Tensor | None = None,
    reduction: str = "mean",
) -> Tensor:
    """Ranking hinge ``max(0, margin - s(q_i, k_i) + s(q_i, k_j))`` over all in-batch negatives j.

    s is cosine similarity (``normalize=True``) or the dot product. This is the sum-of-hinges
    loss of VSE (Kiros et al. 2014), computed by ``nn.MarginRankingLoss(s_ii, s_ij, y=1)``.
    """
    check_pair(q, k, min_rows=2)
    check_reduction(reduction)
    _check_margin(margin)
    labels = check_labels(labels, q.shape[0], q.device)
    mask = _negative_mask(q.shape[0], labels, q.device)
    _require_negatives(mask)
    similarity = _similarity(q, k, normalize)
    anchor, negative = mask.nonzero(as_tuple=True)
    positive_scores = similarity.diagonal()[anchor]
    negative_scores = similarity[anchor, negative]
    target = torch.ones_like(positive_scores)
    return F.margin_ranking_loss(positive_scores, negative_scores, target, margin=margin, reduction=reduction)


def _shifted_pairs(q: Tensor, k: Tensor, shift: int, labels: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    """Row indices (into q, k) and targets ±1: the N positive pairs, then (i, i+shift) negatives."""
    n = q.shape[0]
    if isinstance(shift, bool) or not isinstance(shift, int) or shift % n == 0:
        raise ValueError(f"shift must be an int that is not a multiple of N={n}, got {shift!r}")
    rows = torch.arange(n, device=q.device)
    shifted = (rows + shift) % n
    keep = rows if labels is None else rows[labels != labels[shifted]]
    q_index = torch.cat([rows, keep])
    k_index = torch.cat([rows, shifted[keep]])
    target = torch.cat([torch.ones(n, device=q.device), -torch.ones(keep.numel(), device=q.device)]).to(q.dtype)
    return q_index, k_index, target


def cosine_embedding(
    q: Tensor,
    k: Tensor,
    margin: float = 0.0,
    *,
    shift: int = 1,
    labels: Tensor | None = None,
    reduction: str = "mean",
) -> Tensor:
    """``nn.CosineEmbeddingLoss`` on positive pairs (q_i, k_i), y=1, and shifted negatives
    (q_i, k_{(i+shift) mod N}), y=-1 (pairs of equal label dropped): 1 - cos for positives,
    max(0, cos - margin) for negatives. The 2N (or fewer) pair losses are reduced together."""
    check_pair(q, k, min_rows=2)
    check_reduction(reduction)
    if not -1.0 <= float(margin) <= 1.0:
        raise ConfigError("margin", f"margin must lie in [-1, 1] for cosine similarity, got {margin}")
    labels = check_labels(labels, q.shape[0], q.device)
    q_index, k_index, target = _shifted_pairs(q, k, shift, labels)
    return F.cosine_embedding_loss(q[q_index], k[k_index], target, margin=float(margin), reduction=reduction)


def hinge_embedding(
    q: Tensor,
    k: Tensor,
    margin: float = 1.0,
    *,
    p: float = 2.0,
    shift: int = 1,
    labels: Tensor | None = None,
    reduction: str = "mean",
) -> Tensor:
    """``nn.HingeEmbeddingLoss`` on the p-norm distances d of the same pairs as
    :func:`cosine_embedding`: d for positives (pulled together), max(0, margin - d) for negatives."""
    check_pair(q, k, min_rows=2)
    check_reduction(reduction)
    _check_margin(margin)
    labels = check_labels(labels, q.shape[0], q.device)
    q_index, k_index, target = _shifted_pairs(q, k, shift, labels)
    distance = F.pairwise_distance(q[q_index], k[k_index], p=p)
    return F.hinge_embedding_loss(distance, target, margin=margin, reduction=reduction)
