"""SigLIP (Zhai et al. 2023, "Sigmoid Loss for Language Image Pre-Training"): every image–text pair
of the batch is a binary classification, matching or not, with no softmax over the batch:

    L = −(1/N) Σ_i Σ_j log σ(z_ij · (t · x̂_i · ŷ_j + b)),   z_ij = +1 if j is i's text, else −1,

x̂, ŷ the L2-normalised embeddings, t = exp(t′) a learnable scale and b a learnable bias (the paper
starts at t′ = log 10, b = −10, so that the many negatives do not dominate the first steps). As
open_clip's ``SigLipLoss`` divides by the local batch, so does this. With ``gather=True`` under DDP
each rank's rows meet the texts of every rank (gathered with their gradients; the positives are
on this rank's block), which is open_clip's neighbour exchange written as one gather: W ranks × N
pairs give the loss and gradients of one process with W·N pairs once DDP averages the gradients.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from contrast import distributed
from contrast.losses._validate import check_pair

INITIAL_LOG_SCALE = math.log(10.0)  # t′ at the start (the paper's)
INITIAL_BIAS = -10.0
MAX_LOG_SCALE = math.log(100.0)  # t at most 100, open_clip's clamp of its logit scale


def siglip_loss(
    image: Tensor,
    text: Tensor,
    scale: float | Tensor,
    bias: float | Tensor,
    *,
    gather: bool = False,
    validate: bool = True,
) -> Tensor:
    """The pairwise sigmoid loss of (N, D) ``image`` and ``text`` (row i of each a matching pair);
    ``scale`` t (not its log) and ``bias`` b, floats or 0-d tensors (learnable: :class:`SigLIPScale`).
    The logits are float32 under bf16 / fp16 autocast (float64 stays float64)."""
    check_pair(image, text, min_rows=1, check_finite=validate, names=("image", "text"))
    image, text = F.normalize(_wide(image), dim=1), F.normalize(_wide(text), dim=1)
    offset = 0
    if gather and distributed.is_distributed():
        text, offset = distributed.gather(text), distributed.rank() * image.shape[0]  # (W·N, D)
    logits = scale * image @ text.T + bias  # (N, W·N)
    signs = -torch.ones_like(logits)
    rows = torch.arange(image.shape[0], device=logits.device)
    signs[rows, rows + offset] = 1.0  # z_ij: +1 for the matching text
    return -F.logsigmoid(signs * logits).sum() / image.shape[0]


def _wide(x: Tensor) -> Tensor:
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


class SigLIPScale(nn.Module):
    """The learnable scale t = exp(t′) (t′ clamped at log 100) and bias b of SigLIP; ``forward()``
    returns (t, b)."""

    def __init__(self, log_scale: float = INITIAL_LOG_SCALE, bias: float = INITIAL_BIAS) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.tensor(float(log_scale)))
        self.bias = nn.Parameter(torch.tensor(float(bias)))

    def forward(self) -> tuple[Tensor, Tensor]:
        return self.log_scale.clamp(max=MAX_LOG_SCALE).exp(), self.bias
