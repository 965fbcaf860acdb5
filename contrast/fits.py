"""Does this checkpoint fit this config? The one check, used by ``fit`` (resume), ``retrieve``,
``knn`` and ``probe``; and the facts of the data a model is built for, the one channel by which
they reach it (the command line links ``data.facts()`` into the model's arguments of these names).
"""

from __future__ import annotations

from typing import Any

from contrast.normalization import Normalization

# What a model needs to know of its data (channels, classes, vocabulary, input widths): the data
# modules' facts(), linked into the model's arguments of these names, hence recorded once, among
# the checkpoint's hyper-parameters.
DATA_FACTS = ("in_channels", "num_classes", "vocabulary", "image_dim", "text_dim", "normalization")
# How each fact is said in an error: (the part of the model that takes it, the words for a value).
FACT_WORDS = {
    "in_channels": ("backbone", "{}-channel images"),
    "num_classes": ("label classifier", "{} classes"),
    "vocabulary": ("text tower", "a vocabulary of {}"),
    "image_dim": ("image tower", "image vectors of width {}"),
    "text_dim": ("text tower", "text vectors of width {}"),
    "normalization": ("backbone", "pixels normalised with {}"),
}
# Settings that change how a run executes, not what it computes: they may differ on resume.
EXECUTION_ONLY = {
    "model": {
        "compile",
        "channels_last",
        "image_weights",
        "grad_checkpointing",
        "accumulate_pairs",
        "open_clip_weights",
    },
    "data": {"root", "num_workers", "eval_batch_size", "download", "cache"},
}


def checkpoint_differences(
    checkpoint: dict[str, Any], model=None, data=None, facts: tuple[str, ...] = DATA_FACTS, seed: tuple | None = None
) -> list[str]:
    """The one answer to "does this checkpoint fit this config?": a line for every difference.

    * ``model`` (``fit``): the model the config builds; every hyper-parameter but the execution-only
      ones, the class too ('model.lr: checkpoint 0.06, config 0.1'). The data's facts are among them.
    * ``data`` without ``model`` (``retrieve``, ``knn``, ``probe``): the data's ``facts`` against the
      checkpoint's record of them ('its backbone takes 1-channel images, but dataset 'mnist' has ...').
    * ``data`` with ``model``: also the data module's arguments ('data.batch_size: ...').
    * ``seed``: (the checkpoint's run's ``seed_everything``, the config's); None where unknown.
    """
    from contrast.methods.crossmodal import crossmodal_hparams

    saved = dict(checkpoint.get("hyper_parameters", {}))
    converted = crossmodal_hparams(checkpoint)  # older two-tower checkpoints: read in the current form
    if converted is not None:
        saved = converted | {k: v for k, v in saved.items() if k.startswith("_")}
    differences = []
    if model is None:
        if data is not None:
            current = data.facts()
            for key in facts:
                if key in saved and key in current and not _same(saved[key], current[key]):
                    owner, words = FACT_WORDS[key]
                    differences.append(
                        f"its {owner} takes {words.format(_size(saved[key]))}, but dataset "
                        f"{getattr(data, 'dataset', '?')!r} has {words.format(_size(current[key]))}"
                    )
        return differences
    if seed is not None and seed[0] is not None and seed[0] != seed[1]:
        differences.append(f"seed_everything: checkpoint {seed[0]!r}, config {seed[1]!r}")
    saved_class = saved.pop("_class_path", None)
    model_class = f"{type(model).__module__}.{type(model).__qualname__}"
    if (
        saved_class is not None
        and saved_class != model_class
        and saved_class.rsplit(".", 1)[-1] != type(model).__name__
    ):
        differences.append(f"model class: checkpoint {saved_class}, config {model_class}")
    pairs = [("model", saved, dict(model.hparams))]
    if data is not None and "datamodule_hyper_parameters" in checkpoint:
        pairs.append(("data", dict(checkpoint["datamodule_hyper_parameters"]), dict(data.hparams)))
    for what, old, new in pairs:
        for key in sorted(set(old) | set(new)):
            if key.startswith("_") or key in EXECUTION_ONLY[what]:
                continue
            before, now = old.get(key, "<unset>"), new.get(key, "<unset>")
            if key not in old and _default(type(model) if what == "model" else type(data), key, now):
                continue  # a setting newer than the checkpoint, left at its default: the run it made
            if key not in old and what == "model" and key in DATA_FACTS and data is not None:
                continue  # a fact recorded since the checkpoint was written: the data's arguments are compared
            if not _same(before, now):
                differences.append(f"{what}.{key}: checkpoint {_shown(before)}, config {_shown(now)}")
    return differences


def _default(cls: type, key: str, value) -> bool:
    """``value`` is the default of ``cls``'s constructor argument ``key`` (searched along its bases)."""
    import inspect

    from contrast.checks import constructor_parameters

    parameter = constructor_parameters(cls).get(key)
    return (
        parameter is not None and parameter.default is not inspect.Parameter.empty and _same(parameter.default, value)
    )


def _same(a, b) -> bool:
    """Equal as configuration values: a tuple and the list it was saved as are the same; two pixel
    normalisations by their one rule (:meth:`Normalization.same`)."""
    if _is_normalization(a) and _is_normalization(b):
        return Normalization.of(a).same(Normalization.of(b))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _is_normalization(value) -> bool:
    return isinstance(value, dict) and set(value) == {"mean", "std"}


def _size(value):
    """A fact's value as said in an error: a vocabulary by its size, a normalisation in words."""
    if _is_normalization(value):
        return Normalization.of(value)
    if isinstance(value, str) and value.startswith("{"):  # a BPE tokenizer's JSON: its pieces
        from contrast.models.text import vocabulary_of

        return f"{len(vocabulary_of(value))} BPE pieces"
    return f"{len(value)} words" if isinstance(value, (list, tuple)) else value


def _shown(value) -> str:
    """A setting in a difference line; a long list (a vocabulary) by its length and first items."""
    if isinstance(value, (list, tuple)) and len(value) > 8:
        return f"[{', '.join(repr(v) for v in value[:4])}, ... {len(value)} items]"
    if isinstance(value, str) and len(value) > 200:  # a tokenizer's JSON
        return f"<{len(value)} characters of JSON>"
    return repr(value)
