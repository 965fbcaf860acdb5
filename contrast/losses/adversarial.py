"""The adversarial part of ACMR (Wang et al. 2017): a modality classifier and gradient reversal.

The modality classifier D learns to tell image embeddings (class 0) from text embeddings
(class 1). The embeddings reach it through a gradient-reversal layer (Ganin & Lempitsky 2015):
the identity forward, the gradient times −λ backward. One optimizer step then does both halves of
ACMR's minimax: D descends its cross-entropy, the projectors ascend it (they learn to fool D), so
the two modalities become indistinguishable in the common space.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class _GradientReversal(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, weight: float) -> Tensor:  # type: ignore[override]
        ctx.weight = weight
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        return -ctx.weight * grad, None


def grad_reverse(x: Tensor, weight: float = 1.0) -> Tensor:
    """The identity forward; ``-weight ×`` the gradient backward."""
    if not math.isfinite(weight) or weight < 0:
        raise ValueError(f"weight must be a finite number >= 0, got {weight}")
    return _GradientReversal.apply(x, float(weight))


def ganin_schedule(progress: float, gamma: float = 10.0) -> float:
    """λ_p = 2 / (1 + exp(−γ p)) − 1 for training progress p in [0, 1] (Ganin & Lempitsky 2015): 0 at
    the start, so the embeddings form before the adversary pushes, then close to 1."""
    return 2.0 / (1.0 + math.exp(-gamma * min(max(progress, 0.0), 1.0))) - 1.0


def modality_loss(classifier: nn.Module, image: Tensor, text: Tensor, weight: float = 1.0) -> Tensor:
    """Cross-entropy of ``classifier`` (2 logits) telling image rows (0) from text rows (1), on
    embeddings passed through :func:`grad_reverse` with ``weight``: minimising it trains the
    classifier and pushes the embeddings to fool it."""
    both = grad_reverse(torch.cat([image, text]), weight)  # (Ni + Nt, E)
    target = torch.cat(  # (Ni + Nt,) made on the device: no host-to-device copy in the step
        [both.new_zeros(image.shape[0], dtype=torch.long), both.new_ones(text.shape[0], dtype=torch.long)]
    )
    logits = classifier(both)  # (Ni + Nt, 2)
    return F.cross_entropy(logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits, target)
