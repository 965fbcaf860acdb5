"""SigLIP's pairwise sigmoid loss against an explicit double loop in float64 and against
open_clip's SigLipLoss on the same inputs, values and gradients."""

from __future__ import annotations

import math

import pytest
import torch

from contrast.losses import SigLIPScale, siglip_loss
from contrast.methods import CrossModal
from tests.conftest import require


def _inputs(n=7, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    image = torch.randn(n, d, generator=g, dtype=torch.float64, requires_grad=True)
    text = torch.randn(n, d, generator=g, dtype=torch.float64, requires_grad=True)
    scale = torch.tensor(3.7, dtype=torch.float64, requires_grad=True)
    bias = torch.tensor(-2.5, dtype=torch.float64, requires_grad=True)
    return image, text, scale, bias


def _loop(image, text, scale, bias):
    """−(1/N) Σ_i Σ_j log σ(z_ij (t x̂_i·ŷ_j + b)), one pair at a time, in float64."""
    n = image.shape[0]
    total = 0.0
    for i in range(n):
        x = image[i] / image[i].norm()
        for j in range(n):
            y = text[j] / text[j].norm()
            z = 1.0 if i == j else -1.0
            total = total - torch.log(1.0 / (1.0 + torch.exp(-z * (scale * (x * y).sum() + bias))))
    return total / n


def _grads(loss, *inputs):
    return torch.autograd.grad(loss, inputs)


def test_the_loss_and_its_gradients_are_the_explicit_double_loop():
    inputs = _inputs()
    ours, reference = siglip_loss(*inputs), _loop(*inputs)
    assert ours.item() == pytest.approx(reference.item(), rel=1e-12)
    for a, b in zip(_grads(ours, *inputs), _grads(reference, *inputs)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_the_loss_and_its_gradients_are_open_clips():
    open_clip_loss = require("open_clip.loss")
    image, text, scale, bias = _inputs(n=9, d=6, seed=3)
    ours = siglip_loss(image, text, scale, bias)
    x, y = torch.nn.functional.normalize(image, dim=1), torch.nn.functional.normalize(text, dim=1)
    theirs = open_clip_loss.SigLipLoss()(x, y, scale, bias)  # open_clip takes normalised features
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-12)
    for a, b in zip(_grads(ours, image, text, scale, bias), _grads(theirs, image, text, scale, bias)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_the_paper_start_and_the_clamp_of_the_scale():
    scale, bias = SigLIPScale()()
    assert scale.item() == pytest.approx(10.0) and bias.item() == -10.0
    big = SigLIPScale(log_scale=math.log(1000.0))
    assert big()[0].item() == pytest.approx(100.0)  # t at most 100
    big()[0].backward()
    assert big.log_scale.grad.item() == 0.0  # past the clamp: no gradient pushes it further


def test_bf16_embeddings_give_float32_logits():
    image, text, scale, bias = (t.detach() for t in _inputs(n=16, d=8))
    reference = siglip_loss(image.float(), text.float(), float(scale), float(bias))
    ours = siglip_loss(image.bfloat16(), text.bfloat16(), float(scale), float(bias))
    assert ours.dtype == torch.float32 and ours.item() == pytest.approx(reference.item(), rel=2e-2)


def test_bad_input_is_named():
    image, text, scale, bias = _inputs()
    with pytest.raises(ValueError, match="image and text must have the same shape"):
        siglip_loss(image, text[:3], scale, bias)


def test_a_two_tower_model_learns_its_scale_and_bias_with_the_siglip_objective():
    import warnings

    torch.manual_seed(0)
    model = CrossModal(
        backbone="none", embed_dim=8, head_hidden=16, objectives={"siglip": 1.0}, image_dim=6, text_dim=5
    )
    batch = (torch.randn(12, 6), torch.randn(12, 5), torch.zeros(12, dtype=torch.long))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log without a trainer
        loss = model.training_step(batch, 0)
    loss.backward()
    assert model.siglip.log_scale.grad is not None and model.siglip.bias.grad is not None
    with torch.no_grad():  # the loss is siglip_loss of the two towers' embeddings at the paper's start
        expected = siglip_loss(model.embed_images(batch[0]), model.embed_texts(batch[1]), 10.0, -10.0)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
