"""Augmentation recipes as data, one per paper.

A :class:`Recipe` lists the parameters of the standard contrastive augmentation chain, in this
order: random resized crop → horizontal flip → colour jitter (with probability, the four ops
in random order) → random grayscale → gaussian blur → solarize → normalise. Both the CPU path
(:mod:`contrast.views.cpu`) and the batched path (:mod:`contrast.views.batched`) build from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from contrast.checks import ConfigError, int_at_least
from contrast.normalization import Normalization

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MNIST_MEAN = (0.1307,)
MNIST_STD = (0.3081,)


@dataclass(frozen=True)
class Recipe:
    """Parameters of one view's augmentation chain.

    Attributes:
        size: output side in pixels (square).
        crop_scale: range of the crop's area as a fraction of the image (RandomResizedCrop).
        crop_ratio: range of the crop's aspect ratio w/h, sampled log-uniformly.
        flip_p: probability of a horizontal flip.
        jitter: (brightness, contrast, saturation, hue) strengths; factors are drawn from
            [max(0, 1-s), 1+s] for the first three and [-hue, hue] for hue, as torchvision.
        jitter_p: probability of applying the colour jitter.
        grayscale_p: probability of converting to grayscale (kept as 3 channels).
        blur_p: probability of gaussian blur; blur_sigma the σ range; blur_kernel the kernel side.
        solarize_p: probability of solarizing; pixels >= solarize_threshold (in [0, 1]) are inverted.
        mean, std: normalisation statistics per channel.
        eval_resize: the shorter side evaluation images are resized to before their centre crop of
            ``size`` (0: ``size`` itself, the CIFAR convention; 256 for 224-px ImageNet views).
    """

    size: int
    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1)
    jitter_p: float = 0.8
    grayscale_p: float = 0.2
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    blur_kernel: int = 0
    solarize_p: float = 0.0
    solarize_threshold: float = 0.5
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    eval_resize: int = 0
    name: str = field(default="custom", compare=False)

    @property
    def normalization(self) -> Normalization:
        """The pixel normalisation the views leave (the data's fact, recorded in the checkpoint)."""
        return Normalization(tuple(self.mean), tuple(self.std))

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1:
            raise ValueError(f"size must be a positive int, got {self.size!r}")
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < min <= max <= 1, got {self.crop_scale}")
        lo, hi = self.crop_ratio
        if not 0 < lo <= hi:
            raise ValueError(f"crop_ratio must satisfy 0 < min <= max, got {self.crop_ratio}")
        for name in ("flip_p", "jitter_p", "grayscale_p", "blur_p", "solarize_p"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"{name} must be a probability in [0, 1], got {value}")
        if len(self.jitter) != 4 or any(s < 0 for s in self.jitter) or self.jitter[3] > 0.5:
            raise ValueError(
                f"jitter must be 4 strengths (brightness, contrast, saturation, hue) >= 0 with hue <= 0.5, "
                f"got {self.jitter}"
            )
        if self.blur_p > 0:
            if self.blur_kernel < 1 or self.blur_kernel % 2 == 0:
                raise ValueError(f"blur_kernel must be a positive odd int when blur_p > 0, got {self.blur_kernel}")
            if not 0 < self.blur_sigma[0] <= self.blur_sigma[1]:
                raise ValueError(f"blur_sigma must satisfy 0 < min <= max, got {self.blur_sigma}")
        if (
            isinstance(self.eval_resize, bool)
            or not isinstance(self.eval_resize, int)
            or not (self.eval_resize == 0 or self.eval_resize >= self.size)
        ):
            raise ValueError(f"eval_resize must be 0 or an int >= size {self.size}, got {self.eval_resize!r}")
        if len(self.mean) != len(self.std) or any(s <= 0 for s in self.std):
            raise ValueError(f"mean and std need one value per channel and std > 0, got {self.mean}, {self.std}")

    @property
    def channels(self) -> int:
        return len(self.mean)

    @property
    def eval_side(self) -> int:
        """The shorter side of an evaluation image before its centre crop of ``size``."""
        return self.eval_resize or self.size

    def with_(self, **changes) -> Recipe:
        """A copy with some fields changed, e.g. ``SIMCLR_CIFAR10.with_(size=64)``."""
        return replace(self, **changes)


def blur_kernel_for(size: int) -> int:
    """SimCLR's kernel side: 10% of the image side, made odd (23 at 224)."""
    return 2 * math.floor(0.1 * size / 2) + 1


# SimCLR (Chen et al. 2020), appendix B.9 (CIFAR-10): colour distortion strength s = 0.5, no blur.
SIMCLR_CIFAR10 = Recipe(size=32, jitter=(0.4, 0.4, 0.4, 0.1), mean=CIFAR10_MEAN, std=CIFAR10_STD, name="simclr_cifar10")
# ImageNet's geometry, shared by its recipes: 224-px views, a blur kernel of 10% of the side, evaluation
# on a centre crop of the image resized to 256.
IMAGENET_224 = dict(size=224, blur_kernel=blur_kernel_for(224), eval_resize=256)
# SimCLR, appendix A: strength s = 1.0 (0.8s, 0.8s, 0.8s, 0.2s), blur p=0.5, σ ∈ [0.1, 2], kernel 10%.
SIMCLR_IMAGENET = Recipe(**IMAGENET_224, jitter=(0.8, 0.8, 0.8, 0.2), blur_p=0.5, name="simclr_imagenet")
# MoCo v2 (Chen et al. 2020, "Improved Baselines"): crop scale (0.2, 1), jitter (0.4, 0.4, 0.4, 0.1) p=0.8,
# grayscale 0.2, blur p=0.5 σ ∈ [0.1, 2].
MOCO_V2 = Recipe(**IMAGENET_224, crop_scale=(0.2, 1.0), blur_p=0.5, name="moco_v2")
# MoCo v2 on CIFAR-10 (the official CIFAR demo): the same chain at 32 px, without blur.
MOCO_V2_CIFAR10 = Recipe(size=32, crop_scale=(0.2, 1.0), mean=CIFAR10_MEAN, std=CIFAR10_STD, name="moco_v2_cifar10")
# BYOL (Grill et al. 2020), table 6, used by MoCo v3 (Chen et al. 2021): asymmetric views.
# Jitter (0.4, 0.4, 0.2, 0.1) p=0.8, grayscale 0.2, blur 1.0 / 0.1, solarize 0.0 / 0.2.
MOCO_V3_Q = Recipe(**IMAGENET_224, jitter=(0.4, 0.4, 0.2, 0.1), blur_p=1.0, solarize_p=0.0, name="moco_v3_q")
MOCO_V3_K = MOCO_V3_Q.with_(blur_p=0.1, solarize_p=0.2, name="moco_v3_k")
# MoCo v3 / BYOL on CIFAR-10 (as solo-learn's CIFAR configs): 32 px, no blur, solarize 0.0 / 0.2.
MOCO_V3_CIFAR10_Q = MOCO_V3_Q.with_(
    size=32, blur_p=0.0, blur_kernel=0, eval_resize=0, mean=CIFAR10_MEAN, std=CIFAR10_STD, name="moco_v3_cifar10_q"
)
MOCO_V3_CIFAR10_K = MOCO_V3_CIFAR10_Q.with_(solarize_p=0.2, name="moco_v3_cifar10_k")

# The quickstart (Shapes-10, generated in code): SimCLR's CIFAR chain with crops of at least a
# quarter of the image, so that a crop still shows the shape.
QUICKSTART = SIMCLR_CIFAR10.with_(
    crop_scale=(0.25, 1.0), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), name="quickstart"
)
# MNIST / Fashion-MNIST (1 channel, 28 px): crops, flips and brightness/contrast jitter only.
MNIST = Recipe(
    size=28,
    crop_scale=(0.3, 1.0),
    jitter=(0.4, 0.4, 0.0, 0.0),
    grayscale_p=0.0,
    mean=MNIST_MEAN,
    std=MNIST_STD,
    name="mnist",
)

