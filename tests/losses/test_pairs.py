"""Pair objectives equal torch's own losses on triplets / pairs built independently here."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from contrast.losses import cosine_embedding, hinge_embedding, margin_ranking, triplet_margin


def _pair(n=7, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g).requires_grad_(), torch.randn(n, d, generator=g).requires_grad_()


def _negatives(i, n, labels):
    return [j for j in range(n) if (j != i if labels is None else int(labels[j]) != int(labels[i]))]


def _distance(a, b, p):
    return float(torch.nn.functional.pairwise_distance(a[None].double(), b[None].double(), p=p))


def _select(q, k, mining, p, labels):
    """Triplets (anchor, negative) chosen by loops over explicit distances."""
    n = q.shape[0]
    triplets = []
    for i in range(n):
        negs = _negatives(i, n, labels)
        if mining == "all":
            triplets += [(i, j) for j in negs]
            continue
        d = {j: _distance(q[i], k[j], p) for j in negs}
        if mining == "hardest":
            triplets.append((i, min(d, key=d.get)))
        else:
            d_pos = _distance(q[i], k[i], p)
            semi = {j: v for j, v in d.items() if v > d_pos}
            triplets.append((i, min(semi, key=semi.get) if semi else max(d, key=d.get)))
    return triplets


def _assert_same_value_and_grads(ours, ref, inputs):
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-6)
    for g1, g2 in zip(torch.autograd.grad(ours, inputs), torch.autograd.grad(ref, inputs)):
        torch.testing.assert_close(g1, g2, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mining", ["all", "hardest", "semi-hard"])
@pytest.mark.parametrize("p", [1.0, 2.0])
@pytest.mark.parametrize("swap", [False, True])
@pytest.mark.parametrize("margin", [0.5, 2.0])
@pytest.mark.parametrize("with_labels", [False, True])
def test_triplet_margin_equals_torch_on_mined_triplets(mining, p, swap, margin, with_labels):
    q, k = _pair(seed=int(p * 10) + int(margin))
    labels = torch.tensor([0, 1, 0, 2, 1, 2, 3]) if with_labels else None
    ours = triplet_margin(q, k, margin, p=p, swap=swap, mining=mining, labels=labels)
    triplets = _select(q.detach(), k.detach(), mining, p, labels)
    anchor = torch.tensor([a for a, _ in triplets])
    negative = torch.tensor([j for _, j in triplets])
    ref = nn.TripletMarginLoss(margin=margin, p=p, swap=swap)(q[anchor], k[anchor], k[negative])
    _assert_same_value_and_grads(ours, ref, (q, k))


def test_semi_hard_differs_from_hardest_when_it_should():
    # q_0 is closer to k_1 than to its positive: hardest takes k_1, semi-hard skips it for k_2.
    q = torch.tensor([[0.0, 0.0], [5.0, 5.0], [-5.0, 5.0]])
    k = torch.tensor([[1.0, 0.0], [0.5, 0.0], [1.5, 0.0]])
    hardest = triplet_margin(q, k, 1.0, mining="hardest", reduction="none")
    semi = triplet_margin(q, k, 1.0, mining="semi-hard", reduction="none")
    assert hardest[0].item() == pytest.approx(1.0 - 0.5 + 1.0, abs=1e-5)
    assert semi[0].item() == pytest.approx(1.0 - 1.5 + 1.0, abs=1e-5)


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("margin", [0.0, 0.2, 1.0])
@pytest.mark.parametrize("with_labels", [False, True])
def test_margin_ranking_equals_torch_and_the_hinge_formula(normalize, margin, with_labels):
    q, k = _pair(seed=3)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3]) if with_labels else None
    ours = margin_ranking(q, k, margin, normalize=normalize, labels=labels, reduction="sum")
    qq, kk = (nn.functional.normalize(q, dim=1), nn.functional.normalize(k, dim=1)) if normalize else (q, k)
    pos, neg = [], []
    explicit = 0.0
    for i in range(7):
        for j in _negatives(i, 7, labels):
            s_ii, s_ij = qq[i] @ kk[i], qq[i] @ kk[j]
            pos.append(s_ii)
            neg.append(s_ij)
            explicit += max(0.0, margin - s_ii.item() + s_ij.item())
    ref = nn.MarginRankingLoss(margin=margin, reduction="sum")(torch.stack(pos), torch.stack(neg), torch.ones(len(pos)))
    assert ours.item() == pytest.approx(explicit, rel=1e-5, abs=1e-5)
    _assert_same_value_and_grads(ours, ref, (q, k))


@pytest.mark.parametrize("shift", [1, 3, -2])
@pytest.mark.parametrize("margin", [0.0, 0.3])
@pytest.mark.parametrize("with_labels", [False, True])
def test_cosine_embedding_equals_torch_on_shifted_pairs(shift, margin, with_labels):
    q, k = _pair(seed=4)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 3]) if with_labels else None
    ours = cosine_embedding(q, k, margin, shift=shift, labels=labels)
    rows = list(range(7))
    neg = [(i, (i + shift) % 7) for i in rows if labels is None or labels[i] != labels[(i + shift) % 7]]
    qi = torch.tensor(rows + [i for i, _ in neg])
    ki = torch.tensor(rows + [j for _, j in neg])
    y = torch.tensor([1.0] * 7 + [-1.0] * len(neg))
    ref = nn.CosineEmbeddingLoss(margin=margin)(q[qi], k[ki], y)
    _assert_same_value_and_grads(ours, ref, (q, k))


@pytest.mark.parametrize("shift", [1, 2])
@pytest.mark.parametrize("p", [1.0, 2.0])
@pytest.mark.parametrize("margin", [1.0, 5.0])
def test_hinge_embedding_equals_torch_on_distances(shift, p, margin):
    q, k = _pair(seed=5)
    ours = hinge_embedding(q, k, margin, p=p, shift=shift)
    j = [(i + shift) % 7 for i in range(7)]
    distances = torch.cat([nn.functional.pairwise_distance(q, k, p=p), nn.functional.pairwise_distance(q, k[j], p=p)])
    y = torch.cat([torch.ones(7), -torch.ones(7)])
    ref = nn.HingeEmbeddingLoss(margin=margin)(distances, y)
    _assert_same_value_and_grads(ours, ref, (q, k))


BAD = [
    (lambda q, k: triplet_margin(q, k, mining="hard"), "mining must be one of"),
    (lambda q, k: triplet_margin(q, k, labels=torch.zeros(7)), "integer tensor of class ids"),
    (lambda q, k: triplet_margin(q, k, labels=torch.zeros(7, dtype=torch.bool)), "integer tensor"),
    (lambda q, k: triplet_margin(q, k, labels=torch.zeros(6, dtype=torch.long)), r"shape \(N,\)"),
    (lambda q, k: triplet_margin(q, k, labels=[0] * 7), "torch.Tensor"),
    (lambda q, k: triplet_margin(q, k, labels=torch.zeros(7, dtype=torch.long)), "at least one negative"),
    (lambda q, k: triplet_margin(q, k, margin=-1.0), "margin"),
    (lambda q, k: margin_ranking(q.long(), k.long()), "floating-point"),
    (lambda q, k: margin_ranking(q, k[:5]), "same shape"),
    (lambda q, k: cosine_embedding(q, k, margin=2.0), r"margin must lie in \[-1, 1\]"),
    (lambda q, k: cosine_embedding(q, k, shift=7), "shift"),
    (lambda q, k: hinge_embedding(q, k, shift=0), "shift"),
    (lambda q, k: hinge_embedding(q[:1], k[:1]), "at least 2 rows"),
    (lambda q, k: hinge_embedding(q, k, reduction="max"), "reduction"),
]


@pytest.mark.parametrize("call,message", BAD, ids=[m for _, m in BAD])
def test_bad_input_raises_a_clear_error(call, message):
    q, k = _pair()
    with pytest.raises(ValueError, match=message):
        call(q, k)
