"""Feature extraction from a frozen encoder."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader


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
    was_training = encoder.training
    encoder.eval()
    capacity = _rows(loader)
    features = labels = None
    filled = 0
    iterator = loader
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(loader, desc="features", leave=False)
    try:
        for images, batch_labels in iterator:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                out = encoder(images.to(device, non_blocking=True))
            batch_labels = torch.as_tensor(batch_labels)
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
    finally:
        encoder.train(was_training)
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
