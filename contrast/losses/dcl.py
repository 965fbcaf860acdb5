"""Decoupled contrastive loss, DCL and DCLW (Yeh et al. 2022, "Decoupled Contrastive Learning").

NT-Xent with the positive pair removed from the denominator. For view 1 of image i, with
s(a, b) = a·b / τ on L2-normalised rows,

    loss_i = -w_i · s(q_i, k_i) + log Σ_{j≠i} [ exp s(q_i, q_j) + exp s(q_i, k_j) ]

and symmetrically for view 2; the two directions are averaged. DCL has w_i = 1; DCLW weights the
positive term with the negative von Mises-Fisher weight w_i = 2 − N · softmax_i(q_i·k_i / σ)
(σ = 0.5, computed without gradient), so that easy positives count less. Without the positive in
the denominator the loss no longer couples the positive's gradient to the negatives', which the
paper shows makes small batches train as well as large ones.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from contrast import distributed
from contrast.checks import ConfigError
from contrast.losses._validate import check_pair, check_reduction, check_temperature, reduce
from contrast.losses.infonce import TemperatureLike, _gathered, _min_rows, _prepare
from contrast.losses.kernel import no_autocast
from contrast.losses.module import LossModule
from contrast.losses.temperature import Temperature

WEIGHTINGS = (None, "vmf")


def dcl(
    q: Tensor,
    k: Tensor,
    temperature: TemperatureLike = 0.1,
    *,
    weighting: str | None = None,
    sigma: float = 0.5,
    normalize: bool = True,
    reduction: str = "mean",
    validate: bool = True,
    gather: bool = False,
) -> Tensor:
    """DCL (``weighting=None``) or DCLW (``weighting="vmf"``, with ``sigma``).

    Args:
        q, k: (N, D) two views; row i of each is the same image.
        temperature: τ > 0, a float or a :class:`Temperature` module.
        reduction: "mean" | "sum" | "none" (N per-image losses, both directions averaged).
        gather: under DDP, the views of every rank are the negatives.
    """
    check_pair(q, k, min_rows=_min_rows(gather), check_finite=validate)
    check_reduction(reduction)
    if weighting not in WEIGHTINGS:
        raise ConfigError("weighting", f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    if not sigma > 0:
        raise ConfigError("sigma", f"sigma must be > 0, got {sigma!r}")
    with no_autocast(q.device):
        q, k = _prepare(q, normalize), _prepare(k, normalize)  # (N, D) each
        tau = check_temperature(temperature, q.dtype)
        (all_q, offset), (all_k, _) = _gathered(q, gather), _gathered(k, gather)  # (M, D) each
        losses = 0.5 * (
            _one_direction(q, k, all_q, all_k, offset, tau, weighting, sigma, gather)
            + _one_direction(k, q, all_k, all_q, offset, tau, weighting, sigma, gather)
        )  # (N,)
        return reduce(losses, reduction)


def _one_direction(a, b, all_a, all_b, offset, tau, weighting, sigma, gather) -> Tensor:
    n = a.shape[0]
    rows = torch.arange(n, device=a.device)
    own = rows + offset  # (N,) column of each row's own image
    same_view = a @ all_a.T / tau  # (N, M)
    other_view = a @ all_b.T / tau  # (N, M)
    positive = other_view[rows, own]  # (N,) s(a_i, b_i)
    if weighting == "vmf":
        with torch.no_grad():  # the weights of the global batch, so that DDP equals one process
            similarity = (a * b).sum(dim=1) / sigma  # (N,)
            similarity = distributed.gather_no_grad(similarity) if gather else similarity  # (M,)
            weight = 2 - similarity.shape[0] * F.softmax(similarity, dim=0)[offset : offset + n]  # (N,) w_i
        positive = positive * weight
    minus_inf = same_view.new_tensor(float("-inf"))
    same_view = same_view.index_put((rows, own), minus_inf)  # not itself
    other_view = other_view.index_put((rows, own), minus_inf)  # not its positive: the decoupling
    return -positive + torch.logsumexp(torch.cat([same_view, other_view], dim=1), dim=1)  # (N,)


class DCLLoss(LossModule):
    """Module form of :func:`dcl` (``weighting="vmf"`` for DCLW); options as :class:`LossModule`'s."""

    def __init__(
        self, temperature: float | Temperature = 0.1, weighting: str | None = None, sigma: float = 0.5, **options
    ) -> None:
        super().__init__(temperature, **options)
        if weighting not in WEIGHTINGS:
            raise ConfigError("weighting", f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
        self.weighting, self.sigma = weighting, sigma

    def forward(self, q: Tensor, k: Tensor) -> Tensor:
        return dcl(q, k, self.tau(), weighting=self.weighting, sigma=self.sigma, **self.options())
