"""Accumulation that enlarges the contrastive batch (GradCache, Gao et al. 2021; open_clip's
``--accum-freq``): a batch of K·B pairs is encoded B pairs at a time, yet its loss and gradients
are those of the whole batch, every pair a negative of every other, at the activation memory of B.

1. Encode each of the K micro-batches without gradients and cache the embeddings (K·B, E).
2. Take the loss over all K·B pairs on the cached embeddings, and its gradient with respect to them.
3. Encode each micro-batch again, with gradients, under the random state of its first pass (the
   same dropout), and carry that gradient back into the towers: d loss / d θ = Σ_k (∂e_k/∂θ)ᵀ g_k.

The micro-batches' gradients accumulate in ``.grad`` inside the training step (their backward
passes run before the step's forward has returned, so under DDP they are local; the one backward
Lightning runs, of the last micro-batch and the loss's own parameters, synchronises them all, as
``no_sync`` accumulation does). So Lightning must zero the gradients before the step, not between
its forward and backward: :class:`~contrast.methods.crossmodal.CrossModal` moves the zeroing there
when ``accumulate_pairs`` > 1. The returned tensor's value is the loss.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

import torch
from torch import Tensor


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
) -> Tensor:
    """The loss of ``objective(encode(images, texts))`` over the whole batch, its towers run
    ``chunks`` micro-batches at a time; backward gives every parameter its whole-batch gradient.

    ``encode(images, texts) -> (image embeddings, text embeddings)``; ``objective(image, text)``
    is the loss of the (N, E) embeddings (it may have parameters of its own, e.g. a temperature).
    The towers' gradients of all micro-batches but the last are accumulated into ``.grad`` here."""
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
    start, last = 0, None
    for n, ((piece_images, piece_texts), state) in enumerate(zip(pieces, states)):
        with state.replayed():  # 3. again, with gradients, the same dropout
            image_part, text_part = encode(piece_images, piece_texts)  # (B, E) each
        rows = slice(start, start + image_part.shape[0])
        start = rows.stop
        surrogate = (image_part * image_grad[rows]).sum() + (text_part * text_grad[rows]).sum()
        if n < len(pieces) - 1:
            surrogate.backward()  # into .grad: the towers' gradient of this micro-batch
        else:
            last = surrogate  # its backward is the caller's (Lightning's)
    return loss + (last - last.detach())  # the value: the loss; the gradient: the whole batch's