# Linear evaluation (MoCo's main_lincls.py, solo-learn's main_linear.py): RandomResizedCrop of
# scale (0.08, 1) and a horizontal flip, nothing else; evaluated on a centre crop 224 of the image
# resized to 256 (ImageNet) or on the whole 32-px image (CIFAR). One view: recipe_k "none".
LINEAR_IMAGENET = Recipe(
    size=224, jitter=(0.0, 0.0, 0.0, 0.0), jitter_p=0.0, grayscale_p=0.0, eval_resize=256, name="linear_imagenet"
)
LINEAR_CIFAR10 = LINEAR_IMAGENET.with_(
    size=32, eval_resize=0, mean=CIFAR10_MEAN, std=CIFAR10_STD, name="linear_cifar10"
)
# Milder crops for small encoders on CIFAR-10 (60–100% of the area, 77–100% of the side): a small
# encoder does not overfit its fixed features, and crops down to a twelfth of a 32-px image train the
# head on views unlike the whole test image; these stay close to it, and the flip is free.
LINEAR_CIFAR10_MILD = LINEAR_CIFAR10.with_(crop_scale=(0.6, 1.0), name="linear_cifar10_mild")
# The flip alone (the whole image, mirrored half the time): the training views' distribution is the
# test images' own; what augmented views give a small encoder on CIFAR-10 (benchmarks/RESULTS.md).
LINEAR_CIFAR10_FLIP = LINEAR_CIFAR10.with_(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), name="linear_cifar10_flip")
LINEAR_QUICKSTART = LINEAR_CIFAR10.with_(
    crop_scale=(0.25, 1.0), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), name="linear_quickstart"
)

