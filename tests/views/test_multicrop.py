"""Multi-crop views (Caron et al. 2020): ``num_small`` small views after q and k, on every data path.

References: torchvision v2's RandomResizedCrop.get_params (the small crops' box distribution), the
views without multi-crop (adding small views leaves q and k as they were), torchvision's decode_jpeg
(counted: one decode per sample), :func:`contrast.losses.sup_con` (SimCLR's multi-crop loss)."""

from __future__ import annotations

import math

import pytest
import torch
from torchvision.transforms import v2

from contrast.checks import ConfigError
from contrast.data import ContrastiveData
from contrast.losses import sup_con
from contrast.methods import MoCoV2, SimCLR
from contrast.views import SplitViews, TwoViews, get_recipe
from contrast.views.recipes import view_recipes

SMALL = dict(recipe_small="quickstart_small", num_small=3)


def _image(height: int, width: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (3, height, width), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_the_recipes_of_swav_multi_crop():
    recipes = view_recipes("multicrop_imagenet", None, "multicrop_imagenet_small", 6)
    assert [r.size for r in recipes] == [224, 224] + [96] * 6
    assert recipes[0].crop_scale == (0.14, 1.0) and recipes[2].crop_scale == (0.05, 0.14)
    assert recipes[2].blur_kernel == 9  # 10% of 96 px, odd
    assert view_recipes("quickstart") == (get_recipe("quickstart"),) * 2


def test_small_views_are_added_after_q_and_k_which_stay_as_they_were():
    image = _image(120, 90)
    plain = SplitViews("quickstart", seed=3)
    multi = SplitViews(view_recipes("quickstart", **SMALL), seed=3)
    crops, params = multi(image, 77)
    assert [tuple(c.shape) for c in crops] == [(3, 32, 32)] * 2 + [(3, 16, 16)] * 3
    (q, k), (pq, pk) = plain(image, 77)
    assert torch.equal(crops[0], q) and torch.equal(crops[1], k) and torch.equal(params[0], pq)
    assert not torch.equal(crops[2], crops[3])  # each small view its own box


def test_small_crop_boxes_follow_torchvision():
    """SwAV's small crops (scale 0.05–0.14) of a 375×500 image: area fraction and log aspect ratio of
    3,000 boxes against torchvision's sampler, quartiles within the sampling error."""
    small = get_recipe("multicrop_imagenet_small")
    views = SplitViews(view_recipes("multicrop_imagenet", None, "multicrop_imagenet_small", 2))
    ours = torch.stack([views.sample(375, 500, i)[2 + i % 2].boxes[0] for i in range(3000)]).double()
    crop = v2.RandomResizedCrop(96, scale=small.crop_scale, ratio=small.crop_ratio)
    torch.manual_seed(0)
    theirs = []
    for _ in range(3000):
        p = crop.make_params([torch.empty(3, 375, 500)])
        theirs.append([p["top"], p["left"], p["height"], p["width"]])
    theirs = torch.tensor(theirs, dtype=torch.float64)
    for a, b in ((ours, theirs),):
        area_a, area_b = (x[:, 2] * x[:, 3] / (375 * 500) for x in (a, b))
        ratio_a, ratio_b = (torch.log(x[:, 3] / x[:, 2]) for x in (a, b))
        for q in (0.25, 0.5, 0.75):
            assert abs(float(torch.quantile(area_a, q) - torch.quantile(area_b, q))) < 0.006
            assert abs(float(torch.quantile(ratio_a, q) - torch.quantile(ratio_b, q))) < 0.04
    assert float(area_a.min()) >= 0.05 - 0.005 and float(area_a.max()) <= 0.14 + 0.005


def test_one_decode_per_sample_on_the_split_path(monkeypatch):
    """All views of a sample, large and small, are cut from one decode of its JPEG."""
    import io

    import numpy as np
    import torchvision.io
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(_image(200, 300).permute(1, 2, 0))).save(buffer, format="JPEG", quality=90)
    calls = []
    real = torchvision.io.decode_jpeg
    monkeypatch.setattr(torchvision.io, "decode_jpeg", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    views = SplitViews(view_recipes("simclr_imagenet", None, "multicrop_imagenet_small", 4))
    for index in range(3):
        crops, params = views.from_jpeg(buffer.getvalue(), 200, 300, index)
        assert len(crops) == len(params) == 6
    assert len(calls) == 3


@pytest.mark.parametrize("path", ["cpu", "batched", "split"])
def test_every_view_path_yields_q_k_and_the_small_views(path):
    data = ContrastiveData(dataset="shapes10", views=path, batch_size=8, train_subset=32, **SMALL)
    batch = next(iter(data.train_dataloader()))
    views, labels = data.path.on_device(data.path.transfer(batch, lambda part: part), torch.device("cpu"))
    assert [tuple(v.shape) for v in views] == [(8, 3, 32, 32)] * 2 + [(8, 3, 16, 16)] * 3
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in views) and labels.shape == (8,)
    assert isinstance(TwoViews(view_recipes("quickstart", **SMALL))(torch.zeros(3, 32, 32, dtype=torch.uint8)), tuple)


