"""Per-sample CPU augmentation from a recipe, with torchvision.transforms.v2 (for DataLoader workers)."""

from __future__ import annotations

import torch
from torchvision.transforms import v2

from contrast.views.recipes import Recipe, get_recipe


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
    """Two independently augmented views (q, k) of one image, for a Dataset's transform.

    ``recipe_k`` defaults to ``recipe_q`` (SimCLR, MoCo v2); MoCo v3 / BYOL pass two recipes.

        dataset = ImageFolder(root, transform=TwoViews("simclr_cifar10"))
        (q, k), label = dataset[0]
    """

    def __init__(self, recipe_q: str | Recipe, recipe_k: str | Recipe | None = None) -> None:
        self.recipe_q = get_recipe(recipe_q)
        self.recipe_k = self.recipe_q if recipe_k is None else get_recipe(recipe_k)
        self.transform_q = cpu_transform(self.recipe_q)
        self.transform_k = cpu_transform(self.recipe_k)

    def __call__(self, image) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform_q(image), self.transform_k(image)

    def __repr__(self) -> str:
        return f"TwoViews({self.recipe_q.name!r}, {self.recipe_k.name!r})"
