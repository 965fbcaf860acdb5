"""InfoNCE and NT-Xent against explicit float64 formulas, torch's cross-entropy and lightly."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from contrast.losses import InfoNCE, NTXent, Temperature, info_nce, nt_xent
from tests.conftest import require

SHAPES = [(2, 1), (5, 3), (16, 32), (33, 8)]
TEMPERATURES = [0.05, 0.1, 0.5, 1.0]


# ---------------------------------------------------------------- references (float64, explicit)
def _unit(x):
    return x / x.norm(dim=1, keepdim=True)


def ref_info_nce(q, k, tau, normalize=True, symmetric=False, negatives=None):
    """Per-row losses: -log( exp(q_i·k_i/τ) / Σ_j exp(q_i·k_j/τ) ), written out."""
    q, k = q.double(), k.double()
    if normalize:
        q, k = _unit(q), _unit(k)
    if negatives is not None:
        negatives = negatives.double()
        negatives = _unit(negatives) if normalize else negatives
        pos = (q * k).sum(1) / tau
        all_logits = torch.cat([pos[:, None], q @ negatives.T / tau], dim=1)
        return torch.logsumexp(all_logits, dim=1) - pos

    def one_way(a, b):
        logits = a @ b.T / tau
        return torch.logsumexp(logits, dim=1) - logits.diagonal()

    losses = one_way(q, k)
    return 0.5 * (losses + one_way(k, q)) if symmetric else losses


def ref_nt_xent(q, k, tau, normalize=True, exclude_self=True):
    """Per-row losses over z = cat(q, k): -log( exp(z_i·z_t(i)/τ) / Σ_{j≠i} exp(z_i·z_j/τ) )."""
    n = q.shape[0]
    z = torch.cat([q, k]).double()
    if normalize:
        z = _unit(z)
    logits = z @ z.T / tau
    if exclude_self:
        logits = logits - torch.diag(torch.full((2 * n,), math.inf, dtype=torch.float64))
    target = torch.cat([torch.arange(n) + n, torch.arange(n)])
    return torch.logsumexp(logits, dim=1) - logits[torch.arange(2 * n), target]


def _pair(n, d, seed, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(n, d, generator=g, dtype=dtype).requires_grad_()
    k = torch.randn(n, d, generator=g, dtype=dtype).requires_grad_()
    return q, k


def _grads(loss, inputs):
    return torch.autograd.grad(loss, inputs)


def _assert_close_with_grads(ours, ref, inputs, rtol=1e-5, atol=1e-6):
    torch.testing.assert_close(ours.double(), ref.double(), rtol=rtol, atol=atol)
    # Weighted sum so that every per-row loss has a distinct gradient weight.
    w = torch.linspace(0.5, 1.5, ours.numel(), dtype=torch.float64).reshape(ours.shape)
    for g_ours, g_ref in zip(_grads((ours.double() * w).sum(), inputs), _grads((ref * w).sum(), inputs)):
        torch.testing.assert_close(g_ours.double(), g_ref.double(), rtol=rtol * 10, atol=atol * 10)


# ---------------------------------------------------------------- values and gradients vs float64
@pytest.mark.parametrize("n,d", SHAPES)
@pytest.mark.parametrize("tau", TEMPERATURES)
@pytest.mark.parametrize("normalize", [True, False])
def test_info_nce_matches_float64_formula(n, d, tau, normalize):
    q, k = _pair(n, d, seed=n * 100 + d)
    ours = info_nce(q, k, tau, normalize=normalize, reduction="none")
    _assert_close_with_grads(ours, ref_info_nce(q, k, tau, normalize), (q, k), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("n,d", SHAPES)
@pytest.mark.parametrize("tau", TEMPERATURES)
def test_info_nce_symmetric_matches_formula(n, d, tau):
    q, k = _pair(n, d, seed=7 + n)
    ours = info_nce(q, k, tau, symmetric=True, reduction="none")
    _assert_close_with_grads(ours, ref_info_nce(q, k, tau, symmetric=True), (q, k), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("n,m,d", [(1, 5, 4), (8, 64, 16), (32, 300, 8)])
@pytest.mark.parametrize("tau", [0.07, 0.2])
@pytest.mark.parametrize("normalize", [True, False])
def test_info_nce_with_queue_matches_moco_formula(n, m, d, tau, normalize):
    q, k = _pair(n, d, seed=m)
    negatives = torch.randn(m, d, generator=torch.Generator().manual_seed(1)).requires_grad_()
    ours = info_nce(q, k, tau, negatives=negatives, normalize=normalize, reduction="none")
    ref = ref_info_nce(q, k, tau, normalize, negatives=negatives)
    _assert_close_with_grads(ours, ref, (q, k, negatives), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("n,d", SHAPES)
@pytest.mark.parametrize("tau", TEMPERATURES)
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("exclude_self", [True, False])
def test_nt_xent_matches_float64_formula(n, d, tau, normalize, exclude_self):
    q, k = _pair(n, d, seed=n * 31 + d)
    ours = nt_xent(q, k, tau, normalize=normalize, exclude_self=exclude_self, reduction="none")
    assert ours.shape == (2 * n,)
    ref = ref_nt_xent(q, k, tau, normalize, exclude_self)
    _assert_close_with_grads(ours, ref, (q, k), rtol=1e-4, atol=1e-4)


def test_float64_input_is_computed_in_float64():
    q, k = _pair(12, 6, seed=3, dtype=torch.float64)
    ours = nt_xent(q, k, 0.1, reduction="none")
    assert ours.dtype == torch.float64
    _assert_close_with_grads(ours, ref_nt_xent(q, k, 0.1), (q, k), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_reductions(reduction):
    q, k = _pair(10, 4, seed=5)
    for ours_fn, ref in (
        (lambda r: info_nce(q, k, 0.2, reduction=r), ref_info_nce(q, k, 0.2)),
        (lambda r: nt_xent(q, k, 0.2, reduction=r), ref_nt_xent(q, k, 0.2)),
    ):
        expected = ref.mean() if reduction == "mean" else ref.sum()
        torch.testing.assert_close(ours_fn(reduction).double(), expected, rtol=1e-5, atol=1e-5)


def test_kernel_passes_gradcheck_including_learnable_temperature():
    from contrast.losses.kernel import contrastive_cross_entropy

    g = torch.Generator().manual_seed(0)
    a = torch.randn(6, 3, dtype=torch.float64, generator=g, requires_grad=True)
    b = torch.randn(6, 3, dtype=torch.float64, generator=g, requires_grad=True)
    tau = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    targets = torch.tensor([3, 4, 5, 0, 1, 2])
    self_index = torch.arange(6)
    for chunk in (None, 4):
        assert torch.autograd.gradcheck(
            lambda a, b, t, c=chunk: contrastive_cross_entropy(a, b, t, targets, self_index, c), (a, b, tau)
        )


# ---------------------------------------------------------------- the named equivalences
@pytest.mark.parametrize("tau", TEMPERATURES)
def test_info_nce_is_cross_entropy_of_q_kT(tau):
    q, k = _pair(20, 7, seed=11)
    ours = info_nce(q, k, tau, normalize=False)
    ref = F.cross_entropy(q @ k.T / tau, torch.arange(20))
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    for g1, g2 in zip(_grads(ours, (q, k)), _grads(ref, (q, k))):
        torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("tau", TEMPERATURES)
def test_nt_xent_without_exclusion_is_the_tutorial_formula(tau):
    n = 15
    q, k = _pair(n, 9, seed=12)
    ours = nt_xent(q, k, tau, exclude_self=False, normalize=False)
    qk = torch.cat([q, k])
    ref = F.cross_entropy(qk @ qk.T / tau, torch.cat([torch.arange(n) + n, torch.arange(n)]))
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    for g1, g2 in zip(_grads(ours, (q, k)), _grads(ref, (q, k))):
        torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-6)


def test_excluding_self_changes_the_loss():
    q, k = _pair(8, 4, seed=1)
    assert not torch.allclose(nt_xent(q, k, 0.1), nt_xent(q, k, 0.1, exclude_self=False))


@pytest.mark.parametrize("tau", [0.1, 0.5])
@pytest.mark.parametrize("n,d", [(4, 8), (64, 32)])
def test_nt_xent_matches_lightly(tau, n, d):
    lightly_loss = require("lightly.loss")
    q, k = _pair(n, d, seed=13)
    ours = nt_xent(q, k, tau)
    ref = lightly_loss.NTXentLoss(temperature=tau)(q, k)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    for g1, g2 in zip(_grads(ours, (q, k)), _grads(ref, (q, k))):
        torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------- precision
@pytest.mark.parametrize("loss_fn", [nt_xent, info_nce])
def test_logits_are_float32_under_bf16_autocast(loss_fn):
    q, k = _pair(32, 16, seed=2)
    weight = torch.randn(16, 16, generator=torch.Generator().manual_seed(3))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        zq, zk = q @ weight, k @ weight  # bf16 activations, as a projector under autocast makes
        assert zq.dtype == torch.bfloat16
        loss = loss_fn(zq, zk, 0.1)
    assert loss.dtype == torch.float32
    expected = loss_fn(zq.float(), zk.float(), 0.1)  # the same bf16 values, float32 maths
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=1e-6)
    g_ours = torch.autograd.grad(loss, (q, k), retain_graph=True)
    for g1, g2 in zip(g_ours, _grads(expected, (q, k))):
        torch.testing.assert_close(g1, g2, rtol=2e-2, atol=1e-3)  # bf16 matmul backward


@pytest.mark.parametrize("loss_fn", [nt_xent, info_nce])
@pytest.mark.parametrize("normalize", [True, False])
def test_tiny_temperature_in_bf16_is_finite(loss_fn, normalize):
    q, k = _pair(64, 32, seed=4, dtype=torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = loss_fn(q, k, 0.01, normalize=normalize)
    gq, gk = _grads(loss, (q, k))
    assert torch.isfinite(loss) and torch.isfinite(gq).all() and torch.isfinite(gk).all()
    ref = (ref_nt_xent if loss_fn is nt_xent else ref_info_nce)(q, k, 0.01, normalize).mean()
    torch.testing.assert_close(loss.double(), ref, rtol=1e-4, atol=1e-3)


# ---------------------------------------------------------------- learnable temperature and modules
def test_learnable_temperature_gradient_matches_formula():
    q, k = _pair(10, 5, seed=6)
    tau = Temperature(0.2)
    loss = nt_xent(q, k, tau)
    (grad_ours,) = torch.autograd.grad(loss, tau.log_tau)
    log_tau = torch.tensor(math.log(0.2), dtype=torch.float64, requires_grad=True)
    ref = ref_nt_xent(q.detach(), k.detach(), log_tau.exp()).mean()
    (grad_ref,) = torch.autograd.grad(ref, log_tau)
    torch.testing.assert_close(loss.double(), ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grad_ours.double(), grad_ref, rtol=1e-4, atol=1e-5)


def test_temperature_is_clamped_to_its_range():
    tau = Temperature(0.1, min_value=0.05, max_value=0.5)
    with torch.no_grad():
        tau.log_tau.fill_(math.log(1e-4))
    assert tau().item() == pytest.approx(0.05)
    with torch.no_grad():
        tau.log_tau.fill_(math.log(10.0))
    assert tau().item() == pytest.approx(0.5)


def test_modules_equal_functions_and_register_learnable_temperature():
    q, k = _pair(9, 4, seed=8)
    torch.testing.assert_close(NTXent(0.3)(q, k), nt_xent(q, k, 0.3))
    torch.testing.assert_close(InfoNCE(0.3, symmetric=True)(q, k), info_nce(q, k, 0.3, symmetric=True))
    negatives = torch.randn(20, 4)
    torch.testing.assert_close(InfoNCE(0.3)(q, k, negatives), info_nce(q, k, 0.3, negatives=negatives))
    module = NTXent(Temperature(0.3))
    assert [name for name, _ in module.named_parameters()] == ["temperature.log_tau"]


# ---------------------------------------------------------------- bad input
BAD_INPUTS = [
    (lambda: nt_xent(torch.randn(4, 3), torch.randn(5, 3)), "same shape"),
    (lambda: nt_xent(torch.randn(4, 3), torch.randn(4, 2)), "same shape"),
    (lambda: info_nce(torch.randn(4), torch.randn(4)), "2-D"),
    (lambda: info_nce(torch.randn(2, 3, 4), torch.randn(2, 3, 4)), "2-D"),
    (lambda: nt_xent(torch.randn(1, 3), torch.randn(1, 3)), "at least 2 rows"),
    (lambda: info_nce(torch.randn(1, 3), torch.randn(1, 3)), "at least 2 rows"),
    (lambda: info_nce(torch.randn(0, 3), torch.randn(0, 3)), "non-empty"),
    (lambda: nt_xent(torch.randn(4, 3), torch.randn(4, 3), 0.0), "temperature must be a finite number > 0"),
    (lambda: nt_xent(torch.randn(4, 3), torch.randn(4, 3), -0.1), "temperature"),
    (lambda: info_nce(torch.randn(4, 3), torch.randn(4, 3), float("nan")), "temperature"),
    (lambda: info_nce(torch.randn(4, 3), torch.randn(4, 3), float("inf")), "temperature"),
    (lambda: info_nce(torch.randn(4, 3), torch.randn(4, 3), "0.1"), "temperature"),
    (lambda: info_nce(torch.randn(4, 3), torch.randn(4, 3), torch.tensor([0.1, 0.2])), "scalar"),
    (lambda: nt_xent(torch.tensor([[1.0, float("nan")], [0.0, 1.0]]), torch.randn(2, 2)), "q contains NaN"),
    (lambda: nt_xent(torch.randn(2, 2), torch.tensor([[1.0, float("inf")], [0.0, 1.0]])), "k contains NaN or Inf"),
    (lambda: nt_xent(torch.ones(3, 2, dtype=torch.long), torch.ones(3, 2, dtype=torch.long)), "floating-point"),
    (lambda: nt_xent([[1.0]], [[1.0]]), "torch.Tensor"),
    (lambda: nt_xent(torch.randn(4, 3), torch.randn(4, 3), reduction="avg"), "reduction"),
    (lambda: nt_xent(torch.randn(4, 3), torch.randn(4, 3), chunk_size=0), "chunk_size"),
    (lambda: info_nce(torch.randn(4, 3), torch.randn(4, 3), negatives=torch.randn(5, 2)), "negatives must have"),
    (lambda: info_nce(torch.randn(4, 3), torch.randn(4, 3), negatives=torch.randn(5, 3), symmetric=True), "symmetric"),
    (lambda: Temperature(0.0), "init must be"),
    (lambda: Temperature(2.0, max_value=1.0), "init must lie"),
    (lambda: NTXent(temperature=-1.0), "temperature"),
]


@pytest.mark.parametrize("call,message", BAD_INPUTS, ids=[m for _, m in BAD_INPUTS])
def test_bad_input_raises_a_clear_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_nt_xent_matches_pytorch_metric_learning(tau):
    pml_losses = require("pytorch_metric_learning.losses")
    n = 6
    q, k = _pair(n, 8, seed=14)
    ours = nt_xent(q, k, tau)
    # Same label for the two views of a sample: one positive, 2N-2 negatives per row.
    ref = pml_losses.NTXentLoss(temperature=tau)(torch.cat([q, k]), torch.arange(n).repeat(2))
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    for g1, g2 in zip(_grads(ours, (q, k)), _grads(ref, (q, k))):
        torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------- near convergence: the value's low bits
def _near_converged(n: int, seed: int, noise: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Views that almost agree: each positive logit is its row's maximum by a wide margin."""
    g = torch.Generator().manual_seed(seed)
    q = F.normalize(torch.randn(n, 64, generator=g), dim=1)
    k = F.normalize(q + noise * torch.randn(n, 64, generator=g), dim=1)
    return q, k


