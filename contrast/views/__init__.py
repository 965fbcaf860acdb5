"""Two-view augmentation: paper recipes, a per-sample CPU path, and a batched path on any device."""

from contrast.views.batched import BatchedTwoViews, BatchedViews, ViewParams
from contrast.views.cpu import TwoViews, cpu_transform
from contrast.views.device import DeviceViews
from contrast.views.recipes import RECIPES, Recipe, get_recipe

__all__ = [
    "RECIPES",
    "BatchedTwoViews",
    "BatchedViews",
    "DeviceViews",
    "Recipe",
    "TwoViews",
    "ViewParams",
    "cpu_transform",
    "get_recipe",
]
