"""Zero-shot classification against explicit formulas, open_clip's class weights, scikit-learn's
balanced accuracy, and the command on a checkpoint."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from contrast.checks import ConfigError
from contrast.eval.zeroshot import TEMPLATES, class_weights, load_templates, zero_shot_scores
from tests.conftest import require


def test_the_shipped_templates_are_openais():
    assert len(load_templates("cifar10")) == 18 and len(load_templates("imagenet1k")) == 80
    assert load_templates("imagenet1k")[:2] == ["a bad photo of a {c}.", "a photo of many {c}."]
    open_clip_metadata = require("open_clip.zero_shot_metadata")
    assert load_templates("imagenet1k") == [t("{c}") for t in open_clip_metadata.OPENAI_IMAGENET_TEMPLATES]
    assert json.loads(TEMPLATES.read_text())["cifar10"][0] == "a photo of a {c}."


def test_class_weights_are_the_renormalised_mean_of_normalised_prompt_embeddings():
    g = torch.Generator().manual_seed(0)
    table = {}  # prompt -> a fixed random embedding, in float64

    def embed(prompts):
        return torch.stack([table.setdefault(p, torch.randn(6, generator=g, dtype=torch.float64)) for p in prompts])

    classes, templates = ["cat", "dog", "frog"], ["a {c}.", "the {c}!", "my {c}"]
    weights = class_weights(embed, classes, templates)
    assert weights.shape == (6, 3)
    for j, name in enumerate(classes):
        rows = [table[t.format(c=name)] for t in templates]
        mean = sum(r / r.norm() for r in rows) / len(rows)
        torch.testing.assert_close(weights[:, j], mean / mean.norm(), rtol=1e-12, atol=1e-12)


def test_scores_against_explicit_top_k_and_scikit_learns_balanced_accuracy():
    metrics = require("sklearn.metrics")
    g = torch.Generator().manual_seed(1)
    weights = F.normalize(torch.randn(8, 7, generator=g, dtype=torch.float64), dim=0)
    images, labels = torch.randn(200, 8, generator=g, dtype=torch.float64), torch.randint(0, 7, (200,), generator=g)
    scores = zero_shot_scores(images, labels, weights)
    logits = F.normalize(images, dim=1) @ weights
    ranked = logits.argsort(dim=1, descending=True)
    assert scores["top1"] == pytest.approx(100 * (ranked[:, 0] == labels).double().mean().item())
    assert scores["top5"] == pytest.approx(100 * (ranked[:, :5] == labels[:, None]).any(1).double().mean().item())
    balanced = metrics.balanced_accuracy_score(labels.numpy(), ranked[:, 0].numpy())
    assert scores["mean_per_class_recall"] == pytest.approx(100 * balanced)


def test_bad_template_files_are_named(tmp_path):
    with pytest.raises(ConfigError, match="has no templates for 'nope'"):
        load_templates("nope")
    bad = tmp_path / "t.json"
    bad.write_text(json.dumps({"x": ["a photo of a thing."]}))
    with pytest.raises(ConfigError, match=r"must be a list of strings that hold \{c\}"):
        load_templates("x", bad)
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="is not a readable JSON file"):
        load_templates("x", bad)