NEAR_CONVERGED = [(n, seed, noise) for n in (4, 8) for seed in range(4) for noise in (0.0, 0.02, 0.05)]


@pytest.mark.parametrize("n,seed,noise", NEAR_CONVERGED)
@pytest.mark.parametrize("form", ["info_nce", "nt_xent", "clip_loss"])
def test_near_converged_float32_losses_keep_their_value(n, seed, noise, form):
    """A true loss of ~1e-6 at τ = 0.05 used to come out as 0 in float32 ((max + log Σ) − s_pos
    cancels two numbers near 1/τ); (max − s_pos) + log Σ keeps F.cross_entropy's accuracy."""
    from contrast.losses import clip_loss

    q, k = _near_converged(n, seed, noise)
    tau = 0.05
    if form == "info_nce":
        ours, ref = info_nce(q, k, tau, reduction="none"), ref_info_nce(q, k, tau)
        torch_ce = F.cross_entropy(q @ k.T / tau, torch.arange(n), reduction="none")
    elif form == "nt_xent":
        ours, ref = nt_xent(q, k, tau, reduction="none"), ref_nt_xent(q, k, tau)
        z = torch.cat([q, k])
        logits = (z @ z.T / tau).fill_diagonal_(float("-inf"))
        torch_ce = F.cross_entropy(logits, torch.cat([torch.arange(n) + n, torch.arange(n)]), reduction="none")
    else:
        ours, ref = clip_loss(q, k, tau), ref_info_nce(q, k, tau, symmetric=True).mean()
        torch_ce = 0.5 * (
            F.cross_entropy(q @ k.T / tau, torch.arange(n)) + F.cross_entropy(k @ q.T / tau, torch.arange(n))
        )
    assert ours.dtype == torch.float32 and float(ref.min()) > 0
    our_error = ((ours.double() - ref) / ref).abs().max().item()
    torch_error = ((torch_ce.double() - ref) / ref).abs().max().item()
    assert our_error <= max(2 * torch_error, 1e-4), (our_error, torch_error)