# Multi-crop (SwAV, Caron et al. 2020, section 3.2 and its code's 2×224 + 6×96 setting): two large
# crops of scale (0.14, 1) and small 96-px crops of scale (0.05, 0.14), with SimCLR's ImageNet colour
# (the small crops' blur kernel 10% of their side). Data options: recipe_q multicrop_imagenet,
# recipe_small multicrop_imagenet_small, num_small 6.
MULTICROP_IMAGENET = SIMCLR_IMAGENET.with_(crop_scale=(0.14, 1.0), name="multicrop_imagenet")
MULTICROP_IMAGENET_SMALL = SIMCLR_IMAGENET.with_(
    size=96, crop_scale=(0.05, 0.14), blur_kernel=blur_kernel_for(96), eval_resize=0, name="multicrop_imagenet_small"
)
# The quickstart's small crops (Shapes-10, 32 px): 16-px crops of a tenth to a quarter of the image.
QUICKSTART_SMALL = QUICKSTART.with_(size=16, crop_scale=(0.1, 0.25), name="quickstart_small")

# open_clip's training crop of image–text pairs (``image_transform(is_train=True)``: RandomResizedCrop of
# scale 0.9-1, no flip, no colour; bicubic there, antialiased bilinear here), OpenAI's normalisation. Pairs
# (``PairedData(recipe="clip")``) cut it at their own image_size and normalise as their image tower does.
CLIP = Recipe(
    size=224,
    crop_scale=(0.9, 1.0),
    flip_p=0.0,
    jitter=(0.0, 0.0, 0.0, 0.0),
    jitter_p=0.0,
    grayscale_p=0.0,
    mean=(0.48145466, 0.4578275, 0.40821073),
    std=(0.26862954, 0.26130258, 0.27577711),
    name="clip",
)

