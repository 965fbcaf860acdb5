"""Pixel normalisation (contrast.normalization) is a recorded fact of a pretrained encoder: a tower
started from it is fed pixels normalised as in its pretraining, and the export says how.

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


def _pretrained_checkpoint(tmp_path, recipe: str | None = "simclr_cifar10", recorded: bool = True):
    """A SimCLR checkpoint as contrast fit writes it: the data's normalisation among the model's
    hyper-parameters (linked from the data), the data module's arguments beside them;
    ``recorded=False``: as written before the record."""
    torch.manual_seed(0)
    facts = {"normalization": get_recipe(recipe).normalization.record()} if recipe and recorded else {}
    pretrained = SimCLR(backbone="tiny_cnn", projector_hidden=32, projector_dim=16, **facts).eval()
    checkpoint = {"state_dict": pretrained.state_dict(), "hyper_parameters": dict(pretrained.hparams)}
    if recipe is not None:
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


def test_a_checkpoint_without_a_record_is_not_exported_by_a_guess_from_its_recipe_name(tmp_path):
    from contrast.checkpoint import CheckpointError
    from contrast.checks import ConfigError
    from contrast.export import export_backbone

    _, path = _pretrained_checkpoint(tmp_path, recorded=False)  # its data module names simclr_cifar10
    with pytest.raises(CheckpointError, match="records no pixel normalisation .* --recipe NAME"):
        export_backbone(str(path), str(tmp_path / "exported"))
    assert not (tmp_path / "exported" / "backbone.json").exists()
    _, meta = export_backbone(str(path), str(tmp_path / "exported"), recipe="simclr_cifar10")  # stated, not guessed
    assert json.loads(meta.read_text())["mean"] == pytest.approx(RECIPE.mean)
    _, path = _pretrained_checkpoint(tmp_path)  # recorded: a recipe of other statistics contradicts it
    with pytest.raises(ConfigError, match="recipe 'quickstart' normalises with mean \\[0.5"):
        export_backbone(str(path), str(tmp_path / "other"), recipe="quickstart")


def test_the_one_comparison_rule_and_the_map_between_two_normalisations():
    import math

    from contrast.checks import ConfigError
    from contrast.normalization import TOLERANCE, Normalization

    a = Normalization((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert a.same(Normalization((0.48500001, 0.456, 0.406), (0.229, 0.224, 0.225)))  # printed to fewer places
    assert not a.same(Normalization((0.485 + 2 * TOLERANCE, 0.456, 0.406), (0.229, 0.224, 0.225)))
    assert not a.same(Normalization((0.5,), (0.25,))) and not a.same(None)
    b = get_recipe("simclr_cifar10").normalization
    scale, shift = b.onto(a)
    for c in range(3):  # x' = x·scale + shift, in float64 against normalising the pixel directly
        for pixel in (0.0, 0.3, 1.0):
            x = (pixel - b.mean[c]) / b.std[c]
            assert math.isclose(x * scale[c] + shift[c], (pixel - a.mean[c]) / a.std[c], rel_tol=1e-12, abs_tol=1e-12)
    for bad in ({"mean": [0.5]}, {"mean": [0.5], "std": [0.0]}, {"mean": [0.5, 0.5], "std": [0.2]}, [0.5]):
        with pytest.raises(ConfigError, match="^normalization"):
            Normalization.of(bad)
