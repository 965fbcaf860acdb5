"""Retrieval metrics on embeddings: label-based Recall@K and mAP@R, and cross-view Recall@K.

* Recall@K (label-based, the metric-learning convention of Song et al. 2016 / Musgrave et al.
  2020): the fraction of queries with at least one item of their own class among their K nearest
  neighbours (cosine similarity; the query itself excluded when queries are the database).
  Recall@1 equals "precision at 1".
* mAP@R (Musgrave et al. 2020, "A Metric Learning Reality Check"): for a query with R relevant
  items in the database, AP@R = (1/R) Σ_{i≤R} P(i)·rel(i) over its top R neighbours.
* Cross-view Recall@K for paired embeddings (q_i, k_i): the fraction of i with k_i among the K
  nearest keys of q_i (q→k), and the reverse (k→q).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _check(x: Tensor, name: str) -> Tensor:
    if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[0] == 0 or not x.is_floating_point():
        raise ValueError(f"{name} must be a non-empty floating (N, D) tensor, got {getattr(x, 'shape', x)}")
    return F.normalize(x.float(), dim=1)


def _ranked(queries: Tensor, database: Tensor | None, k: int) -> tuple[Tensor, bool]:
    """Indices (N, k) of each query's k nearest database items, self excluded when database is None."""
    same = database is None
    db = queries if same else database
    sims = queries @ db.T
    if same:
        sims.fill_diagonal_(float("-inf"))
    k = min(k, db.shape[0] - (1 if same else 0))
    return sims.topk(k, dim=1).indices, same


def recall_at_k(
    queries: Tensor,
    query_labels: Tensor,
    database: Tensor | None = None,
    database_labels: Tensor | None = None,
    ks: tuple[int, ...] = (1, 5, 10),
) -> dict[int, float]:
    """Label-based Recall@K in percent, for each K in ``ks``."""
    queries = _check(queries, "queries")
    database = None if database is None else _check(database, "database")
    db_labels = query_labels if database is None else database_labels
    if db_labels is None:
        raise ValueError("database_labels are required with a database")
    index, _ = _ranked(queries, database, max(ks))
    hits = db_labels[index] == query_labels[:, None]
    return {k: 100.0 * hits[:, :k].any(dim=1).float().mean().item() for k in ks}


def map_at_r(
    queries: Tensor, query_labels: Tensor, database: Tensor | None = None, database_labels: Tensor | None = None
) -> float:
    """Mean average precision at R in percent (queries with no relevant item are skipped)."""
    queries = _check(queries, "queries")
    database = None if database is None else _check(database, "database")
    db_labels = query_labels if database is None else database_labels
    if db_labels is None:
        raise ValueError("database_labels are required with a database")
    relevant = (db_labels[None, :] == query_labels[:, None]).sum(1) - (1 if database is None else 0)
    max_r = int(relevant.max())
    if max_r == 0:
        raise ValueError("no query has a relevant item in the database")
    index, _ = _ranked(queries, database, max_r)
    hits = (db_labels[index] == query_labels[:, None]).float()
    ranks = torch.arange(1, index.shape[1] + 1, dtype=torch.float32)
    within_r = ranks[None, :] <= relevant[:, None]
    precision = hits.cumsum(1) / ranks
    ap = (precision * hits * within_r).sum(1) / relevant.clamp_min(1)
    keep = relevant > 0
    return 100.0 * ap[keep].mean().item()


def cross_view_recall(q: Tensor, k: Tensor, ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
    """Recall@K in percent of paired embeddings, both ways: keys "q2k@K" and "k2q@K"."""
    q, k = _check(q, "q"), _check(k, "k")
    if q.shape != k.shape:
        raise ValueError(f"q and k must have the same shape, got {tuple(q.shape)} and {tuple(k.shape)}")
    target = torch.arange(q.shape[0])[:, None]
    out = {}
    for name, a, b in (("q2k", q, k), ("k2q", k, q)):
        index = (a @ b.T).topk(min(max(ks), b.shape[0]), dim=1).indices
        for kk in ks:
            out[f"{name}@{kk}"] = 100.0 * (index[:, :kk] == target).any(1).float().mean().item()
    return out


def alignment(q: Tensor, k: Tensor, alpha: float = 2.0) -> float:
    """Wang & Isola (2020): E ‖f(x) − f(y)‖^α over positive pairs of L2-normalised embeddings (lower is better)."""
    q, k = _check(q, "q"), _check(k, "k")
    return (q - k).norm(dim=1).pow(alpha).mean().item()


def uniformity(x: Tensor, t: float = 2.0) -> float:
    """Wang & Isola (2020): log E exp(−t ‖f(x) − f(y)‖²) over all distinct pairs (lower is more uniform)."""
    x = _check(x, "x")
    return torch.pdist(x).pow(2).mul(-t).exp().mean().log().item()


def positive_probability(q: Tensor, k: Tensor, temperature: float) -> float:
    """Mean softmax probability of the positive in ``q @ k.T / τ`` (cosine): how confidently the
    InfoNCE classifier picks each pair's partner."""
    q, k = _check(q, "q"), _check(k, "k")
    return torch.softmax(q @ k.T / temperature, dim=1).diagonal().mean().item()