# Name -> recipe, for configuration files.
RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        SIMCLR_CIFAR10,
        SIMCLR_IMAGENET,
        MOCO_V2,
        MOCO_V2_CIFAR10,
        MOCO_V3_Q,
        MOCO_V3_K,
        MOCO_V3_CIFAR10_Q,
        MOCO_V3_CIFAR10_K,
        QUICKSTART,
        MNIST,
        CLIP,
        LINEAR_IMAGENET,
        LINEAR_CIFAR10,
        LINEAR_CIFAR10_MILD,
        LINEAR_CIFAR10_FLIP,
        LINEAR_QUICKSTART,
        MULTICROP_IMAGENET,
        MULTICROP_IMAGENET_SMALL,
        QUICKSTART_SMALL,
    )
}


ONE_VIEW = "none"  # recipe_k of one view per sample (linear evaluation)


Views = tuple[Recipe, ...]  # the list of views of a sample, one recipe per view (q, k, s_1, …, s_n)


def view_recipes(
    recipe_q: str | Recipe | tuple[str | Recipe, ...] | list,
    recipe_k: str | Recipe | None = None,
    recipe_small: str | Recipe | None = None,
    num_small: int = 0,
) -> Views:
    """The recipe of each view a sample yields: (q, k), k defaulting to q; (q,) for ``recipe_k="none"``;
    then ``num_small`` views of ``recipe_small`` (multi-crop, Caron et al. 2020: e.g. 2×224 + 6×96).
    A tuple (or list) as ``recipe_q`` is the list of views itself, one view per recipe (lightly's
    ``MultiViewTransform``): the four arguments are only a spelling of it. The one place these
    arguments are checked: a bad one raises a ConfigError that names it."""
    if isinstance(recipe_q, (tuple, list)):
        if (recipe_k, recipe_small, num_small) != (None, None, 0):
            raise ConfigError("recipe_k", "a tuple of recipes is the whole list of views: no recipe_k or small views")
        if not recipe_q:
            raise ConfigError("recipe_q", "the list of views is empty: give at least one recipe")
        return _one_normalization(tuple(get_recipe(r, f"recipe of view {i + 1}") for i, r in enumerate(recipe_q)))
    q = get_recipe(recipe_q, "recipe_q")
    int_at_least("num_small", num_small, 0)
    if (recipe_small is None) != (num_small == 0):
        raise ConfigError(
            "num_small" if recipe_small is not None else "recipe_small",
            f"multi-crop needs recipe_small and num_small >= 1 together, got recipe_small {recipe_small!r}, "
            f"num_small {num_small}",
        )
    small = (get_recipe(recipe_small, "recipe_small"),) * num_small if num_small else ()
    if isinstance(recipe_k, str) and recipe_k == ONE_VIEW:
        if num_small:
            raise ConfigError("num_small", 'multi-crop adds small views to two large ones; recipe_k "none" gives one')
        return (q,)
    return _one_normalization((q, q if recipe_k is None else get_recipe(recipe_k, "recipe_k"), *small))


def _one_normalization(views: Views) -> Views:
    """The views of one sample feed one backbone: one pixel normalisation for all of them."""
    for i, recipe in enumerate(views[1:], 1):
        if not recipe.normalization.same(views[0].normalization):
            argument = "recipe_k" if i == 1 else "recipe_small"
            raise ConfigError(
                argument,
                f"recipe {recipe.name!r} normalises with {recipe.normalization}, recipe {views[0].name!r} with "
                f"{views[0].normalization}: the views of a sample feed one backbone; choose recipes of one "
                "normalisation",
            )
    return views


def get_recipe(recipe: str | Recipe, argument: str = "recipe") -> Recipe:
    """A recipe by name (or the Recipe itself); an unknown name raises a ConfigError naming ``argument``."""
    if isinstance(recipe, Recipe):
        return recipe
    if recipe not in RECIPES:
        raise ConfigError(argument, f"unknown recipe {recipe!r}; choose one of {sorted(RECIPES)} or pass a Recipe")
    return RECIPES[recipe]
