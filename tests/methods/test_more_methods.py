"""SupCon, NNCLR, SimCLR with DCL / DCLW, and timm backbones: their parts against explicit
references, their bad input, and a few training steps."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from contrast.data import ContrastiveData
from contrast.losses import DCLLoss, NTXent, sup_con
from contrast.methods import NNCLR, SimCLR, SupCon
from contrast.methods.nnclr import nearest_neighbours
from contrast.models import build_backbone
from tests.conftest import require
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


def test_supcon_uses_the_labels_and_equals_its_loss():
    torch.manual_seed(0)
    model = SupCon(backbone="tiny_cnn", num_classes=10, **SMALL)
    q, k, labels = _views(16)
    loss, _ = model.contrastive_step(q, k, labels)
    with torch.no_grad():
        z = model.projector(model.encode(torch.cat([q, k])))
    torch.testing.assert_close(loss.detach(), sup_con(z[:16], z[16:], labels, 0.1), rtol=1e-6, atol=1e-6)


def test_simclr_trains_with_the_loss_it_is_given():
    assert isinstance(SimCLR(backbone="tiny_cnn", **SMALL).criterion, NTXent)
    for name, weighting in (("dcl", None), ("dclw", "vmf")):
        criterion = SimCLR(backbone="tiny_cnn", loss=name, temperature=0.1, **SMALL).criterion
        assert isinstance(criterion, DCLLoss) and criterion.weighting == weighting


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: SimCLR(loss="infonce"), "loss must be one of"),
        (lambda: NNCLR(support_size=1), "support_size must be an int >= 2"),
        (lambda: build_backbone("timm/not_a_model_at_all"), "unknown backbone"),
        (lambda: build_backbone("resnet18", pretrained=True), "never downloads"),
        (lambda: build_backbone("timm/resnet18", cifar_stem=True), "cifar_stem applies to"),
    ],
)
def test_bad_configuration_values(call, message):
    require("timm")
    with pytest.raises(ValueError, match=message):
        call()


def test_nnclr_support_set_smaller_than_the_batch_stops_before_training(tmp_path):
    data = ContrastiveData(batch_size=32, train_subset=64, eval_subset=32, views="batched")
    model = NNCLR(backbone="tiny_cnn", num_classes=10, predictor_hidden=64, support_size=16, **SMALL)
    with pytest.raises(ValueError, match="support_size must be a multiple of the global batch size 32"):
        _quiet_trainer(max_steps=1, enable_checkpointing=False, default_root_dir=tmp_path).fit(model, data)


def test_supcon_on_unlabelled_data_stops_before_training(tmp_path):
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(40):
        Image.fromarray(torch.randint(0, 255, (32, 32, 3), dtype=torch.uint8).numpy()).save(folder / f"{i}.png")
    data = ContrastiveData(dataset="imagefolder", root=str(folder), recipe_q="simclr_cifar10", batch_size=16)
    model = SupCon(backbone="tiny_cnn", num_classes=0, **SMALL)
    with pytest.raises(ValueError, match="SupCon needs labelled training images"):
        _quiet_trainer(max_steps=1, enable_checkpointing=False, default_root_dir=tmp_path).fit(model, data)


def test_timm_backbones_build_without_classifier_and_export_back_into_timm(tmp_path):
    timm = require("timm")
    resnet = build_backbone("timm/resnet18")
    assert resnet.feature_dim == 512 and resnet(torch.randn(2, 3, 64, 64)).shape == (2, 512)
    vit = build_backbone("timm/vit_small_patch16_224", cifar_stem=True)  # ViT-S/4 at 32 px
    assert vit.feature_dim == 384 and vit(torch.randn(2, 3, 32, 32)).shape == (2, 384)
    from contrast.export import backbone_from_checkpoint, torchvision_recipe

    model = SimCLR(backbone="timm/vit_small_patch16_224", cifar_stem=True, **SMALL)
    checkpoint = {"hyper_parameters": dict(model.hparams), "state_dict": model.state_dict()}
    backbone, arch = backbone_from_checkpoint(checkpoint)
    torch.save(backbone.state_dict(), tmp_path / "backbone.pt")
    scope = {"timm": timm, "torch": torch}
    code = "\n".join(torchvision_recipe(arch, backbone.feature_dim))
    exec(code.replace('"backbone.pt"', repr(str(tmp_path / "backbone.pt"))), scope)
    images = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(scope["model"].eval()(images), backbone.eval()(images))


def test_moco_v3_with_a_vit_s4_runs_a_few_steps(tmp_path):
    require("timm")
    from contrast.methods import MoCoV3

    L.seed_everything(0)
    data = ContrastiveData(batch_size=8, train_subset=32, eval_subset=16, views="batched")
    model = MoCoV3(
        backbone="timm/vit_small_patch16_224", cifar_stem=True, optimizer="adamw", lr=1e-4, predictor_hidden=64, **SMALL
    )
    trainer = _quiet_trainer(max_steps=3, enable_checkpointing=False, default_root_dir=tmp_path)
    trainer.fit(model, data)
    assert trainer.global_step == 3 and torch.isfinite(trainer.callback_metrics["train/loss"])
