"""Feature extraction from a frozen encoder."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader


@torch.no_grad()
def extract_features(
    encoder: nn.Module, loader: DataLoader, device: torch.device | str | None = None, *, progress: bool = False
) -> tuple[Tensor, Tensor]:
    """Run ``encoder`` in eval mode over ``loader`` of (image, label) batches; returns float32
    (N, F) features and (N,) labels on the CPU. bf16 autocast is used on CUDA."""
    device = torch.device(device) if device is not None else next(encoder.parameters()).device
    was_training = encoder.training
    encoder.eval()
    features, labels = [], []
    iterator = loader
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(loader, desc="features", leave=False)
    try:
        for images, batch_labels in iterator:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                out = encoder(images.to(device, non_blocking=True))
            features.append(out.float().cpu())
            labels.append(torch.as_tensor(batch_labels).cpu())
    finally:
        encoder.train(was_training)
    return torch.cat(features), torch.cat(labels).long()
