"""Zero-shot classification (Radford et al. 2021), as CLIP_benchmark and open_clip score it: each
class's embedding is the mean of its prompts' L2-normalised text embeddings (class names × prompt
templates), normalised again; an image is given the class of highest cosine similarity. Figures:
top-1, top-5 and the mean per-class recall (balanced accuracy), in percent.

The templates come from a JSON file in CLIP_benchmark's format, ``{"<dataset>": ["a photo of a
{c}.", ...]}``; :data:`TEMPLATES` ships OpenAI's published prompts (CIFAR-10's 18, ImageNet's 80).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from contrast.checks import ConfigError

TEMPLATES = Path(__file__).with_name("zeroshot_templates.json")


def load_templates(key: str, path: str | Path | None = None) -> list[str]:
    """The prompt templates of ``key`` (e.g. "cifar10", "imagenet1k") in a CLIP_benchmark-format
    JSON file (the shipped one by default); each holds ``{c}`` where the class name goes."""
    path = TEMPLATES if path is None else Path(path)
    try:
        table = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ConfigError("templates", f"templates: {path} is not a readable JSON file ({error})") from None
    if not isinstance(table, dict) or key not in table:
        keys = sorted(table) if isinstance(table, dict) else []
        raise ConfigError("templates", f"templates: {path} has no templates for {key!r}; it has {keys}")
    templates = table[key]
    if not templates or not all(isinstance(t, str) and "{c}" in t for t in templates):
        raise ConfigError("templates", f"templates: {path}[{key!r}] must be a list of strings that hold {{c}}")
    return list(templates)


def class_weights(embed_texts: Callable[[list[str]], Tensor], classnames: Sequence[str], templates: Sequence[str]):
    """(D, C) class embeddings: for each class, the mean of its prompts' normalised embeddings,
    normalised (``embed_texts``: a list of prompts -> (P, D) text embeddings)."""
    columns = []
    with torch.no_grad():
        for name in classnames:
            prompts = F.normalize(embed_texts([t.format(c=name) for t in templates]), dim=-1).mean(dim=0)  # (D,)
            columns.append(prompts / prompts.norm())
    return torch.stack(columns, dim=1)  # (D, C)


def zero_shot_scores(image_embeddings: Tensor, labels: Tensor, weights: Tensor) -> dict[str, float]:
    """top1, top5 and mean_per_class_recall (percent) of (N, D) image embeddings against (D, C)
    class weights; labels (N,). Ties: the lower class id (``topk`` of the logits)."""
    logits = F.normalize(image_embeddings.to(weights.dtype), dim=-1) @ weights  # (N, C)
    k = min(5, weights.shape[1])
    top = logits.topk(k, dim=1).indices  # (N, k)
    labels = labels.to(top.device)
    hits = top == labels[:, None]
    predicted = top[:, 0]
    recalls = [(predicted[labels == c] == c).double().mean() for c in labels.unique()]
    return {
        "top1": 100.0 * hits[:, 0].double().mean().item(),
        "top5": 100.0 * hits.any(dim=1).double().mean().item(),
        "mean_per_class_recall": 100.0 * torch.stack(recalls).mean().item(),
    }
