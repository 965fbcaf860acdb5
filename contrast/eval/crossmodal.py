"""Cross-modal retrieval of a two-tower model on its data's test split, and its Lightning callback.

The model gives ``embed_images`` / ``embed_texts``; the data gives ``eval_loaders()`` (test images,
test texts, in order) and ``split(False)`` (which image each text belongs to, which images count as
the same, the labels). Scores: R@1/5/10 and median rank both ways with pair identity, and, with
labels, mAP and mAP@R both ways with label relevance (:func:`contrast.eval.retrieval.cross_modal_retrieval`).
"""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info
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
        if f"{key}/mAP" in scores:
            text += f" mAP {scores[f'{key}/mAP']:.1f}"
        parts.append(text)
    return "; ".join(parts)


class RetrievalCallback(L.Callback):
    """Every ``every_n_epochs`` epochs (and after the last), embed the test split and log retrieval
    both ways (``retrieval/i2t/R@5``, ...). ``baseline=True`` also scores the untrained model once
    at a fresh start; the figures are kept in the checkpoint, so a resumed run reprints them."""

    def __init__(self, every_n_epochs: int = 1, baseline: bool = True, ks: tuple[int, ...] = (1, 5, 10)) -> None:
        if isinstance(every_n_epochs, bool) or not isinstance(every_n_epochs, int) or every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be a positive int, got {every_n_epochs!r}")
        if not ks or any(not isinstance(k, int) or k < 1 for k in ks):
            raise ValueError(f"ks must be positive ints, got {ks!r}")
        self.every_n_epochs, self.baseline, self.ks = every_n_epochs, baseline, tuple(ks)
        self.results: dict[str, float] = {}
        self.initial: dict[str, float] = {}

    def state_dict(self) -> dict:
        return {"initial": dict(self.initial)}

    def load_state_dict(self, state_dict: dict) -> None:
        self.initial = dict(state_dict.get("initial", {}))

    def _check(self, trainer: L.Trainer, module) -> None:
        if not hasattr(trainer.datamodule, "eval_loaders") or not hasattr(module, "embed_texts"):
            raise ValueError("RetrievalCallback needs a two-tower model (CrossModal) on paired data (PairedData)")

    def on_fit_start(self, trainer: L.Trainer, module) -> None:
        self._check(trainer, module)
        if self.baseline and trainer.ckpt_path is None:
            self.initial = retrieval_scores(module, trainer.datamodule, self.ks)
        if self.initial:
            rank_zero_info(f"retrieval of the untrained model: {format_scores(self.initial, self.ks)}")

    def on_train_epoch_end(self, trainer: L.Trainer, module) -> None:
        epoch = trainer.current_epoch + 1
        last = trainer.max_epochs is not None and epoch >= trainer.max_epochs
        if epoch % self.every_n_epochs and not last:
            return
        self.results = retrieval_scores(module, trainer.datamodule, self.ks)
        for key, value in self.results.items():
            module.log(f"retrieval/{key}", value, rank_zero_only=True)
        rank_zero_info(f"epoch {epoch}: {format_scores(self.results, self.ks)}")

    def report(self) -> str:
        """The final figures next to the untrained model's."""
        lines = [f"retrieval on the test split (trained):   {format_scores(self.results, self.ks)}"]
        if self.initial:
            lines.append(f"retrieval on the test split (untrained): {format_scores(self.initial, self.ks)}")
        return "\n".join(lines)

    def on_fit_end(self, trainer: L.Trainer, module) -> None:
        if self.results and trainer.is_global_zero:
            print(self.report(), flush=True)
