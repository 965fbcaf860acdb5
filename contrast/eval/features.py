"""Feature extraction from a frozen encoder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader


def _encoded(encoder: nn.Module, loader: DataLoader, device: torch.device, progress: bool, desc: str):
    """(features, labels) of each batch of ``loader`` through ``encoder`` in eval mode (bf16 autocast on
    CUDA), its training mode restored afterwards: the one extraction loop of both writers below."""
    was_training = encoder.training
    encoder.eval()
    iterator = loader
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(loader, desc=desc, leave=False)
    try:
        for images, labels in iterator:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                out = encoder(images.to(device, non_blocking=True))
            yield out, torch.as_tensor(labels)
    finally:
        encoder.train(was_training)


@torch.no_grad()
def extract_features(
    encoder: nn.Module,
    loader: DataLoader,
    device: torch.device | str | None = None,
    *,
    progress: bool = False,
    dtype: torch.dtype = torch.float32,
    storage: torch.device | str = "cpu",
) -> tuple[Tensor, Tensor]:
    """Run ``encoder`` in eval mode over ``loader`` of (image, label) batches; returns (N, F)
    features of ``dtype`` on ``storage`` and (N,) labels. bf16 autocast is used on CUDA.

    Each batch is written into one tensor allocated for the loader's N rows at the first batch, so
    the memory taken is the features' own size (1.28 M × 2048 float16: 5.2 GB), never a list of
    batches plus their concatenation; ``storage`` = the encoder's device keeps a bank for the
    torch kNN backend where it is searched."""
    device = torch.device(device) if device is not None else next(encoder.parameters()).device
    capacity = _rows(loader)
    features = labels = None
    filled = 0
    for out, batch_labels in _encoded(encoder, loader, device, progress, "features"):
        rows = out.shape[0]
        if features is None:
            features = torch.empty((max(capacity, rows), out.shape[1]), dtype=dtype, device=storage)
            labels = torch.empty(features.shape[0], dtype=torch.long, device=storage)
        if filled + rows > features.shape[0]:  # a loader longer than it said: grow once more
            features = torch.cat([features, features.new_empty((max(rows, features.shape[0]), features.shape[1]))])
            labels = torch.cat([labels, labels.new_empty(features.shape[0] - labels.shape[0])])
        features[filled : filled + rows].copy_(out)
        labels[filled : filled + rows].copy_(batch_labels)
        filled += rows
    if features is None:
        raise ValueError("the loader gave no batches: no features to extract")
    return features[:filled], labels[:filled]


def _rows(loader: DataLoader) -> int:
    """How many rows ``loader`` yields, as its sampler says (a shard's own under DDP); 0 if unknown."""
    try:
        sampler = loader.batch_sampler.sampler if loader.batch_sampler is not None else loader.sampler
        return len(sampler)
    except (AttributeError, TypeError):
        return 0


@torch.no_grad()
def features_on_disk(
    encoder: nn.Module,
    loader: DataLoader,
    path: str | os.PathLike,
    device: torch.device | str | None = None,
    *,
    key: dict | None = None,
    dtype=np.float16,
    progress: bool = False,
):
    """Features of ``loader`` in the ``.npy`` file ``path`` ((N, F) of ``dtype``) and their labels
    beside it (``<stem>.labels.npy``); returns (the features memory-mapped read-only, labels (N,)).

    Written batch by batch into a memory-mapped ``<path>.partial``, renamed when complete, so an
    interrupted extraction is never taken for a finished one. ``key`` (what the features are of: a
    checkpoint, a split) is stored beside them; a finished file with the same key is read, not
    extracted again (a sweep extracts once). A file of another shape than its labels and the
    encoder's width is refused with its name."""
    path = Path(path)
    labels_path, key_path = path.with_suffix(".labels.npy"), path.with_suffix(".key.json")
    width = getattr(encoder, "feature_dim", None)
    if path.is_file() and labels_path.is_file() and key_path.is_file() and json.loads(key_path.read_text()) == key:
        features, labels = np.load(path, mmap_mode="r"), np.load(labels_path)
        check_feature_file(path, features, len(labels), width)
        return features, torch.from_numpy(labels)
    device = torch.device(device) if device is not None else next(encoder.parameters()).device
    rows = _rows(loader)
    if not rows or not width:
        raise ValueError("features_on_disk needs a loader of known length and an encoder with feature_dim")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)  # first: an older file is never paired with the labels and key written below
    partial = path.with_name(path.name + ".partial")
    out = np.lib.format.open_memmap(partial, mode="w+", dtype=dtype, shape=(rows, width))
    labels = np.empty(rows, dtype=np.int64)
    filled = 0
    for batch, batch_labels in _encoded(encoder, loader, device, progress, "features to disk"):
        n = batch.shape[0]
        if filled + n > rows:
            raise ValueError(f"the loader gave more than the {rows} rows it said it has")
        out[filled : filled + n] = batch.float().cpu().numpy().astype(dtype)
        labels[filled : filled + n] = batch_labels.numpy()
        filled += n
    if filled != rows:
        raise ValueError(f"the loader gave {filled} rows, not the {rows} it said it has")
    out.flush()
    del out
    np.save(labels_path, labels)
    key_path.write_text(json.dumps(key))
    os.replace(partial, path)  # last: the features file exists only when complete
    return np.load(path, mmap_mode="r"), torch.from_numpy(labels)


def check_finite(features, name: str, block_rows: int = 65536) -> None:
    """A one-line ``ValueError`` naming ``name``, how many rows hold NaN or Inf and the first of them;
    ``features`` an (N, D) tensor or a (memory-mapped) array, read a block of rows at a time. A
    non-finite feature gives a chance-level figure without a word otherwise (NaN compares false)."""
    count, first = 0, None
    for start in range(0, features.shape[0], block_rows):
        block = features[start : start + block_rows]
        if isinstance(block, Tensor):
            bad = (~torch.isfinite(block).all(dim=1)).nonzero().flatten().tolist()
        else:
            bad = np.flatnonzero(~np.isfinite(block).all(axis=1)).tolist()
        if bad and first is None:
            first = start + bad[0]
        count += len(bad)
    if count:
        raise ValueError(f"{name}: {count} row(s) hold NaN or Inf values, the first is row {first}")


def check_feature_file(path, features, rows: int, width: int | None) -> None:
    """A one-line error naming ``path`` unless it holds (rows, width) features."""
    if features.ndim != 2 or features.shape[0] != rows or (width and features.shape[1] != width):
        expected = f"({rows}, {width})" if width else f"({rows}, F)"
        raise ValueError(
            f"feature file {path} holds an array of shape {tuple(features.shape)}, expected {expected} (the split's "
            "images × the backbone's feature width); delete it to extract the features again"
        )
