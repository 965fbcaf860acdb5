"""MLP heads: projectors (SimCLR, MoCo v3) and predictors (MoCo v3, BYOL)."""

from __future__ import annotations

from torch import nn

from contrast.checks import ConfigError


def mlp(
    in_dim: int,
    hidden_dim: int,
    out_dim: int,
    *,
    num_layers: int = 2,
    last_bn: bool = False,
    batch_norm: bool = True,
) -> nn.Sequential:
    """Linear-BN-ReLU blocks then a final Linear (optionally followed by an affine-free BN).

    * SimCLR projector (Chen et al. 2020): ``mlp(F, 2048, 128, num_layers=2)``.
    * MoCo v3 projector (Chen et al. 2021): ``mlp(F, 4096, 256, num_layers=3, last_bn=True)``;
      MoCo v3 predictor: ``mlp(256, 4096, 256, num_layers=2)``.
    * MoCo v2 head (Chen et al. 2020): ``mlp(F, 2048, 128, batch_norm=False)`` (Linear-ReLU-Linear).
    """
    sizes = (("in_dim", in_dim), ("hidden_dim", hidden_dim), ("out_dim", out_dim), ("num_layers", num_layers))
    for name, value in sizes:
        if not isinstance(value, int) or value < 1:
            raise ConfigError(name, f"{name} must be a positive int, got {value!r}")
    layers: list[nn.Module] = []
    dim = in_dim
    for _ in range(num_layers - 1):
        if batch_norm:
            layers += [nn.Linear(dim, hidden_dim, bias=False), nn.BatchNorm1d(hidden_dim)]
        else:
            layers.append(nn.Linear(dim, hidden_dim))
        layers.append(nn.ReLU(inplace=True))
        dim = hidden_dim
    layers.append(nn.Linear(dim, out_dim, bias=not last_bn))
    if last_bn:
        layers.append(nn.BatchNorm1d(out_dim, affine=False))
    return nn.Sequential(*layers)


def linear_head(feature_dim: int, num_classes: int, norm: bool = False) -> nn.Module:
    """The linear-evaluation classifier: Linear(feature_dim, num_classes), weights ~ N(0, 0.01),
    bias 0 (MoCo's initialisation); with ``norm`` a BatchNorm1d without affine parameters in front
    (MoCo v3, MAE), which standardises the features so that one learning rate suits any backbone."""
    linear = nn.Linear(feature_dim, num_classes)
    nn.init.normal_(linear.weight, std=0.01)
    nn.init.zeros_(linear.bias)
    return nn.Sequential(nn.BatchNorm1d(feature_dim, affine=False, eps=1e-6), linear) if norm else linear
