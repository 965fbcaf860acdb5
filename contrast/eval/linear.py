"""Linear probe on frozen features: multinomial logistic regression, full-batch L-BFGS.

Features are extracted once (:func:`contrast.eval.extract_features`) and standardised with the
training statistics; a linear classifier minimises ``mean cross-entropy + wd/2 · ‖W‖²`` (bias not
penalised) with L-BFGS on the full batch, the protocol of SimCLR's and CPC's linear evaluation on
fixed features. The weight decay is chosen from a small sweep on a held-out tenth of the
training set, then the classifier is refit on all of it and scored on the test set.
The objective equals scikit-learn's ``LogisticRegression(C=1 / (n · wd))``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

WEIGHT_DECAYS = (0.0, 1e-5, 1e-4, 1e-3, 1e-2)


@dataclass
class ProbeResult:
    top1: float  # test accuracy in percent
    weight_decay: float  # the one chosen on the validation split
    validation: dict[float, float]  # wd -> validation accuracy in percent


def _standardise(train: Tensor, *others: Tensor) -> list[Tensor]:
    mean, std = train.mean(0), train.std(0).clamp_min(1e-6)
    return [(x - mean) / std for x in (train, *others)]


def fit_logistic(features: Tensor, labels: Tensor, num_classes: int, weight_decay: float, max_iter: int = 300):
    """(W, b) minimising mean CE + wd/2 ‖W‖² with full-batch L-BFGS (float64 for a tight optimum)."""
    x, y = features.double(), labels.long()
    weight = torch.zeros(x.shape[1], num_classes, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=1e-9,
        tolerance_change=1e-12,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(x @ weight + bias, y) + 0.5 * weight_decay * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return weight.detach(), bias.detach()


def _accuracy(weight: Tensor, bias: Tensor, x: Tensor, y: Tensor) -> float:
    return 100.0 * ((x.double() @ weight + bias).argmax(1) == y).float().mean().item()


def linear_probe(
    train_features: Tensor,
    train_labels: Tensor,
    test_features: Tensor,
    test_labels: Tensor,
    weight_decays: tuple[float, ...] = WEIGHT_DECAYS,
    max_iter: int = 300,
    seed: int = 0,
) -> ProbeResult:
    """Top-1 test accuracy of a linear classifier on frozen features (weight decay chosen on a
    held-out 10% of the training set)."""
    for name, x in (("train_features", train_features), ("test_features", test_features)):
        if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[0] == 0:
            raise ValueError(f"{name} must be a non-empty (N, D) tensor")
    if train_labels.shape != (train_features.shape[0],) or test_labels.shape != (test_features.shape[0],):
        raise ValueError("labels must be (N,) tensors matching their features")
    if not weight_decays or any(wd < 0 for wd in weight_decays):
        raise ValueError(f"weight_decays must be a non-empty sequence of values >= 0, got {weight_decays}")
    num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    n = train_features.shape[0]
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = max(1, n // 10)
    val_idx, fit_idx = order[:n_val], order[n_val:]
    fit_x, val_x = _standardise(train_features[fit_idx].double(), train_features[val_idx].double())
    validation = {}
    for wd in weight_decays:
        w, b = fit_logistic(fit_x, train_labels[fit_idx], num_classes, wd, max_iter)
        validation[wd] = _accuracy(w, b, val_x, train_labels[val_idx])
    best = max(weight_decays, key=lambda wd: (validation[wd], wd))  # ties: the stronger regulariser
    train_x, test_x = _standardise(train_features.double(), test_features.double())
    w, b = fit_logistic(train_x, train_labels, num_classes, best, max_iter)
    return ProbeResult(top1=_accuracy(w, b, test_x, test_labels), weight_decay=best, validation=validation)
