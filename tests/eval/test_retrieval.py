from __future__ import annotations

import math

import pytest
import torch

from contrast.eval.retrieval import (
    alignment,
    cross_view_recall,
    map_at_r,
    positive_probability,
    recall_at_k,
    uniformity,
)
from tests.conftest import require

# Four points on a line in 2-D (cosine similarity orders them by angle), labels chosen by hand.
ANGLES = torch.tensor([0.0, 0.1, 0.2, 1.5, 1.6])
POINTS = torch.stack([torch.cos(ANGLES), torch.sin(ANGLES)], dim=1)
LABELS = torch.tensor([0, 1, 0, 1, 1])


def test_recall_at_k_hand_computed():
    # Leave-one-out neighbours by angle: 0 -> [1, 2, 3, 4]; 1 -> [0|2 tie, ...]; 2 -> [1, 0, 3, 4];
    # 3 -> [4, 2, 1, 0]; 4 -> [3, 2, 1, 0].
    r = recall_at_k(POINTS, LABELS, ks=(1, 2))
    # @1: q0 nn=1 (label 1 ≠ 0) miss; q1 nn=0 or 2 (label 0) miss; q2 nn=1 miss; q3 nn=4 hit; q4 nn=3 hit.
    assert r[1] == pytest.approx(40.0)
    # @2: q0 {1, 2} hit; q1 {0, 2} miss; q2 {1, 0} hit; q3 hit; q4 hit.
    assert r[2] == pytest.approx(80.0)


def test_map_at_r_hand_computed():
    # q0 (label 0): R=1, top-1 = [1] -> AP 0.   q2: R=1, top-1 = [1] -> 0.
    # q1 (label 1): R=2 (3, 4), top-2 = [0, 2] (both label 0) -> 0.
    # q3: R=2 (1, 4), top-2 = [4, 2] -> (1/2)(1/1) = 0.5.   q4: R=2 (1, 3), top-2 = [3, 2] -> 0.5.
    assert map_at_r(POINTS, LABELS) == pytest.approx(100.0 * (0 + 0 + 0 + 0.5 + 0.5) / 5)


def test_against_pytorch_metric_learning():
    accuracy_calculator = require("pytorch_metric_learning.utils.accuracy_calculator")
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(6, 16, generator=g)
    labels = torch.randint(0, 6, (400,), generator=g)
    # Unit vectors: pml ranks by L2 distance, which orders unit vectors as cosine similarity does.
    x = torch.nn.functional.normalize(centres[labels] + 0.8 * torch.randn(400, 16, generator=g), dim=1)
    calc = accuracy_calculator.AccuracyCalculator(
        include=("precision_at_1", "mean_average_precision_at_r"), k="max_bin_count", device=torch.device("cpu")
    )
    theirs = calc.get_accuracy(x, labels, x, labels, ref_includes_query=True)
    assert recall_at_k(x, labels, ks=(1,))[1] == pytest.approx(100 * theirs["precision_at_1"], abs=1e-4)
    assert map_at_r(x, labels) == pytest.approx(100 * theirs["mean_average_precision_at_r"], abs=1e-4)


def test_separate_database():
    queries = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    database = torch.tensor([[0.99, 0.01], [0.1, 0.9], [1.0, 0.05]])  # q0's nearest is db0 (label 1)
    r = recall_at_k(queries, torch.tensor([0, 1]), database, torch.tensor([1, 1, 0]), ks=(1, 2))
    assert r == {1: 50.0, 2: 100.0}


def test_cross_view_recall():
    q = torch.eye(4)
    k = torch.tensor([[1.0, 0, 0, 0], [0, 0.5, 1.0, 0], [0, 1.0, 0.1, 0], [0, 0, 0, 1.0]])
    r = cross_view_recall(q, k, ks=(1, 2))
    # cos(q1, k2) = 0.995 > cos(q1, k1) = 0.447 > 0; cos(q2, k1) = 0.894 > cos(q2, k2) = 0.0995 > 0:
    # q→k: q0 hit, q1 and q2 find their key second, q3 hit.
    assert r["q2k@1"] == 50.0 and r["q2k@2"] == 100.0


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
