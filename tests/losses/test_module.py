"""The module forms hold τ one way: a float, or a learnable Temperature that is registered and learns.

Reference: the pure function called with τ = exp(log τ) as a float64 leaf, differentiated by autograd."""

from __future__ import annotations

import pytest
import torch

from contrast.losses import DCLLoss, InfoNCE, NTXent, SupConLoss, Temperature, dcl, info_nce, nt_xent, sup_con

LABELS = torch.tensor([0, 1, 0, 2, 1, 2])
FORMS = {
    "info_nce": (lambda tau: InfoNCE(tau), lambda q, k, tau: info_nce(q, k, tau)),
    "info_nce_symmetric": (
        lambda tau: InfoNCE(tau, symmetric=True),
        lambda q, k, tau: info_nce(q, k, tau, symmetric=True),
    ),
    "nt_xent": (lambda tau: NTXent(tau), lambda q, k, tau: nt_xent(q, k, tau)),
    "dcl": (lambda tau: DCLLoss(tau), lambda q, k, tau: dcl(q, k, tau)),
    "dclw": (lambda tau: DCLLoss(tau, weighting="vmf"), lambda q, k, tau: dcl(q, k, tau, weighting="vmf")),
    "supcon": (lambda tau: SupConLoss(tau), lambda q, k, tau: sup_con(q, k, LABELS, tau)),
}


def _views() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(6, 5, generator=g, dtype=torch.float64), torch.randn(6, 5, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("form", sorted(FORMS))
def test_a_learnable_temperature_is_a_parameter_of_every_module_form_and_gets_the_right_gradient(form):
    build, function = FORMS[form]
    temperature = Temperature(0.2).double()
    loss_module = build(temperature)
    assert [p is temperature.log_tau for p in loss_module.parameters()] == [True]
    q, k = _views()
    args = (q, k, LABELS) if form == "supcon" else (q, k)
    value = loss_module(*args)
    value.backward()
    log_tau = temperature.log_tau.detach().clone().requires_grad_()  # the same float64 leaf
    expected = function(q, k, log_tau.exp())
    expected.backward()
    torch.testing.assert_close(value, expected, rtol=1e-12, atol=0)
    assert abs(float(log_tau.grad)) > 1e-6  # τ matters here, so learning it is a real test
    torch.testing.assert_close(temperature.log_tau.grad, log_tau.grad, rtol=1e-10, atol=0)


@pytest.mark.parametrize("form", sorted(FORMS))
def test_a_float_temperature_is_no_parameter(form):
    build, _ = FORMS[form]
    loss_module = build(0.2)
    assert list(loss_module.parameters()) == [] and loss_module.tau() == 0.2


def test_an_optimizer_step_moves_a_learnable_temperature_of_dcl():
    """DCLLoss(Temperature(...)) used to freeze τ at its initial value (it kept float(τ))."""
    temperature = Temperature(0.5)
    loss_module = DCLLoss(temperature)
    optimizer = torch.optim.SGD(loss_module.parameters(), lr=0.5)
    q, k = _views()
    before = float(temperature())
    loss_module(q.float(), k.float()).backward()
    optimizer.step()
    assert float(temperature()) != pytest.approx(before, abs=1e-4)
