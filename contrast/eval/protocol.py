"""One description of a linear evaluation, from the settings that ran it: the words every figure prints."""

from __future__ import annotations

from dataclasses import dataclass

from contrast.views.recipes import Recipe


def evaluation_crop(recipe: Recipe) -> str:
    """How the test images are shown to the backbone: 'resize 256, centre crop 224' or 'whole 32-px images'."""
    if recipe.eval_side != recipe.size:
        return f"resize {recipe.eval_side}, centre crop {recipe.size}"
    return f"whole {recipe.size}-px images"


def augmentation(recipe: Recipe) -> str:
    """The training views of a recipe: 'linear_imagenet: RandomResizedCrop 224, scale (0.08, 1.0), flip'."""
    whole = tuple(recipe.crop_scale) == (1.0, 1.0) and tuple(recipe.crop_ratio) == (1.0, 1.0)
    crop = "whole image" if whole else f"RandomResizedCrop {recipe.size}, scale {tuple(recipe.crop_scale)}"
    return f"{recipe.name}: {crop}{', flip' if recipe.flip_p > 0 else ''}"


@dataclass(frozen=True)
class LinearProtocol:
    """A linear evaluation as run: what the head is trained on (``inputs``), the head, the length,
    the optimizer with its schedule (linear warmup, then cosine to zero per step:
    :class:`contrast.schedule.WarmupCosine`), the batch and the test crop. ``LinearEval`` (augmented
    views through the frozen backbone) and ``linear_sgd`` (fixed features) each make one from their
    own arguments; ``str()`` is the line printed with their figures."""

    inputs: str  # "augmented views (…), frozen backbone" or "fixed backbone features (…)"
    head_norm: bool  # a non-affine BatchNorm in front of the linear layer
    length: str  # "100 epochs" or "2 steps"
    lr: float  # the peak learning rate the optimizer ran with
    batch_size: int
    optimizer: str = "sgd"
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    warmup_epochs: float = 0.0
    test: str = ""  # the test crop (evaluation_crop); empty where the caller says it

    def __str__(self) -> str:
        head = "BatchNorm + linear head" if self.head_norm else "linear head"
        optimizer = f"{self.optimizer.upper()} lr {self.lr:g}"
        if self.optimizer != "adamw":
            optimizer += f" {'Nesterov ' if self.nesterov else ''}momentum {self.momentum:g}"
        schedule = f"warmup {self.warmup_epochs:g} epochs, cosine" if self.warmup_epochs else "cosine"
        test = f"; test: {self.test}" if self.test else ""
        optimizer += f" wd {self.weight_decay:g} {schedule}"
        return f"{self.inputs}, {head}, {self.length}, {optimizer}, batch {self.batch_size}{test}"
