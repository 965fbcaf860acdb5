"""SupCon, DCL and DCLW against the papers' formulas written out in float64 (values and gradients),
against NT-Xent where they must agree, and against the peers (pytorch-metric-learning, lightly)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from contrast.losses import dcl, nt_xent, sup_con
from tests.conftest import require


def _pair(n, d, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(n, d, generator=g, dtype=dtype, requires_grad=True)
    k = torch.randn(n, d, generator=g, dtype=dtype, requires_grad=True)
    return q, k


def assert_same_values_and_gradients(ours, reference, inputs, rtol, atol):
    torch.testing.assert_close(ours, reference, rtol=rtol, atol=atol)
    grads = torch.autograd.grad(ours.sum(), inputs)
    expected = torch.autograd.grad(reference.sum(), inputs)
    for a, b in zip(grads, expected):
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol)


# ---------------------------------------------------------------- references: loops over the formula
def ref_sup_con(q, k, labels, tau, *more):
    """Khosla et al. (2020), eq. 2, one anchor at a time, over the views (q, k, *more)."""
    views = (q, k, *more)
    z = F.normalize(torch.cat(views).double(), dim=1)
    y = torch.cat([labels] * len(views)).tolist()
    losses = []
    for i in range(len(y)):
        others = [a for a in range(len(y)) if a != i]
        denominator = sum(torch.exp(z[i] @ z[a] / tau) for a in others)
        positives = [p for p in others if y[p] == y[i]]
        losses.append(-sum(torch.log(torch.exp(z[i] @ z[p] / tau) / denominator) for p in positives) / len(positives))
    return torch.stack(losses)


def ref_dcl(q, k, tau, sigma=None):
    """Yeh et al. (2022): -w_i s(q_i, k_i) + log Σ_{j≠i} exp s(q_i, q_j) + exp s(q_i, k_j), both directions."""
    q, k = F.normalize(q.double(), dim=1), F.normalize(k.double(), dim=1)
    n = q.shape[0]

    def direction(a, b):
        out = []
        weights = (2 - n * torch.softmax((a * b).sum(1).detach() / sigma, 0)) if sigma else torch.ones(n)
        for i in range(n):
            negatives = sum(torch.exp(a[i] @ a[j] / tau) + torch.exp(a[i] @ b[j] / tau) for j in range(n) if j != i)
            out.append(-weights[i] * (a[i] @ b[i]) / tau + torch.log(negatives))
        return torch.stack(out)

    return 0.5 * (direction(q, k) + direction(k, q))


@pytest.mark.parametrize("n,d,tau", [(4, 3, 0.1), (9, 5, 0.5), (16, 8, 0.07)])
def test_sup_con_matches_the_formula_in_value_and_gradient(n, d, tau):
    q, k = _pair(n, d)
    labels = torch.arange(n) % 3
    ours = sup_con(q, k, labels, tau, reduction="none")
    assert_same_values_and_gradients(ours, ref_sup_con(q, k, labels, tau), (q, k), 1e-10, 1e-10)


@pytest.mark.parametrize("with_labels", [True, False])
def test_multi_crop_views_match_the_formula_in_value_and_gradient(with_labels):
    """V = 5 views (q, k and three small crops' embeddings): every other view of the image (or of its
    class) is a positive, all other views are in the denominator."""
    q, k = _pair(6, 4, seed=3)
    g = torch.Generator().manual_seed(4)
    more = [torch.randn(6, 4, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    labels = torch.tensor([0, 1, 0, 2, 1, 0]) if with_labels else None
    ours = sup_con(q, k, labels, 0.3, reduction="none", more_views=more)
    assert ours.shape == (30,)
    reference = ref_sup_con(q, k, labels if with_labels else torch.arange(6), 0.3, *more)
    assert_same_values_and_gradients(ours, reference, (q, k, *more), 1e-10, 1e-10)


def test_multi_crop_views_match_pytorch_metric_learning():
    pml = require("pytorch_metric_learning.losses")
    q, k = _pair(8, 5, seed=5, dtype=torch.float32)
    more = [torch.randn(8, 5, requires_grad=True) for _ in range(4)]
    ours = sup_con(q, k, None, 0.2, more_views=more)
    theirs = pml.SupConLoss(temperature=0.2)(torch.cat([q, k, *more]), torch.arange(8).repeat(6))
    assert_same_values_and_gradients(ours, theirs, (q, k, *more), 1e-4, 1e-5)


def test_a_multi_crop_view_of_another_shape_is_named():
    q, k = _pair(4, 3)
    with pytest.raises(ValueError, match=r"more_views\[1\]"):
        sup_con(q, k, None, 0.1, more_views=[torch.randn(4, 3), torch.randn(3, 3)])


def test_sup_con_without_labels_is_nt_xent():
    q, k = _pair(12, 6, seed=1)
    torch.testing.assert_close(sup_con(q, k, None, 0.2), nt_xent(q, k, 0.2), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(sup_con(q, k, torch.arange(12), 0.2), nt_xent(q, k, 0.2), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_sup_con_matches_pytorch_metric_learning(tau):
    pml = require("pytorch_metric_learning.losses")
    q, k = _pair(16, 8, seed=2, dtype=torch.float32)
    labels = torch.arange(16) % 4
    ours = sup_con(q, k, labels, tau)
    theirs = pml.SupConLoss(temperature=tau)(torch.cat([q, k]), torch.cat([labels, labels]))
    assert_same_values_and_gradients(ours, theirs, (q, k), 1e-4, 1e-5)


@pytest.mark.parametrize("sigma", [None, 0.5])
@pytest.mark.parametrize("n,d,tau", [(4, 3, 0.1), (10, 6, 0.5)])
def test_dcl_and_dclw_match_the_formula_in_value_and_gradient(n, d, tau, sigma):
    q, k = _pair(n, d, seed=3)
    ours = dcl(q, k, tau, weighting="vmf" if sigma else None, sigma=sigma or 0.5, reduction="none")
    assert_same_values_and_gradients(ours, ref_dcl(q, k, tau, sigma), (q, k), 1e-10, 1e-10)


def test_dcl_is_nt_xent_without_the_positive_in_the_denominator():
    """On normalised rows: DCL_i = NT-Xent_i + log(1 - p_i), p_i the softmax mass of the positive."""
    q, k = _pair(8, 4, seed=4)
    z = F.normalize(torch.cat([q, k]), dim=1)
    logits = (z @ z.T / 0.3).fill_diagonal_(float("-inf"))
    targets = torch.cat([torch.arange(8, 16), torch.arange(8)])
    p_positive = torch.softmax(logits, 1)[torch.arange(16), targets]
    expected = nt_xent(q, k, 0.3, reduction="none") + torch.log1p(-p_positive)
    torch.testing.assert_close(dcl(q, k, 0.3, reduction="none"), 0.5 * (expected[:8] + expected[8:]))


@pytest.mark.parametrize("weighting", [None, "vmf"])
def test_dcl_matches_lightly(weighting):
    lightly_loss = require("lightly.loss")
    q, k = _pair(16, 8, seed=5, dtype=torch.float32)
    peer = lightly_loss.DCLWLoss(temperature=0.1, sigma=0.5) if weighting else lightly_loss.DCLLoss(temperature=0.1)
    assert_same_values_and_gradients(dcl(q, k, 0.1, weighting=weighting), peer(q, k), (q, k), 1e-4, 1e-5)


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: sup_con(torch.randn(4, 3), torch.randn(4, 3), torch.arange(3)), "labels must have shape"),
        (lambda: sup_con(torch.randn(4, 3), torch.randn(4, 3), torch.rand(4)), "labels must be an integer"),
        (lambda: sup_con(torch.randn(4, 3), torch.randn(4, 3), None, 0.0), "temperature"),
        (lambda: dcl(torch.randn(4, 3), torch.randn(4, 3), weighting="gauss"), "weighting must be one of"),
        (lambda: dcl(torch.randn(1, 3), torch.randn(1, 3)), "at least 2 rows"),
        (lambda: dcl(torch.randn(4, 3), torch.randn(4, 3), weighting="vmf", sigma=0), "sigma must be > 0"),
    ],
)
def test_bad_input_names_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()
