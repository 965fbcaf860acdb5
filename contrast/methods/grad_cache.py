"""Accumulation that enlarges the contrastive batch (GradCache, Gao et al. 2021; open_clip's
``--accum-freq``): a batch of K·B pairs is encoded B pairs at a time, yet its loss and gradients
are those of the whole batch, every pair a negative of every other, at the activation memory of B.

1. Encode each of the K micro-batches without gradients and cache the embeddings (K·B, E).
2. Take the loss over all K·B pairs on the cached embeddings, and its gradient with respect to them.
3. Encode each micro-batch again, with gradients, under the random state of its first pass (the
   same dropout), and carry that gradient back into the towers: d loss / d θ = Σ_k (∂e_k/∂θ)ᵀ g_k.

Lightning zeroes the gradients between a step's forward and its backward, so nothing may be
accumulated into ``.grad`` inside the step: the towers' gradients of micro-batches 1 … K−1 are
taken with ``torch.autograd.grad`` (which fires no hook, DDP's included) and handed to the one
backward Lightning runs as the term Σ_p ⟨p, g_p⟩, whose gradient is g_p; that backward (under
DDP, the one that synchronises) reaches every trained parameter. The returned tensor's value is
the loss.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import contextmanager

import torch
from torch import Tensor, nn


class _RandomState:
    """The CPU (and the device's) random state at a micro-batch's first pass, to replay it."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.cpu = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None

    @contextmanager
    def replayed(self):
        with torch.random.fork_rng(devices=[self.device] if self.cuda is not None else []):
            torch.set_rng_state(self.cpu)
            if self.cuda is not None:
                torch.cuda.set_rng_state(self.cuda, self.device)
            yield


def grad_cache_loss(
    encode: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]],
    objective: Callable[[Tensor, Tensor], Tensor],
    images: Tensor,
    texts: Tensor,
    chunks: int,
    parameters: Iterable[nn.Parameter],
) -> Tensor:
    """The loss of ``objective(encode(images, texts))`` over the whole batch, its towers run
    ``chunks`` micro-batches at a time; backward gives every parameter its whole-batch gradient.

    ``encode(images, texts) -> (image embeddings, text embeddings)``; ``objective(image, text)``
    is the loss of the (N, E) embeddings (it may have parameters of its own, e.g. a temperature);
    ``parameters``: the towers' (those that require gradients are trained)."""
    pieces = list(zip(images.chunk(chunks), texts.chunk(chunks)))
    states, image_parts, text_parts = [], [], []
    with torch.no_grad():  # 1. the embeddings, micro-batch by micro-batch, without activations kept
        for piece_images, piece_texts in pieces:
            states.append(_RandomState(piece_images.device))
            image_part, text_part = encode(piece_images, piece_texts)  # (B, E) each
            image_parts.append(image_part)
            text_parts.append(text_part)
    image = torch.cat(image_parts).requires_grad_()  # (K·B, E): the cached image embeddings
    text = torch.cat(text_parts).requires_grad_()  # (K·B, E): the cached text embeddings
    loss = objective(image, text)  # 2. the loss over all K·B pairs
    image_grad, text_grad = torch.autograd.grad(loss, (image, text), retain_graph=True)  # (K·B, E) each
    trained = [p for p in parameters if p.requires_grad]
    carried: list[Tensor | None] = [None] * len(trained)
    start, last = 0, None
    for n, ((piece_images, piece_texts), state) in enumerate(zip(pieces, states)):
        with state.replayed():  # 3. again, with gradients, the same dropout
            image_part, text_part = encode(piece_images, piece_texts)  # (B, E) each
        rows = slice(start, start + image_part.shape[0])
        start = rows.stop
        surrogate = (image_part * image_grad[rows]).sum() + (text_part * text_grad[rows]).sum()
        if n == len(pieces) - 1:
            last = surrogate  # its backward is Lightning's
            break
        grads = torch.autograd.grad(surrogate, trained, allow_unused=True)
        carried = [g if c is None else c if g is None else c + g for c, g in zip(carried, grads)]
    handed = last + sum(((p * c).sum() for p, c in zip(trained, carried) if c is not None), last.new_zeros(()))
    return loss + (handed - handed.detach())  # the value: the loss; the gradient: the whole batch's
