"""Accumulation that enlarges the contrastive batch (``accumulate_pairs``, GradCache): K micro-batches
give the loss and gradients of the one batch of K·B pairs, in float64, for every objective; the
second pass replays the first's dropout; towers it cannot serve and batches it cannot split are
refused before training. (2 gloo ranks: ``tests/distributed/test_ddp_crossmodal.py``.)"""

from __future__ import annotations

import warnings

import lightning as L
import pytest
import torch
from torch import nn

from contrast.checks import ConfigError
from contrast.data import PairedData
from contrast.methods import CrossModal
from contrast.methods.grad_cache import grad_cache_loss
from tests.distributed.test_ddp_crossmodal import OBJECTIVES as DDP_OBJECTIVES

VOCABULARY = ["<pad>", "<unk>", "red", "blue", "disc", "square", "small", "large"]
OBJECTIVES = {**DDP_OBJECTIVES, "acmr": {"acmr": 1.0}}  # every objective alone, and all four together


def _model(objectives, accumulate_pairs=1) -> CrossModal:
    torch.manual_seed(0)
    model = CrossModal(
        backbone="none",
        text_encoder="transformer",
        text_width=16,
        embed_dim=8,
        head_hidden=16,
        objectives=objectives,
        image_dim=6,
        vocabulary=VOCABULARY,
        num_classes=3,
        accumulate_pairs=accumulate_pairs,
    )
    return model.double()


def _batch(n=12):
    g = torch.Generator().manual_seed(1)
    images = torch.randn(n, 6, generator=g, dtype=torch.float64)
    texts = torch.randint(2, len(VOCABULARY), (n, 5), generator=g)
    texts[::3, 3:] = 0  # some captions shorter
    return images, texts, torch.arange(n) % 3


def _step(model, batch):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log without a trainer
        loss = model.training_step(batch, 0)
    loss.backward()
    return loss.detach(), {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("k", [2, 4])
@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_k_micro_batches_give_the_whole_batchs_loss_and_gradients(name, k):
    loss, grads = _step(_model(OBJECTIVES[name]), _batch())
    cached_loss, cached_grads = _step(_model(OBJECTIVES[name], accumulate_pairs=k), _batch())
    assert cached_loss.item() == pytest.approx(loss.item(), abs=1e-12)
    assert set(cached_grads) == set(grads) and any(key.startswith("text_encoder.") for key in grads)
    for key, grad in grads.items():
        torch.testing.assert_close(cached_grads[key], grad, rtol=1e-10, atol=1e-12, msg=key)


def test_the_second_pass_replays_the_dropout_of_the_first():
    torch.manual_seed(0)
    tower = nn.Sequential(nn.Linear(5, 16), nn.Dropout(0.5), nn.Linear(16, 4)).double()
    images, texts = torch.randn(8, 5, dtype=torch.float64), torch.randn(8, 5, dtype=torch.float64)

    def encode(i, t):
        return tower(i), tower(t)

    def objective(image, text):
        return (image @ text.T).logsumexp(1).mean()

    torch.manual_seed(7)  # the reference: the same micro-batches, one after the other, with gradients
    parts = [encode(i, t) for i, t in zip(images.chunk(4), texts.chunk(4))]
    objective(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])).backward()
    expected = [p.grad.clone() for p in tower.parameters()]
    tower.zero_grad()
    torch.manual_seed(7)
    grad_cache_loss(tower, tower, objective, images, texts, 4).backward()
    for got, want in zip((p.grad for p in tower.parameters()), expected):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    assert not torch.equal(expected[0], torch.zeros_like(expected[0]))


def test_what_it_cannot_serve_is_refused_before_training(tmp_path):
    with pytest.raises(ConfigError, match="accumulate_pairs: the tiny_cnn image tower has BatchNorm") as error:
        CrossModal(backbone="tiny_cnn", accumulate_pairs=2, vocabulary=VOCABULARY)
    assert error.value.argument == "accumulate_pairs"
    assert CrossModal(backbone="tiny_cnn", accumulate_pairs=2, freeze_image=True, vocabulary=VOCABULARY)
    with pytest.raises(ConfigError, match="accumulate_pairs must be a positive int, got 0"):
        CrossModal(backbone="tiny_cnn", accumulate_pairs=0, vocabulary=VOCABULARY)
    data = PairedData(train_size=40, test_size=8, batch_size=10)
    model = CrossModal(backbone="tiny_cnn", freeze_image=True, accumulate_pairs=3, **data.facts())
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, default_root_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"accumulate_pairs \(3\) must divide the data's batch_size \(10\)"):
        trainer.fit(model, datamodule=data)
    assert trainer.global_step == 0
