"""Objectives for two modalities: row i of ``image`` and row i of ``text`` are a matching pair.

* :func:`clip_loss`: the symmetric InfoNCE of CLIP (Radford et al. 2021) as open_clip computes it:
  ``(CE(s · I @ Tᵀ, arange) + CE(s · T @ Iᵀ, arange)) / 2`` with the logit scale s = 1/τ. It is
  :func:`~contrast.losses.info_nce` with ``symmetric=True``: the same kernel (chunked for large
  batches) and, with ``gather=True``, open_clip's "local loss" (each rank's rows against the gathered
  columns of every rank, targets offset by rank), so W ranks × B pairs give the loss and gradients
  of one process with W·B pairs.
* :func:`cross_modal_triplet`: triplet constraints across modalities (VSE++, Faghri et al. 2018;
  the inter-modal term of ACMR, Wang et al. 2017): image anchors against text positives and
  negatives, and text anchors against images, averaged; with ``labels`` an item of the same label
  is never a negative. Built on :func:`~contrast.losses.triplet_margin`.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from contrast import distributed
from contrast.losses.infonce import TemperatureLike, info_nce
from contrast.losses.pairs import triplet_margin


def clip_loss(
    image: Tensor,
    text: Tensor,
    temperature: TemperatureLike = 0.07,
    *,
    chunk_size: int | None = None,
    validate: bool = True,
    gather: bool = False,
) -> Tensor:
    """Symmetric image–text InfoNCE (CLIP). ``temperature`` τ = 1 / logit scale: a float, or a
    learnable :class:`~contrast.losses.Temperature` (CLIP: initial 0.07, scale clamped at 100, i.e.
    ``Temperature(0.07, min_value=0.01)``). Embeddings are L2-normalised first."""
    return info_nce(image, text, temperature, symmetric=True, chunk_size=chunk_size, validate=validate, gather=gather)


def cross_modal_triplet(
    image: Tensor,
    text: Tensor,
    margin: float = 0.2,
    *,
    labels: Tensor | None = None,
    mining: str = "hardest",
    normalize: bool = True,
    validate: bool = True,
    gather: bool = False,
) -> Tensor:
    """``(triplet(image → text) + triplet(text → image)) / 2`` on in-batch negatives.

    Distances are Euclidean between L2-normalised embeddings (``normalize=True``, so the margin is
    on the unit sphere). ``mining`` as in :func:`~contrast.losses.triplet_margin` ("hardest": VSE++'s
    max of hinges; "semi-hard"; "all"). With ``gather=True`` under DDP the embeddings (with their
    gradients) and labels of every rank form one batch, so the loss is the whole global batch's.
    ``validate=False`` (the training step): no check that reads a value back from the device."""
    if gather and distributed.is_distributed():
        image, text = distributed.gather(image), distributed.gather(text)
        labels = None if labels is None else distributed.gather_no_grad(labels)
    if normalize:
        image, text = F.normalize(image, dim=1), F.normalize(text, dim=1)
    forward = triplet_margin(image, text, margin, mining=mining, labels=labels, validate=validate)
    backward = triplet_margin(text, image, margin, mining=mining, labels=labels, validate=validate)
    return 0.5 * (forward + backward)
