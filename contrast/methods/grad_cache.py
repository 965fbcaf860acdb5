"""Accumulation that enlarges the contrastive batch (GradCache, Gao et al. 2021; open_clip's
``--accum-freq``): a batch of K·B pairs is encoded B pairs at a time, yet its loss and gradients
are those of the whole batch, every pair a negative of every other, at the activation memory of one
tower on B pairs.

1. Encode each of the K micro-batches without gradients and cache the embeddings (K·B, E).
2. Take the loss over all K·B pairs on the cached embeddings, and its gradient with respect to them.
3. Encode each micro-batch again, with gradients, one tower at a time, under the random state of its
   first pass (the same dropout), and carry that gradient back into the tower:
   d loss / d θ = Σ_k (∂e_k/∂θ)ᵀ g_k. One tower's activations are alive at a time, where a plain step
   keeps both towers' for its loss: with the accumulated gradients held besides, the step of K × B
   pairs stays within the memory of a plain step of B.

The micro-batches' gradients accumulate in ``.grad`` inside the training step (their backward
passes run before the step's forward has returned, so under DDP they are local; the one backward
Lightning runs, of the last micro-batch's text tower, the loss's own parameters and a zero term over
the image tower's, synchronises them all, as ``no_sync`` accumulation does). So Lightning must zero
the gradients before the step, not between its forward and backward:
:class:`~contrast.methods.crossmodal.CrossModal` moves the zeroing there when ``accumulate_pairs`` > 1.
The returned tensor's value is the loss.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
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
    encode_images: Callable[[Tensor], Tensor],
    encode_texts: Callable[[Tensor], Tensor],
    objective: Callable[[Tensor, Tensor], Tensor],
    images: Tensor,
    texts: Tensor,
    chunks: int,
    image_parameters: Iterable[Tensor] = (),
) -> Tensor:
    """The loss of ``objective(encode_images(images), encode_texts(texts))`` over the whole batch, its
    towers run ``chunks`` micro-batches at a time and one tower at a time; backward gives every
    parameter its whole-batch gradient.

    ``encode_images``, ``encode_texts``: (B, …) -> (B, E) embeddings; ``objective(image, text)`` is the
    loss of the (N, E) embeddings (it may have parameters of its own, e.g. a temperature). Every
    micro-batch of either tower is re-encoded and carried back on its own, so only one tower's
    activations of B pairs are alive at a time (a plain step holds both towers' at once, for its loss):
    the towers' gradients are accumulated into ``.grad`` here, all but the last micro-batch's text
    tower's, whose backward is the caller's (Lightning's). ``image_parameters``: the image tower's (and
    its head's); the returned tensor holds them in a term of value 0, so that the caller's backward,
    the one DDP synchronises on, reaches them too (it adds 0 to their accumulated gradients)."""
    pieces = list(zip(images.chunk(chunks), texts.chunk(chunks)))
    states, image_parts, text_parts = [], [], []
    with torch.no_grad():  # 1. the embeddings, micro-batch by micro-batch, without activations kept
        for piece_images, piece_texts in pieces:
            states.append(_RandomState(piece_images.device))
            image_parts.append(encode_images(piece_images))  # (B, E)
            states.append(_RandomState(piece_texts.device))
            text_parts.append(encode_texts(piece_texts))  # (B, E)
    image = torch.cat(image_parts).requires_grad_()  # (K·B, E): the cached image embeddings
    text = torch.cat(text_parts).requires_grad_()  # (K·B, E): the cached text embeddings
    loss = objective(image, text)  # 2. the loss over all K·B pairs
    image_grad, text_grad = torch.autograd.grad(loss, (image, text), retain_graph=True)  # (K·B, E) each
    passes = [
        (encode, piece, grad)
        for (piece_images, piece_texts), rows in zip(pieces, _rows(image_parts))
        for encode, piece, grad in (
            (encode_images, piece_images, image_grad[rows]),
            (encode_texts, piece_texts, text_grad[rows]),
        )
    ]
    last = None
    for n, ((encode, piece, grad), state) in enumerate(zip(passes, states)):
        with state.replayed():  # 3. again, with gradients, the same dropout
            surrogate = (encode(piece) * grad).sum()
        if n < len(passes) - 1:
            surrogate.backward()  # into .grad: this tower's gradient of this micro-batch
        else:
            last = surrogate  # its backward is the caller's (Lightning's)
    touched = [q.reshape(-1)[:1].sum() for q in image_parameters if q.requires_grad]  # an element of each
    zero = sum(touched) * 0.0 if touched else 0.0
    return loss + (last - last.detach()) + zero  # the value: the loss; the gradient: the whole batch's


def _rows(parts: list[Tensor]) -> list[slice]:
    ends = torch.tensor([len(p) for p in parts]).cumsum(0).tolist()
    return [slice(end - len(p), end) for p, end in zip(parts, ends)]
