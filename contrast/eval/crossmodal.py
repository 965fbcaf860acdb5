"""Cross-modal retrieval of a two-tower model on its data's test split.

The model gives ``embed_images`` / ``embed_texts``; the data gives ``eval_loaders()`` (test images,
test texts, in order) and ``split(False)`` (which image each text belongs to, which images count as
the same, the labels). Scores: R@1/5/10 and median rank both ways with pair identity, and, with
labels, mAP and mAP@R both ways with label relevance (:func:`contrast.eval.retrieval.cross_modal_retrieval`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from contrast.eval.retrieval import cross_modal_retrieval


@torch.no_grad()
def embed_test_split(model, data, device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
    """(image embeddings (N, E), text embeddings (M, E)) of the data's test split, in eval mode."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    images, texts = data.eval_loaders()
    try:
        image = torch.cat([model.embed_images(x.to(device)).float().cpu() for x in images])
        text = torch.cat([model.embed_texts(t.to(device)).float().cpu() for t in texts])
    finally:
        model.train(was_training)
    return image, text


def retrieval_scores(model, data, ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
    """``i2t/R@K``, ``i2t/MedR``, ``t2i/...`` and, with labels, ``i2t/mAP``, ``i2t/mAP@R``, ... on the test split."""
    image, text = embed_test_split(model, data)
    split = data.split(False)
    labelled = bool((split.labels >= 0).all())
    return cross_modal_retrieval(
        image,
        text,
        split.image_keys,
        split.text_keys,
        split.labels if labelled else None,
        split.text_labels if labelled else None,
        ks=ks,
    )


def format_scores(scores: dict[str, float], ks: tuple[int, ...] = (1, 5, 10)) -> str:
    """'image→text R@1 a R@5 b R@10 c MedR m; text→image ...' (and mAP when present)."""
    parts = []
    for key, name in (("i2t", "image→text"), ("t2i", "text→image")):
        text = f"{name} " + " ".join(f"R@{k} {scores[f'{key}/R@{k}']:.1f}" for k in ks)
        text += f" MedR {scores[f'{key}/MedR']:g}"
        if f"{key}/skipped" in scores:  # left out of every figure (no relevant item)
            text += f" ({scores[f'{key}/skipped']:.0f} queries without a relevant item left out)"
        if f"{key}/mAP" in scores:
            text += f" mAP {scores[f'{key}/mAP']:.1f}"
        parts.append(text)
    return "; ".join(parts)


def clip_benchmark_keys(scores: dict[str, float], ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
    """The same recalls under CLIP_benchmark's names and scale: ``image_retrieval_recall@k`` is
    text→image, ``text_retrieval_recall@k`` image→text, fractions in [0, 1] (a hit when any relevant
    item is in the top k, as ours)."""
    keys = {}
    for k in ks:
        keys[f"image_retrieval_recall@{k}"] = scores[f"t2i/R@{k}"] / 100
        keys[f"text_retrieval_recall@{k}"] = scores[f"i2t/R@{k}"] / 100
    return keys
