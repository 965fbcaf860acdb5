"""NNCLR (Dwibedi et al. 2021): the nearest-neighbour swap and the loss against explicit references, its bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from contrast.data import ContrastiveData
from contrast.methods import NNCLR
from contrast.methods.nnclr import nearest_neighbours
from tests.methods.test_methods import _quiet_trainer, _views

SMALL = dict(projector_hidden=64, projector_dim=32)


def test_nearest_neighbour_swap_matches_a_loop():
    g = torch.Generator().manual_seed(0)
    z, support = torch.randn(7, 5, generator=g), torch.randn(20, 5, generator=g)
    expected = []
    for row in z:
        scores = [float(F.cosine_similarity(row, s, dim=0)) for s in support]
        expected.append(support[max(range(len(scores)), key=lambda j: (scores[j], -j))])
    torch.testing.assert_close(nearest_neighbours(z, support), torch.stack(expected))


def test_nnclr_loss_and_support_set_order():
    torch.manual_seed(0)
    model = NNCLR(backbone="tiny_cnn", num_classes=10, predictor_hidden=64, support_size=32, **SMALL)
    q, k, _ = _views(16)
    support = model.support.negatives()
    loss, features = model.contrastive_step(q, k)
    # The loss, written out: NN(z1) against the predictions of view 2, and symmetrically.
    with torch.no_grad():
        z = model.projector(model.encode(torch.cat([q, k])))
        p = model.predictor(z)
    nn1, nn2 = nearest_neighbours(z[:16], support), nearest_neighbours(z[16:], support)

    def info_nce(a, b):
        logits = F.normalize(a, dim=1) @ F.normalize(b, dim=1).T / 0.1
        return F.cross_entropy(logits, torch.arange(16))

    torch.testing.assert_close(
        loss.detach(), 0.5 * (info_nce(nn1, p[16:]) + info_nce(nn2, p[:16])), rtol=1e-5, atol=1e-5
    )
    # The first view's projections were enqueued at the pointer; the next batch goes after them.
    torch.testing.assert_close(model.support.bank[:16], F.normalize(z[:16], dim=1), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(model.support.bank[16:], support[16:])
    assert int(model.support.pointer) == 16
    loss.backward()
    assert all(p.grad is not None for p in model.predictor.parameters())


def test_a_support_set_of_one_is_refused():
    with pytest.raises(ValueError, match="support_size must be an int >= 2"):
        NNCLR(support_size=1)


def test_nnclr_support_set_smaller_than_the_batch_stops_before_training(tmp_path):
    data = ContrastiveData(batch_size=32, train_subset=64, eval_subset=32, views="batched")
    model = NNCLR(backbone="tiny_cnn", num_classes=10, predictor_hidden=64, support_size=16, **SMALL)
    with pytest.raises(ValueError, match="support_size must be a multiple of the global batch size 32"):
        _quiet_trainer(max_steps=1, enable_checkpointing=False, default_root_dir=tmp_path).fit(model, data)
