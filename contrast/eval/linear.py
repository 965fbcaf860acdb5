"""Linear classifiers on frozen features: the L-BFGS probe, and the feature mode of linear evaluation.

**The L-BFGS probe** (:func:`linear_probe`): multinomial logistic regression, full-batch L-BFGS.

Features are extracted once (:func:`contrast.eval.extract_features`) and standardised with the
training statistics; a linear classifier minimises ``mean cross-entropy + wd/2 · ‖W‖²`` (bias not
penalised) with L-BFGS on the full batch, the protocol of SimCLR's and CPC's linear evaluation on
fixed features. The weight decay is chosen from a small sweep on a held-out tenth of the
training set, then the classifier is refit on all of it and scored on the test set.
The objective equals scikit-learn's ``LogisticRegression(C=1 / (n · wd))``. It holds the
features in float64: for small sets (CIFAR); it refuses where that would not fit in memory.

**The feature mode** (:func:`linear_sgd`): the linear-evaluation head
(:func:`contrast.models.linear_head`) trained by mini-batch SGD with a cosine schedule on features
extracted once, kept in float16 (or float32) in memory or in a ``.npy`` file on disk; each step
reads one batch of rows, so the memory taken is the features' own and O(batch) besides.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from contrast.checkpoint import CheckpointError, atomic_save, check_archive
from contrast.eval.features import check_finite
from contrast.eval.protocol import LinearProtocol
from contrast.schedule import WarmupCosine

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


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (MemAvailable of /proc/meminfo); None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def probe_memory(n_train: int, n_test: int, dim: int) -> int:
    """Bytes the L-BFGS probe holds at its peak: float64 copies of the features (the held-out split's,
    then the whole set's, each as read and standardised): about 3 × (n_train + n_test) × dim × 8."""
    return 3 * (n_train + n_test) * dim * 8


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
    check_finite(train_features, "train_features")
    check_finite(test_features, "test_features")
    if not weight_decays or any(wd < 0 for wd in weight_decays):
        raise ValueError(f"weight_decays must be a non-empty sequence of values >= 0, got {weight_decays}")
    need, free = probe_memory(len(train_features), len(test_features), train_features.shape[1]), available_memory()
    if free is not None and need > free:
        raise MemoryError(
            f"the L-BFGS probe holds its {len(train_features) + len(test_features):,} × {train_features.shape[1]} "
            f"features in float64 ({need / 2**30:.1f} GiB at its peak) but {free / 2**30:.1f} GiB are available: use "
            "the feature mode of linear evaluation (contrast probe --mode sgd: mini-batch SGD on float16 features, "
            "in memory or --storage disk)"
        )
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


def correct_counts(logits: Tensor, labels: Tensor) -> Tensor:
    """(3,) long: images, right at top-1, right at top-5 (top-k with k = min(5, classes))."""
    k = min(5, logits.shape[1])
    hit = logits.topk(k, dim=1).indices == labels[:, None]  # (N, k)
    seen = torch.tensor(labels.shape[0], device=logits.device)
    return torch.stack([seen, hit[:, 0].sum(), hit.any(dim=1).sum()]).long()


def _save_state(path, settings: dict, head, optimizer, epochs_done: int, loss_sum: float) -> None:
    """The feature mode's place, written atomically (:func:`contrast.checkpoint.atomic_save`)."""
    state = dict(settings=settings, epochs_done=epochs_done, loss_sum=loss_sum)
    atomic_save(state | dict(head=head.state_dict(), optimizer=optimizer.state_dict()), path)


def _load_state(path: Path) -> dict:
    """A state file, its CRC checked first (a damaged file would load silently otherwise)."""
    try:
        check_archive(path)
        return torch.load(path, map_location="cpu", weights_only=True)
    except CheckpointError as error:
        raise ValueError(f"--state: {error}; delete it to train the head again") from None
    except (RuntimeError, EOFError, pickle.UnpicklingError) as error:
        raise ValueError(f"--state: {path} is not a state this command wrote ({error})") from None


def _resume(path, settings: dict, head, optimizer) -> int:
    """Epochs done by an earlier run with ``path`` (0 without the file); its head and optimizer loaded.
    A state of other settings or of other features (another checkpoint, split or extraction) is
    refused, naming what differs."""
    path = Path(path)
    if not path.is_file():
        return 0
    saved = _load_state(path)
    try:
        if saved["settings"] != settings:
            old, new = saved["settings"], settings
            keys = [key for key in {**old, **new} if old.get(key) != new.get(key)]
            differ = [f"{key} {old.get(key)!r} (now {new.get(key)!r})" for key in keys]
            raise ValueError(
                f"--state: {path} was written for other features or settings: {'; '.join(differ)}; "
                "delete it or give another --state"
            )
        head.load_state_dict(saved["head"])
        optimizer.load_state_dict(saved["optimizer"])
        return int(saved["epochs_done"])
    except (KeyError, TypeError, RuntimeError) as error:
        raise ValueError(f"--state: {path} is not a state this command wrote ({error})") from None


@dataclass
class SGDResult:
    top1: float  # test accuracy in percent
    top5: float
    train_loss: float  # mean loss of the last epoch
    protocol: LinearProtocol | None = None  # the head, epochs, optimizer, schedule and batch that ran


def _rows(features, index: np.ndarray, device) -> Tensor:
    """Rows ``index`` (sorted) of an (N, D) tensor or .npy memmap, as float32 on ``device``."""
    if isinstance(features, Tensor):
        return features[torch.from_numpy(index)].to(device, torch.float32)
    return torch.from_numpy(np.ascontiguousarray(features[index])).to(device, torch.float32)


def linear_sgd(
    train_features,
    train_labels: Tensor,
    test_features,
    test_labels: Tensor,
    num_classes: int | None = None,
    *,
    epochs: int = 100,
    lr: float = 0.1,
    batch_size: int = 256,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    head_norm: bool = True,
    seed: int = 0,
    device: torch.device | str = "cpu",
    state: str | os.PathLike | None = None,
    source: dict | None = None,
) -> SGDResult:
    """The feature mode of linear evaluation: the head trained by mini-batch SGD (momentum, cosine
    schedule per step, a new shuffle every epoch from ``seed``) on fixed features; top-1 / top-5 on
    the test features. ``*_features``: (N, D) tensors (float16 or float32) or ``np.load(...,
    mmap_mode="r")`` arrays; labels (N,).

    ``state``: a file the head, its optimizer and the epochs done are written to (atomically) after
    every epoch; called again with the same file and settings, the training continues where it
    stopped and ends with the figures of an uninterrupted run (the shuffles of the epochs done are
    drawn again from ``seed``). ``source``: what the features are of (a checkpoint's fingerprint,
    the data, the extraction), recorded in the state: a file of other settings or other features
    is refused, naming what differs; a damaged one (its CRC) too."""
    from contrast.models import linear_head

    for name, x, y in (("train", train_features, train_labels), ("test", test_features, test_labels)):
        if len(x.shape) != 2 or x.shape[0] == 0:
            raise ValueError(f"{name}_features must be a non-empty (N, D) array, got shape {tuple(x.shape)}")
        if tuple(y.shape) != (x.shape[0],):
            raise ValueError(f"{name}_labels must be ({x.shape[0]},) to match {name}_features, got {tuple(y.shape)}")
    for name, x in (("train_features", train_features), ("test_features", test_features)):
        check_finite(x, f"{name} ({x.filename})" if getattr(x, "filename", None) else name)
    if test_features.shape[1] != train_features.shape[1]:
        raise ValueError(
            f"test_features have width {test_features.shape[1]} but train_features {train_features.shape[1]}"
        )
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    classes = int(train_labels.max()) + 1 if num_classes is None else num_classes
    if int(test_labels.max()) >= classes:
        raise ValueError(f"test labels reach {int(test_labels.max())} but the training labels have {classes} classes")
    torch.manual_seed(seed)
    head = linear_head(train_features.shape[1], classes, head_norm).to(device)
    optimizer = torch.optim.SGD(head.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    n = train_features.shape[0]
    steps_per_epoch = max(1, n // batch_size)  # full batches only (BatchNorm statistics of a whole batch)
    total = epochs * steps_per_epoch
    labels = train_labels.long()
    generator = np.random.default_rng(seed)
    settings = dict(n=n, width=int(train_features.shape[1]), classes=classes, epochs=epochs, lr=lr)
    settings |= dict(
        batch_size=batch_size, momentum=momentum, weight_decay=weight_decay, head_norm=head_norm, seed=seed
    )
    settings |= {f"features {key}": value for key, value in (source or {}).items()}
    done = _resume(state, settings, head, optimizer) if state is not None else 0
    for _ in range(done):  # the shuffles of the epochs done: the generator where it was
        generator.permutation(n)
    schedule = WarmupCosine(0, total)  # cosine per step, no warmup: the head starts from zero
    step, loss_sum = done * steps_per_epoch, 0.0
    for epoch in range(done, epochs):
        order = generator.permutation(n)
        loss_sum = 0.0
        for i in range(steps_per_epoch):
            index = np.sort(order[i * batch_size : (i + 1) * batch_size])
            x, y = _rows(train_features, index, device), labels[torch.from_numpy(index)].to(device)
            for group in optimizer.param_groups:
                group["lr"] = lr * schedule(step)
            loss = F.cross_entropy(head(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += float(loss.detach())
            step += 1
        if state is not None:
            _save_state(state, settings, head, optimizer, epoch + 1, loss_sum)
    if state is not None and done == epochs:  # finished before: the last epoch's loss as it was
        loss_sum = float(_load_state(Path(state))["loss_sum"])
    head.eval()
    counts = torch.zeros(3, dtype=torch.long)
    with torch.no_grad():
        for start in range(0, test_features.shape[0], 4096):
            index = np.arange(start, min(start + 4096, test_features.shape[0]))
            logits = head(_rows(test_features, index, device))
            counts += correct_counts(logits, test_labels[start : start + len(index)].to(device)).cpu()
    seen = int(counts[0])
    protocol = LinearProtocol(
        "fixed backbone features",
        head_norm,
        f"{epochs} epochs",
        lr,
        batch_size,
        momentum=momentum,
        weight_decay=weight_decay,
    )
    top1, top5 = 100.0 * int(counts[1]) / seen, 100.0 * int(counts[2]) / seen
    return SGDResult(top1, top5, loss_sum / steps_per_epoch, protocol)
