"""Supervised contrastive loss, SupCon (Khosla et al. 2020, "Supervised Contrastive Learning").

The L_out form (eq. 2) over the 2N views ``z = cat(q, k)``: for an anchor i, every other view of
the same class is a positive, P(i), and every other view is in the denominator, A(i) = all but i:

    loss_i = -1/|P(i)| Σ_{p∈P(i)} log( exp(z_i·z_p / τ) / Σ_{a∈A(i)} exp(z_i·z_a / τ) )

With ``labels=None`` each sample is its own class, P(i) is the other view of the same image, and
the loss is :func:`contrast.losses.nt_xent`. ``more_views`` adds further views of the same images
(multi-crop: V views in all, V·N rows, every other view of the image or its class a positive).
Logits are computed in float32 (float64 for float64 input) under any autocast.
"""

from __future__ import annotations

import torch
from torch import Tensor

from contrast import distributed
from contrast.losses._validate import check_labels, check_pair, check_reduction, check_temperature, reduce
from contrast.losses.infonce import TemperatureLike, _gathered, _min_rows, _prepare
from contrast.losses.kernel import no_autocast
from contrast.losses.module import LossModule
from contrast.losses.temperature import Temperature


def sup_con(
    q: Tensor,
    k: Tensor,
    labels: Tensor | None = None,
    temperature: TemperatureLike = 0.1,
    *,
    normalize: bool = True,
    reduction: str = "mean",
    validate: bool = True,
    gather: bool = False,
    more_views: tuple[Tensor, ...] | list[Tensor] = (),
) -> Tensor:
    """SupCon's L_out over the 2N views (V·N with ``more_views``).

    Args:
        q, k: (N, D) two views; row i of each is the same image.
        labels: (N,) integer class ids of the images (None: each image its own class).
        temperature: τ > 0, a float or a :class:`Temperature` module.
        normalize: L2-normalise rows first (cosine similarity).
        reduction: "mean" | "sum" | "none" (V·N per-view losses: the q rows, the k rows, then each
            further view's).
        validate: check for NaN/Inf input (one host sync).
        gather: under DDP, the views and labels of every rank are the other views.
        more_views: further (N, D) views of the same images (multi-crop's small crops), each row i
            the same image as row i of q.

    Example::

        loss = sup_con(projector(encoder(x1)), projector(encoder(x2)), labels, temperature=0.1)
    """
    check_pair(q, k, min_rows=_min_rows(gather), check_finite=validate)
    for index, view in enumerate(more_views):
        check_pair(q, view, min_rows=_min_rows(gather), check_finite=validate, names=("q", f"more_views[{index}]"))
    check_reduction(reduction)
    labels = check_labels(labels, q.shape[0], q.device)
    with no_autocast(q.device):
        views = [_prepare(x, normalize) for x in (q, k, *more_views)]  # V × (N, D)
        tau = check_temperature(temperature, views[0].dtype)
        gathered = [_gathered(x, gather) for x in views]  # V × ((M, D), offset), M = W·N
        offset = gathered[0][1]
        n, m, v = q.shape[0], gathered[0][0].shape[0], len(views)
        local = torch.arange(offset, offset + n, device=q.device)  # (N,) this rank's images
        if labels is None:
            labels, all_labels = local, torch.arange(m, device=q.device)  # each image its own class
        else:
            all_labels = distributed.gather_no_grad(labels) if gather else labels  # (M,)
        logits = torch.cat(views) @ torch.cat([x for x, _ in gathered]).T / tau  # (V·N, V·M)
        rows = torch.arange(v * n, device=q.device)
        self_index = torch.cat([local + view * m for view in range(v)])  # (V·N,) each view's own column
        logits = logits.index_put((rows, self_index), logits.new_tensor(float("-inf")))  # a ∈ A(i): not i
        positives = labels.repeat(v)[:, None] == all_labels.repeat(v)[None, :]  # (V·N, V·M)
        positives[rows, self_index] = False
        log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)  # (V·N, V·M)
        losses = -log_prob.masked_fill(~positives, 0.0).sum(dim=1) / positives.sum(dim=1)  # (V·N,)
        return reduce(losses, reduction)


class SupConLoss(LossModule):
    """Module form of :func:`sup_con`; options as :class:`LossModule`'s."""

    def __init__(self, temperature: float | Temperature = 0.1, **options) -> None:
        super().__init__(temperature, **options)

    def forward(self, q: Tensor, k: Tensor, labels: Tensor | None = None, more_views=()) -> Tensor:
        return sup_con(q, k, labels, self.tau(), more_views=more_views, **self.options())
