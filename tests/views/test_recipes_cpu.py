"""Recipes carry the papers' values; the CPU path builds them with torchvision v2."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from contrast.views import RECIPES, TwoViews, cpu_transform


def test_recipes_carry_the_papers_values():
    simclr = RECIPES["simclr_cifar10"]
    assert simclr.jitter == (0.4, 0.4, 0.4, 0.1) and simclr.jitter_p == 0.8 and simclr.blur_p == 0
    assert simclr.crop_scale == (0.08, 1.0) and simclr.grayscale_p == 0.2 and simclr.size == 32
    imagenet = RECIPES["simclr_imagenet"]
    assert imagenet.jitter == (0.8, 0.8, 0.8, 0.2) and imagenet.blur_p == 0.5 and imagenet.blur_kernel == 23
    assert RECIPES["moco_v2"].crop_scale == (0.2, 1.0) and RECIPES["moco_v2"].blur_sigma == (0.1, 2.0)
    q, k = RECIPES["moco_v3_q"], RECIPES["moco_v3_k"]
    assert (q.blur_p, k.blur_p, q.solarize_p, k.solarize_p) == (1.0, 0.1, 0.0, 0.2)
    assert q.jitter == (0.4, 0.4, 0.2, 0.1)


def _ops(compose):
    found = []
    for t in compose.transforms:
        found += [type(x).__name__ for x in t.transforms] if isinstance(t, v2.RandomApply) else [type(t).__name__]
    return found


def test_cpu_transform_builds_the_chain_in_order():
    assert _ops(cpu_transform("moco_v3_k")) == [
        "RandomResizedCrop",
        "RandomHorizontalFlip",
        "ColorJitter",
        "RandomGrayscale",
        "GaussianBlur",
        "ToImage",
        "ToDtype",
        "RandomSolarize",
        "Normalize",
    ]
    assert "GaussianBlur" not in _ops(cpu_transform("simclr_cifar10"))


@pytest.mark.parametrize("kind", ["pil", "tensor"])
def test_two_views_on_pil_and_uint8(kind):
    array = (torch.rand(3, 40, 40) * 255).byte()
    image = Image.fromarray(array.permute(1, 2, 0).numpy()) if kind == "pil" else array
    torch.manual_seed(0)
    q, k = TwoViews(("moco_v3_cifar10_q", "moco_v3_cifar10_k"))(image)
    assert q.shape == k.shape == (3, 32, 32) and q.dtype == torch.float32 and not torch.equal(q, k)


def test_linear_evaluation_recipes_and_the_imagenet_test_crop():
    linear = RECIPES["linear_imagenet"]
    assert (linear.size, linear.crop_scale, linear.flip_p, linear.eval_side) == (224, (0.08, 1.0), 0.5, 256)
    assert linear.jitter_p == linear.grayscale_p == linear.blur_p == linear.solarize_p == 0
    assert RECIPES["linear_cifar10"].eval_side == 32 and RECIPES["simclr_cifar10"].eval_side == 32
    for name in ("simclr_imagenet", "moco_v2", "moco_v3_q", "moco_v3_k"):  # ImageNet's test crop: 256 → 224
        assert RECIPES[name].eval_side == 256, name
    assert RECIPES["moco_v3_cifar10_q"].eval_side == 32
    with pytest.raises(ValueError, match="eval_resize must be 0 or an int >= size 224"):
        linear.with_(eval_resize=200)
    assert _ops(cpu_transform("linear_imagenet"))[:2] == ["RandomResizedCrop", "RandomHorizontalFlip"]


def test_eval_images_are_resized_to_256_and_centre_cropped_to_224():
    from contrast.data.datasets import EvalDataset

    array = (torch.rand(3, 300, 400) * 255).byte()
    recipe = RECIPES["linear_imagenet"]
    reference = v2.Compose(
        [
            v2.Resize(256, antialias=True),
            v2.CenterCrop(224),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(recipe.mean, recipe.std),
        ]
    )
    got, label = EvalDataset([(array, 3)], recipe)[0]
    assert got.shape == (3, 224, 224) and label == 3 and torch.equal(got, reference(array))


def test_one_view_recipes():
    torch.manual_seed(0)
    views = TwoViews(("linear_cifar10",))(Image.fromarray((torch.rand(40, 40, 3) * 255).byte().numpy()))
    assert len(views) == 1 and views[0].shape == (3, 32, 32)
