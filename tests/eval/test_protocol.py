"""One description of linear evaluation: the words printed come from the settings that ran."""

from __future__ import annotations

import torch

from contrast.eval.linear import linear_sgd
from contrast.eval.protocol import LinearProtocol, augmentation, evaluation_crop
from contrast.views import get_recipe


def test_the_printed_line_names_every_setting():
    line = str(
        LinearProtocol(
            "fixed backbone features",
            True,
            "3 epochs",
            0.5,
            128,
            momentum=0.8,
            nesterov=True,
            weight_decay=1e-4,
            warmup_epochs=2,
            test="resize 256, centre crop 224",
        )
    )
    assert line == (
        "fixed backbone features, BatchNorm + linear head, 3 epochs, SGD lr 0.5 Nesterov momentum 0.8 wd 0.0001 "
        "warmup 2 epochs, cosine, batch 128; test: resize 256, centre crop 224"
    )
    adamw = LinearProtocol("x", False, "2 steps", 1e-3, 64, optimizer="adamw")
    assert str(adamw) == "x, linear head, 2 steps, ADAMW lr 0.001 wd 0 cosine, batch 64"


def test_the_recipe_words():
    assert (
        augmentation(get_recipe("linear_imagenet")) == "linear_imagenet: RandomResizedCrop 224, scale (0.08, 1.0), flip"
    )
    assert evaluation_crop(get_recipe("linear_imagenet")) == "resize 256, centre crop 224"
    assert evaluation_crop(get_recipe("simclr_cifar10")) == "whole 32-px images"


def test_linear_sgd_reports_the_momentum_and_weight_decay_it_ran_with():
    torch.manual_seed(0)
    x, y = torch.randn(64, 8), torch.arange(64) % 4
    result = linear_sgd(x, y, x, y, epochs=1, batch_size=16, lr=0.2, momentum=0.5, weight_decay=0.01)
    assert result.protocol == LinearProtocol(
        "fixed backbone features", True, "1 epochs", 0.2, 16, momentum=0.5, weight_decay=0.01
    )
    assert "SGD lr 0.2 momentum 0.5 wd 0.01 cosine, batch 16" in str(result.protocol)
