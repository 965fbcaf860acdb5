"""Per-sample CPU augmentation from a recipe, with torchvision.transforms.v2 (for DataLoader workers)."""

from __future__ import annotations

import torch
from torchvision.transforms import v2

from contrast.views.recipes import Recipe, Views, get_recipe, view_recipes


def cpu_transform(recipe: str | Recipe) -> v2.Compose:
    """A ``v2.Compose`` that takes a PIL image or a (C, H, W) uint8 tensor and returns one
    normalised float32 view of shape (C, size, size)."""
    recipe = get_recipe(recipe)
    brightness, contrast, saturation, hue = recipe.jitter
    # PIL input stays PIL until ToDtype: torchvision then runs crop, jitter and blur with PIL's
    # uint8 kernels, about 1.5x faster per sample than its tensor kernels.
    ops: list = [
        v2.RandomResizedCrop(recipe.size, scale=recipe.crop_scale, ratio=recipe.crop_ratio, antialias=True),
        v2.RandomHorizontalFlip(recipe.flip_p),
        v2.RandomApply([v2.ColorJitter(brightness, contrast, saturation, hue)], p=recipe.jitter_p),
    ]
    if recipe.channels == 3:
        ops.append(v2.RandomGrayscale(recipe.grayscale_p))
    if recipe.blur_p > 0:
        ops.append(v2.RandomApply([v2.GaussianBlur(recipe.blur_kernel, recipe.blur_sigma)], p=recipe.blur_p))
    ops += [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]
    if recipe.solarize_p > 0:
        ops.append(v2.RandomSolarize(recipe.solarize_threshold, p=recipe.solarize_p))
    ops.append(v2.Normalize(recipe.mean, recipe.std))
    return v2.Compose(ops)


class TwoViews:
    """Independently augmented views of one image, one per recipe, for a Dataset's transform
    (lightly's ``MultiViewTransform``): a recipe gives two views (q, k) of it (SimCLR, MoCo v2); a
    tuple of recipes is the list of views itself: two recipes (MoCo v3, BYOL), one (linear
    evaluation), or large then small views (multi-crop, :func:`contrast.views.recipes.view_recipes`
    spells them).

        dataset = ImageFolder(root, transform=TwoViews("simclr_cifar10"))
        (q, k), label = dataset[0]
    """

    def __init__(self, views: str | Recipe | Views) -> None:
        self.recipes = view_recipes(views)
        self.transforms = tuple(cpu_transform(r) for r in self.recipes)

    def __call__(self, image) -> tuple[torch.Tensor, ...]:
        return tuple(transform(image) for transform in self.transforms)

    def __repr__(self) -> str:
        return f"TwoViews({', '.join(repr(r.name) for r in self.recipes)})"
