"""The chunked path gives the unchunked loss and gradients without building the full matrix."""

from __future__ import annotations

import pytest
import torch

from contrast.losses import Temperature, info_nce, kernel, nt_xent


def _pair(n, d, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g).requires_grad_(), torch.randn(n, d, generator=g).requires_grad_()


def _rel_err(a, b):
    return float((a.detach().double() - b.detach().double()).norm() / b.detach().double().norm())


@pytest.mark.parametrize("chunk", [1, 7, 64, 299])
@pytest.mark.parametrize("tau", [0.05, 0.5])
@pytest.mark.parametrize(
    "loss_fn",
    [
        lambda q, k, t, c: nt_xent(q, k, t, chunk_size=c, reduction="none"),
        lambda q, k, t, c: nt_xent(q, k, t, chunk_size=c, exclude_self=False, normalize=False, reduction="none"),
        lambda q, k, t, c: info_nce(q, k, t, chunk_size=c, symmetric=True, reduction="none"),
    ],
    ids=["nt_xent", "nt_xent_literal", "info_nce_symmetric"],
)
def test_chunked_equals_unchunked_in_value_and_gradient(chunk, tau, loss_fn):
    q, k = _pair(150, 16, seed=chunk)
    full = loss_fn(q, k, tau, None)
    chunked = loss_fn(q, k, tau, chunk)
    weights = torch.rand(full.numel(), generator=torch.Generator().manual_seed(0))
    assert _rel_err(chunked, full) < 1e-5
    g_full = torch.autograd.grad((full * weights).sum(), (q, k))
    g_chunked = torch.autograd.grad((chunked * weights).sum(), (q, k))
    for a, b in zip(g_chunked, g_full):
        assert _rel_err(a, b) < 1e-5


def test_chunked_learnable_temperature_gradient():
    q, k = _pair(64, 8, seed=1)
    tau = Temperature(0.1)
    grads = [torch.autograd.grad(nt_xent(q, k, tau, chunk_size=c), (q, k, tau.log_tau)) for c in (None, 10)]
    for a, b in zip(*grads):
        assert _rel_err(a, b) < 1e-5


def test_chunked_path_never_builds_more_than_a_block(monkeypatch):
    shapes = []
    original = kernel._similarities

    def recording(a_block, b, inv_tau, self_block):
        shapes.append(tuple(a_block.shape[:1]) + (b.shape[0],))
        return original(a_block, b, inv_tau, self_block)

    monkeypatch.setattr(kernel, "_similarities", recording)
    q, k = _pair(100, 4, seed=2)
    nt_xent(q, k, 0.2, chunk_size=16).backward()
    assert shapes and max(rows for rows, _ in shapes) <= 16
    assert all(cols == 200 for _, cols in shapes)
    assert len(shapes) == 2 * 13  # 200 rows in blocks of 16, forward and backward


def test_automatic_threshold_picks_the_chunked_path(monkeypatch):
    assert kernel.resolve_chunk_size(4096 * 2, 4096 * 2, None) == 8192  # 2**26 similarities: one block
    rows = kernel.resolve_chunk_size(16384 * 2, 16384 * 2, None)
    assert rows < 16384 * 2 and rows * 16384 * 2 <= kernel.AUTO_BLOCK_ELEMENTS
    monkeypatch.setattr(kernel, "AUTO_CHUNK_ELEMENTS", 100)
    monkeypatch.setattr(kernel, "AUTO_BLOCK_ELEMENTS", 40)
    q, k = _pair(10, 3, seed=3)
    torch.testing.assert_close(nt_xent(q, k, 0.3), nt_xent(q, k, 0.3, chunk_size=20))
