"""Encoders: any torchvision classification model by name, its classifier removed.

``build_backbone("resnet18", cifar_stem=True)`` returns an ``nn.Module`` mapping (B, C, H, W)
images to (B, F) features and sets ``module.feature_dim = F``. The CIFAR stem (He et al. 2016,
section 4.2; SimCLR appendix B.9) replaces ResNet's 7×7 stride-2 convolution and max-pool by one
3×3 stride-1 convolution, so 32×32 images keep their resolution in the first stage.
"""

from __future__ import annotations

import re

import torch
import torchvision
from torch import nn

from contrast.checks import ConfigError


class TinyCNN(nn.Module):
    """A 4-layer CNN (~0.1 M parameters at width 16) for quick runs on a CPU: 3×3 conv-BN-ReLU blocks with
    stride-2 downsampling, then global average pooling to ``width * 4`` features."""

    def __init__(self, in_channels: int = 3, width: int = 16) -> None:
        super().__init__()
        layers, channels = [], in_channels
        for out, stride in ((width, 1), (width * 2, 2), (width * 4, 2), (width * 4, 2)):
            layers += [nn.Conv2d(channels, out, 3, stride, 1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            channels = out
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.feature_dim = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


# Name -> constructor for backbones that torchvision does not have.
CUSTOM_BACKBONES = {"tiny_cnn": TinyCNN}

_CLASSIFIER_ATTRS = ("fc", "classifier", "head", "heads")


def _strip_classifier(model: nn.Module, name: str) -> int:
    """Replace the last Linear of the classifier head by Identity (keeping any norm / flatten /
    pre-logit layers before it); return that Linear's input width, the feature width."""
    for attr in _CLASSIFIER_ATTRS:
        head = getattr(model, attr, None)
        if not isinstance(head, nn.Module):
            continue
        if isinstance(head, nn.Linear):
            setattr(model, attr, nn.Identity())
            return head.in_features
        last = None
        for parent in head.modules():
            for child_name, child in parent.named_children():
                if isinstance(child, nn.Linear):
                    last = (parent, child_name, child)
        if last is not None:
            parent, child_name, linear = last
            setattr(parent, child_name, nn.Identity())
            return linear.in_features
    raise ValueError(f"backbone {name!r}: could not find its classifier (looked for {_CLASSIFIER_ATTRS})")


def _timm_backbone(name: str, cifar_stem: bool, in_channels: int) -> nn.Module:
    """``timm/<name>``: timm's model without its classifier (``num_classes=0``), random weights."""
    try:
        import timm
    except ImportError as error:
        raise ConfigError("backbone", f"backbone {name!r} needs timm: pip install timm (or contrast[timm])") from error
    model_name = name.removeprefix("timm/")
    if not timm.is_model(model_name):
        close = timm.list_models(f"*{model_name.split('_')[0]}*")[:5]
        raise ConfigError("backbone", f"unknown backbone {name!r}: timm has no model {model_name!r} (e.g. {close})")
    kwargs = dict(pretrained=False, num_classes=0, in_chans=in_channels)
    if cifar_stem:  # 32 px images: a ViT with 4×4 patches (ViT/4); other families have no such option here
        if "vit" not in model_name:
            raise ConfigError(
                "cifar_stem", f"cifar_stem applies to ResNets and timm ViTs (32 px, patch 4), not to {name!r}"
            )
        kwargs |= dict(img_size=32, patch_size=4)
    model = timm.create_model(model_name, **kwargs)
    model.feature_dim = model.num_features
    return model


def build_backbone(
    name: str = "resnet18",
    *,
    cifar_stem: bool = False,
    in_channels: int = 3,
    channels_last: bool = False,
    pretrained: bool = False,
) -> nn.Module:
    """An encoder with randomly initialised weights (no download).

    Args:
        name: a torchvision classification model (``torchvision.models.list_models``) or one of
            ``CUSTOM_BACKBONES`` ("tiny_cnn"); ``tiny_cnn_w<width>`` (e.g. ``tiny_cnn_w8``) is the tiny
            CNN at another width (16 by default).
        cifar_stem: 3×3 stride-1 first convolution and no max-pool (ResNets only).
        in_channels: input channels (1 for MNIST); ResNets and tiny_cnn.
        channels_last: store weights in channels-last memory format (faster convolutions on GPUs
            with bf16; feed channels-last inputs too).
        pretrained: not offered: nothing is downloaded; load trained weights with
            ``contrast.load_backbone`` or ``model.load_state_dict``.

    ``timm/<name>`` (e.g. ``timm/resnet50``, ``timm/convnext_tiny``, ``timm/vit_small_patch16_224``)
    builds timm's model (``pip install timm``) without classifier; with ``cifar_stem`` a timm ViT
    takes 32 px images in 4×4 patches (ViT-S/4 for CIFAR).
    """
    if pretrained:
        raise ValueError(
            f"pretrained weights for {name!r}: this toolkit never downloads weights (it runs offline); "
            "load a state_dict you have with contrast.load_backbone or model.load_state_dict"
        )
    if name == "none":  # a method's own choice (CrossModal on feature vectors), never an image encoder
        raise ConfigError(
            "backbone", "backbone 'none' is for methods that take feature vectors (CrossModal), not an image encoder"
        )
    custom = re.fullmatch(r"tiny_cnn_w([1-9][0-9]*)", name)
    if name.startswith("timm/"):
        model = _timm_backbone(name, cifar_stem, in_channels)
    elif name in CUSTOM_BACKBONES or custom:
        if cifar_stem:
            raise ConfigError("cifar_stem", f"cifar_stem applies to ResNets, not to {name!r}")
        if custom:  # tiny_cnn_w<width>: the tiny CNN at another width
            model = TinyCNN(in_channels=in_channels, width=int(custom.group(1)))
        else:
            model = CUSTOM_BACKBONES[name](in_channels=in_channels)
    else:
        available = torchvision.models.list_models(module=torchvision.models)
        if name not in available:
            raise ConfigError(
                "backbone",
                f"unknown backbone {name!r}; use a torchvision classification model "
                f"(e.g. resnet18, resnet50, vit_b_16) or one of {sorted(CUSTOM_BACKBONES)}",
            )
        model = torchvision.models.get_model(name, weights=None)
        is_resnet = hasattr(model, "conv1") and hasattr(model, "maxpool")
        if (cifar_stem or in_channels != 3) and not is_resnet:
            raise ValueError(f"cifar_stem and in_channels != 3 are supported for ResNets, not for {name!r}")
        if cifar_stem or in_channels != 3:
            out = model.conv1.out_channels
            kernel, stride, padding = (3, 1, 1) if cifar_stem else (7, 2, 3)
            model.conv1 = nn.Conv2d(in_channels, out, kernel, stride, padding, bias=False)
            nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
            if cifar_stem:
                model.maxpool = nn.Identity()
        model.feature_dim = _strip_classifier(model, name)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model
