"""Locking towers (LiT and partial unlocking) and gradient checkpointing of the text transformer."""

from __future__ import annotations

import warnings

import pytest
import torch

from contrast.checks import ConfigError
from contrast.methods import CrossModal
from contrast.models import build_backbone
from contrast.models.locking import layer_groups, lock
from contrast.models.text import TextTransformer

VOCABULARY = ["<pad>", "<unk>", "red", "blue", "disc", "square"]


def _batch(n=8):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    texts = torch.randint(2, len(VOCABULARY), (n, 5), generator=g)
    return images, texts, torch.zeros(n, dtype=torch.long)


def _step(model):
    model.train()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log without a trainer
        loss = model.training_step(_batch(), 0)
    loss.backward()
    return loss


def _stats(module):
    return {k: v.clone() for k, v in module.state_dict().items() if "running" in k}


def test_lit_a_frozen_image_tower_and_a_trained_text_tower():
    torch.manual_seed(0)
    model = CrossModal(backbone="tiny_cnn", freeze_image=True, vocabulary=VOCABULARY, embed_dim=8, head_hidden=16)
    before = _stats(model.backbone)
    _step(model)
    assert all(p.grad is None and not p.requires_grad for p in model.backbone.parameters())
    assert all(p.grad is not None for p in model.text_encoder.parameters() if p.requires_grad)
    assert all(torch.equal(before[k], v) for k, v in _stats(model.backbone).items())  # BatchNorm statistics kept


def test_the_last_groups_of_a_frozen_tower_train_and_only_they():
    torch.manual_seed(0)
    model = CrossModal(
        backbone="tiny_cnn",
        freeze_image=True,
        image_unlocked_groups=1,
        freeze_text=True,
        text_encoder="transformer",
        text_width=16,
        text_unlocked_layers=1,
        vocabulary=VOCABULARY,
        embed_dim=8,
        head_hidden=16,
    )
    image_groups, text_groups = layer_groups(model.backbone), layer_groups(model.text_encoder)
    assert len(image_groups) == 4 and len(text_groups) == 3  # 4 conv-BN-ReLU blocks; embeddings, 2 blocks
    before = _stats(model.backbone)
    _step(model)
    for groups, tower in ((image_groups, model.backbone), (text_groups, model.text_encoder)):
        trained = {id(p) for part in groups[-1] for p in part.parameters()}
        for p in tower.parameters():
            assert p.requires_grad == (id(p) in trained) and (p.grad is not None) == (id(p) in trained)
    assert not model.text_encoder.position.requires_grad  # with the frozen embeddings
    after = _stats(model.backbone)
    changed = [k for k in after if not torch.equal(before[k], after[k])]
    assert changed and all(k.startswith("features.10.") for k in changed)  # only the unlocked block's BatchNorm


def test_locking_beyond_the_tower_or_without_freezing_is_refused():
    with pytest.raises(ConfigError, match="image_unlocked_groups is 9, but the tower has 4 layer groups") as error:
        CrossModal(backbone="tiny_cnn", freeze_image=True, image_unlocked_groups=9, vocabulary=VOCABULARY)
    assert error.value.argument == "image_unlocked_groups"
    with pytest.raises(ConfigError, match="set freeze_text too"):
        CrossModal(backbone="tiny_cnn", text_unlocked_layers=1, vocabulary=VOCABULARY)
    with pytest.raises(ConfigError, match="freeze_text: this tower has no weights"):
        CrossModal(backbone="none", freeze_text=True, image_dim=4, text_dim=3)


def test_a_resnets_groups_are_its_stem_and_four_stages():
    resnet = build_backbone("resnet18")
    groups = layer_groups(resnet)
    assert [type(g[0]).__name__ for g in groups] == ["Conv2d", "Sequential", "Sequential", "Sequential", "Sequential"]
    norms = lock(resnet, 2)
    assert not resnet.layer2[0].conv1.weight.requires_grad and resnet.layer3[0].conv1.weight.requires_grad
    assert resnet.bn1 in norms and resnet.layer4[0].bn1 not in norms


def test_gradient_checkpointing_gives_the_same_gradients_in_float64():
    torch.manual_seed(0)
    plain = TextTransformer(len(VOCABULARY), width=16, layers=2, heads=2, max_length=8).double()
    checkpointed = TextTransformer(len(VOCABULARY), width=16, layers=2, heads=2, max_length=8).double()
    checkpointed.load_state_dict(plain.state_dict())
    checkpointed.grad_checkpointing = True
    tokens = torch.tensor([[2, 3, 4, 0, 0], [5, 4, 3, 2, 2]])
    for model in (plain, checkpointed):
        model(tokens).pow(2).sum().backward()
    torch.testing.assert_close(checkpointed(tokens), plain(tokens), rtol=1e-12, atol=1e-12)
    for (name, a), b in zip(plain.named_parameters(), checkpointed.parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-10, atol=1e-12, msg=name)


def test_gradient_checkpointing_of_a_trained_batchnorm_tower_is_refused():
    with pytest.raises(ConfigError, match="has BatchNorm, whose statistics the recomputation would update twice"):
        CrossModal(backbone="tiny_cnn", grad_checkpointing=True, vocabulary=VOCABULARY)
    model = CrossModal(
        backbone="tiny_cnn",
        freeze_image=True,
        grad_checkpointing=True,
        text_encoder="transformer",
        vocabulary=VOCABULARY,
    )
    assert model.text_encoder.grad_checkpointing
