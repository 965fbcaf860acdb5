"""The cross-modal objectives against explicit float64 formulas: CLIP's symmetric InfoNCE with a
learnable, clamped logit scale (as open_clip computes it), the cross-modal triplet (VSE++), and
ACMR's gradient reversal. Values and gradients."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from contrast.losses import Temperature, clip_loss, cross_modal_triplet, grad_reverse, modality_loss
from contrast.losses.adversarial import ganin_schedule


def _pair(n=12, d=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(n, d, generator=g, dtype=torch.float64).requires_grad_(),
        torch.randn(n, d, generator=g, dtype=torch.float64).requires_grad_(),
    )


def _open_clip_formula(image, text, logit_scale):
    """open_clip's ClipLoss in one process: normalised features, logits = scale · I Tᵀ, the mean of
    the two cross-entropies against arange."""
    image, text = F.normalize(image, dim=1), F.normalize(text, dim=1)
    logits_per_image = logit_scale * image @ text.T
    labels = torch.arange(image.shape[0])
    return (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_image.T, labels)) / 2


@pytest.mark.parametrize("chunk_size", [None, 5])
def test_clip_loss_is_open_clips_formula_with_a_learnable_scale(chunk_size):
    image, text = _pair()
    tau = Temperature(0.07, min_value=0.01).double()
    with torch.no_grad():
        tau.log_tau.fill_(math.log(0.07))  # in float64 (the module was built in float32)
    loss = clip_loss(image, text, tau, chunk_size=chunk_size)
    loss.backward()
    ours = (loss.detach(), image.grad.clone(), text.grad.clone(), tau.log_tau.grad.clone())

    image2, text2 = _pair()
    log_scale = torch.tensor(math.log(1 / 0.07), dtype=torch.float64, requires_grad=True)  # open_clip's parameter
    reference = _open_clip_formula(image2, text2, log_scale.exp())
    reference.backward()
    assert ours[0].item() == pytest.approx(reference.item(), abs=1e-12)
    assert torch.allclose(ours[1], image2.grad, atol=1e-12) and torch.allclose(ours[2], text2.grad, atol=1e-12)
    # log τ = −log scale: the gradients are opposite
    assert ours[3].item() == pytest.approx(-log_scale.grad.item(), abs=1e-12)


def test_clip_scale_is_clamped_at_100():
    image, text = _pair()
    tau = Temperature(0.07, min_value=0.01).double()
    with torch.no_grad():
        tau.log_tau.fill_(math.log(0.001))  # a scale of 1000 asked for
    loss = clip_loss(image, text, tau)
    loss.backward()
    assert loss.item() == pytest.approx(_open_clip_formula(image.detach(), text.detach(), 100.0).item(), abs=1e-12)
    assert tau.log_tau.grad.item() == 0.0  # at the clamp, τ gets no gradient


def _triplet_formula(image, text, labels, margin):
    """VSE++ max of hinges both ways on normalised embeddings, same-label items excluded; the distance
    is torch's pairwise distance, ‖a − b + ε‖ with ε = 1e-6."""
    image, text = F.normalize(image, dim=1), F.normalize(text, dim=1)
    n = image.shape[0]
    total = 0.0
    for anchors, others in ((image, text), (text, image)):
        terms = []
        for i in range(n):
            positive = (anchors[i] - others[i] + 1e-6).norm()
            negatives = [(anchors[i] - others[j] + 1e-6).norm() for j in range(n) if labels[j] != labels[i]]
            hardest = min(negatives, key=lambda d: d.item())
            terms.append(torch.clamp(positive - hardest + margin, min=0))
        total = total + torch.stack(terms).mean() / 2
    return total


def test_cross_modal_triplet_is_the_vse_formula_with_labels():
    image, text = _pair(10, 5, seed=3)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3, 4, 4])
    loss = cross_modal_triplet(image, text, 0.5, labels=labels)
    loss.backward()
    image2, text2 = _pair(10, 5, seed=3)
    reference = _triplet_formula(image2, text2, labels, 0.5)
    reference.backward()
    assert loss.item() == pytest.approx(reference.item(), abs=1e-9)
    assert torch.allclose(image.grad, image2.grad, atol=1e-9) and torch.allclose(text.grad, text2.grad, atol=1e-9)


def test_cross_modal_triplet_without_labels_uses_every_other_item():
    image, text = _pair(8, 4, seed=4)
    ids = torch.arange(8)
    assert cross_modal_triplet(image, text, 0.3).item() == pytest.approx(
        _triplet_formula(image, text, ids, 0.3).item(), abs=1e-9
    )
    with pytest.raises(ValueError, match="at least one negative"):
        cross_modal_triplet(image, text, labels=torch.zeros(8, dtype=torch.long))


def test_gradient_reversal_and_the_modality_classifier():
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    (grad_reverse(x, 0.5) * torch.arange(3.0, dtype=torch.float64)).sum().backward()
    assert torch.equal(x.grad, -0.5 * torch.arange(3.0, dtype=torch.float64).expand(4, 3))

    torch.manual_seed(0)
    classifier = torch.nn.Linear(3, 2).double()
    image, text = (
        torch.randn(5, 3, dtype=torch.float64, requires_grad=True),
        torch.randn(4, 3, dtype=torch.float64, requires_grad=True),
    )
    loss = modality_loss(classifier, image, text, weight=0.3)
    loss.backward()
    # the same cross-entropy without reversal: equal value and classifier gradient, embeddings' gradient × −0.3
    image2, text2 = image.detach().clone().requires_grad_(), text.detach().clone().requires_grad_()
    plain = torch.nn.Linear(3, 2).double()
    plain.load_state_dict(classifier.state_dict())
    reference = F.cross_entropy(plain(torch.cat([image2, text2])), torch.tensor([0] * 5 + [1] * 4))
    reference.backward()
    assert loss.item() == pytest.approx(reference.item(), abs=1e-12)
    assert torch.allclose(classifier.weight.grad, plain.weight.grad, atol=1e-12)
    assert torch.allclose(image.grad, -0.3 * image2.grad, atol=1e-12)
    assert torch.allclose(text.grad, -0.3 * text2.grad, atol=1e-12)
    with pytest.raises(ValueError, match="weight"):
        grad_reverse(x, -1.0)


def test_ganin_schedule():
    assert ganin_schedule(0.0) == 0.0
    assert ganin_schedule(1.0) == pytest.approx(2 / (1 + math.exp(-10)) - 1)
    assert ganin_schedule(0.5) == pytest.approx(2 / (1 + math.exp(-5)) - 1)