def test_simclr_multi_crop_loss_is_sup_con_over_all_views():
    """SimCLR's step with small views: L_out over the V views of each image (every other view of
    the image a positive), the large views through one forward and the small ones through another."""
    torch.manual_seed(0)
    model = SimCLR(backbone="tiny_cnn", num_classes=0, projector_hidden=32, projector_dim=16, temperature=0.2)
    q, k = torch.randn(6, 3, 32, 32), torch.randn(6, 3, 32, 32)
    small = tuple(torch.randn(6, 3, 16, 16) for _ in range(2))
    model.train()  # BatchNorm on the batch's statistics: the recomputation below sees the same batches
    loss, features = model.contrastive_step(q, k, small=small)
    z = model.projector(model.encode(torch.cat([q, k])))
    z_small = model.projector(model.encode(torch.cat(small))).split(6)
    expected = sup_con(z[:6], z[6:], None, 0.2, more_views=z_small)
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    assert features.shape == (6, model.feature_dim)
    plain, _ = model.contrastive_step(q, k)
    assert not torch.allclose(plain, loss)


def test_a_fit_with_multi_crop_views(tmp_path):
    import lightning as L

    data = ContrastiveData(dataset="shapes10", views="split", batch_size=16, train_subset=64, eval_subset=32, **SMALL)
    model = SimCLR(**data.facts(), backbone="tiny_cnn", projector_hidden=32, projector_dim=16)
    trainer = L.Trainer(
        max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False, default_root_dir=tmp_path
    )
    trainer.fit(model, data)
    assert math.isfinite(float(trainer.callback_metrics["train/loss"]))


def test_multi_crop_is_refused_where_it_has_no_meaning(tmp_path):
    import lightning as L

    data = ContrastiveData(dataset="shapes10", views="cpu", batch_size=16, train_subset=32, **SMALL)
    for model in (
        MoCoV2(backbone="tiny_cnn", num_classes=10, projector_hidden=32, projector_dim=16, queue_size=64),
        SimCLR(backbone="tiny_cnn", num_classes=10, projector_hidden=32, projector_dim=16, loss="dcl"),
    ):
        trainer = L.Trainer(max_steps=1, logger=False, enable_progress_bar=False, default_root_dir=tmp_path)
        with pytest.raises(ConfigError, match="num_small") as error:
            trainer.fit(model, data)
        assert type(model).__name__ in str(error.value)
    for given, named in ((dict(num_small=2), "recipe_small"), (dict(recipe_small="quickstart_small"), "num_small")):
        with pytest.raises(ConfigError, match="together") as error:
            ContrastiveData(**given)
        assert error.value.argument == named
    with pytest.raises(ConfigError, match='recipe_k "none"'):
        ContrastiveData(recipe_k="none", **SMALL)


def test_every_view_path_names_the_bad_multi_crop_argument():
    """The checks live in view_recipes alone (the view classes take its tuple); the data module names the argument."""
    for build in (
        lambda **kw: ContrastiveData(**kw),
        lambda **kw: view_recipes("quickstart", **kw),
    ):
        for given, named in (
            (dict(recipe_small="no_such_recipe", num_small=2), "recipe_small"),
            (dict(recipe_small="quickstart_small", num_small=-1), "num_small"),
            (dict(recipe_small="quickstart_small", num_small=True), "num_small"),
            (dict(recipe_k="no_such_recipe"), "recipe_k"),
        ):
            with pytest.raises(ConfigError) as error:
                build(**given)
            assert error.value.argument == named, (given, error.value)


def test_the_data_modules_k_recipe_is_the_second_view_with_multi_crop():
    data = ContrastiveData(recipe_q="quickstart", recipe_k="linear_quickstart", **SMALL)
    assert [r.name for r in data.recipes] == ["quickstart", "linear_quickstart"] + ["quickstart_small"] * SMALL[
        "num_small"
    ]
    assert data.recipe_q.name == "quickstart" and data.recipe_k.name == "linear_quickstart"
    assert ContrastiveData(recipe_k="none").recipe_k.name == "quickstart"  # one view: k reads as q
