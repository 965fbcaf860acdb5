"""timm backbones: built without their classifier, exported back into timm; bad backbone arguments."""

from __future__ import annotations

import pytest
import torch

from contrast.methods import SimCLR
from contrast.models import build_backbone
from tests.conftest import require

SMALL = dict(projector_hidden=64, projector_dim=32)


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: build_backbone("timm/not_a_model_at_all"), "unknown backbone"),
        (lambda: build_backbone("resnet18", pretrained=True), "never downloads"),
        (lambda: build_backbone("timm/resnet18", cifar_stem=True), "cifar_stem applies to"),
    ],
)
def test_bad_backbone_arguments(call, message):
    require("timm")
    with pytest.raises(ValueError, match=message):
        call()


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
