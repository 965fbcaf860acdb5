"""Pixel normalisation is a recorded fact of a pretrained encoder: a tower started from it is fed
pixels normalised as in its pretraining, and the export says how.

Reference: torchvision v2's ToDtype(scale=True) + Normalize with the pretraining recipe's statistics
(what the image data path applies), written out in the test."""

from __future__ import annotations

import json

import pytest
import torch
from torchvision.transforms import v2

from contrast.methods import CrossModal, SimCLR
from contrast.views import get_recipe

RECIPE = get_recipe("simclr_cifar10")  # CIFAR-10 statistics, not the cross-modal default 0.5 / 0.25
VOCABULARY = ["<pad>", "<unk>", "red"]


def _pretrained_checkpoint(tmp_path, recipe: str | None = "simclr_cifar10"):
    torch.manual_seed(0)
    pretrained = SimCLR(backbone="tiny_cnn", projector_hidden=32, projector_dim=16).eval()
    checkpoint = {"state_dict": pretrained.state_dict(), "hyper_parameters": dict(pretrained.hparams)}
    if recipe is not None:  # as contrast fit writes it: the data module's arguments
        checkpoint["datamodule_hyper_parameters"] = {"dataset": "cifar10_jpeg", "recipe_q": recipe}
    torch.save(checkpoint, tmp_path / "simclr.ckpt")
    return pretrained, tmp_path / "simclr.ckpt"


def _as_pretrained(images: torch.Tensor) -> torch.Tensor:
    return v2.Normalize(RECIPE.mean, RECIPE.std)(v2.ToDtype(torch.float32, scale=True)(images))


def _image_features(model: CrossModal, images: torch.Tensor) -> torch.Tensor:
    model.image_head = torch.nn.Identity()  # the encoder's features, before the head
    return model.eval().embed_images(images)


@pytest.mark.parametrize("source", ["checkpoint", "export"])
def test_a_pretrained_image_tower_sees_the_pixels_of_its_pretraining(tmp_path, source):
    from contrast.export import export_backbone

    pretrained, path = _pretrained_checkpoint(tmp_path)
    if source == "export":
        export_backbone(str(path), str(tmp_path / "exported"))
        path = tmp_path / "exported"
    model = CrossModal(backbone="tiny_cnn", image_weights=str(path), vocabulary=VOCABULARY)
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        expected = pretrained.backbone(_as_pretrained(images))
        torch.testing.assert_close(_image_features(model, images), expected, rtol=1e-5, atol=1e-6)
    assert tuple(model.hparams.image_mean) == pytest.approx(RECIPE.mean)  # recorded in the checkpoint


def test_the_export_records_the_normalisation_and_its_build_line(tmp_path):
    from contrast.export import export_backbone

    _, path = _pretrained_checkpoint(tmp_path)
    _, meta = export_backbone(str(path), str(tmp_path / "exported"))
    arch = json.loads(meta.read_text())
    assert arch["mean"] == pytest.approx(RECIPE.mean) and arch["std"] == pytest.approx(RECIPE.std)
    assert any("Normalize(" in line and str(RECIPE.mean[0]) in line for line in arch["build"])


def test_a_reloaded_tower_keeps_the_normalisation(tmp_path):
    _, path = _pretrained_checkpoint(tmp_path)
    model = CrossModal(backbone="tiny_cnn", image_weights=str(path), vocabulary=VOCABULARY)
    checkpoint = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}
    loaded = CrossModal.from_checkpoint(checkpoint)
    torch.testing.assert_close(loaded.image_mean, model.image_mean)
    torch.testing.assert_close(loaded.image_std, model.image_std)


def test_normalisation_given_against_the_pretraining_is_refused(tmp_path):
    _, path = _pretrained_checkpoint(tmp_path)
    with pytest.raises(ValueError, match="image_mean.*pretrained on"):
        CrossModal(backbone="tiny_cnn", image_weights=str(path), image_mean=(0.5, 0.5, 0.5), vocabulary=VOCABULARY)


def test_without_a_record_the_default_stays(tmp_path):
    """A checkpoint that does not say how its pixels were normalised keeps the cross-modal default."""
    _, path = _pretrained_checkpoint(tmp_path, recipe=None)
    model = CrossModal(backbone="tiny_cnn", image_weights=str(path), vocabulary=VOCABULARY)
    assert model.image_mean.flatten().tolist() == [0.5, 0.5, 0.5]
