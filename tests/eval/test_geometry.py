"""The geometry of an embedding against explicit formulas."""

from __future__ import annotations

import math

import pytest
import torch

from contrast.eval.geometry import alignment, positive_probability, uniformity


def test_alignment_uniformity_and_positive_probability_formulas():
    g = torch.Generator().manual_seed(3)
    q, k = torch.randn(50, 8, generator=g), torch.randn(50, 8, generator=g)
    qn, kn = q / q.norm(dim=1, keepdim=True), k / k.norm(dim=1, keepdim=True)
    assert alignment(q, k) == pytest.approx(sum(((a - b) ** 2).sum().item() for a, b in zip(qn, kn)) / 50, rel=1e-5)
    pairs = [(i, j) for i in range(50) for j in range(i + 1, 50)]
    explicit = math.log(sum(math.exp(-2 * ((qn[i] - qn[j]) ** 2).sum().item()) for i, j in pairs) / len(pairs))
    assert uniformity(q) == pytest.approx(explicit, rel=1e-5)
    logits = (qn @ kn.T / 0.5).double()
    expected = sum((logits[i, i].exp() / logits[i].exp().sum()).item() for i in range(50)) / 50
    assert positive_probability(q, k, 0.5) == pytest.approx(expected, rel=1e-5)
