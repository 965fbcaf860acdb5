"""The geometry of an embedding (Wang & Isola 2020): alignment of positive pairs, uniformity on the
sphere, and the probability InfoNCE gives the positive."""

from __future__ import annotations

import torch
from torch import Tensor

from contrast.eval.retrieval import _check  # the rows checked and L2-normalised as the metrics take them


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
