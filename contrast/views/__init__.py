"""Two-view augmentation: paper recipes, a per-sample CPU path, and a batched path on any device."""

from contrast.views.batched import BatchedTwoViews, BatchedViews, ViewParams
from contrast.views.cpu import TwoViews, cpu_transform
from contrast.views.device import DeviceViews
from contrast.views.recipes import RECIPES, Recipe, get_recipe
from contrast.views.split import SplitViews, colour_views, cut_on_device

__all__ = [
    "RECIPES",
    "BatchedTwoViews",
    "BatchedViews",
    "DeviceViews",
    "Recipe",
    "SplitViews",
    "TwoViews",
    "ViewParams",
    "colour_views",
    "cut_on_device",
    "cpu_transform",
    "get_recipe",
]
