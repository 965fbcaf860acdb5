"""CLIP_benchmark and open_clip score a contrast two-tower model through the adapter and get
contrast's own numbers: the same class weights as open_clip's build_zero_shot_classifier, the same
top-1 / top-5 / mean per-class recall as CLIP_benchmark's zeroshot_classification.evaluate."""

from __future__ import annotations

import torch

from contrast.data import PairedData
from contrast.eval.zeroshot import class_weights, zero_shot_scores
from contrast.integrations.clip_benchmark import load
from contrast.methods import CrossModal
from contrast.models.text import vocabulary_of
from tests.conftest import require

CLASSES = ["disc", "square", "diamond", "triangle", "plus", "cross"]
TEMPLATES = ["a {c}.", "a small {c}.", "a large red {c} top left"]


class Pictures(torch.utils.data.Dataset):
    """uint8 pictures with labels and class names, as CLIP_benchmark's datasets give them."""

    def __init__(self, n: int = 60) -> None:
        g = torch.Generator().manual_seed(0)
        self.images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
        self.labels = torch.arange(n) % len(CLASSES)
        self.classes = CLASSES

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.images[i], int(self.labels[i])


def _checkpoint(tmp_path):
    torch.manual_seed(0)
    data = PairedData(train_size=64, test_size=16, batch_size=8)
    model = CrossModal(backbone="tiny_cnn", embed_dim=16, head_hidden=32, **data.facts())
    path = tmp_path / "two_towers.ckpt"
    torch.save(
        {
            "state_dict": model.state_dict(),
            "hyper_parameters": dict(model.hparams),
            "datamodule_hyper_parameters": dict(data.hparams),
        },
        path,
    )
    return path


def _accuracy(output, target, topk=(1,)):
    """CLIP_benchmark's ``accuracy`` with the fix of its issue #147: under NumPy 2 its ``float()`` of a
    one-element array raises ("only 0-dimensional arrays can be converted to Python scalars")."""
    pred = output.topk(max(topk), 1, True, True)[1].t()
    correct = pred.eq(target.view(1, -1).expand_as(pred))
    return [float(correct[:k].reshape(-1).float().sum()) / len(target) for k in topk]


def test_clip_benchmark_scores_the_adapter_with_contrasts_numbers(tmp_path, monkeypatch):
    zeroshot = require("clip_benchmark.metrics.zeroshot_classification")
    monkeypatch.setattr(zeroshot, "accuracy", _accuracy)
    model, transform, tokenizer = load(_checkpoint(tmp_path))
    dataset = Pictures()
    loader = torch.utils.data.DataLoader(dataset, batch_size=16)
    theirs = zeroshot.evaluate(model, loader, tokenizer, CLASSES, TEMPLATES, "cpu", amp=False)
    weights = class_weights(lambda prompts: model.encode_text(tokenizer(prompts)), CLASSES, TEMPLATES)
    with torch.no_grad():
        embeddings = model.encode_image(transform(dataset.images))
    ours = zero_shot_scores(embeddings, dataset.labels, weights)
    assert abs(theirs["acc1"] * 100 - ours["top1"]) < 1e-9 and abs(theirs["acc5"] * 100 - ours["top5"]) < 1e-9
    assert abs(theirs["mean_per_class_recall"] * 100 - ours["mean_per_class_recall"]) < 1e-9


def test_open_clips_class_weights_through_the_adapter_are_contrasts(tmp_path):
    open_clip = require("open_clip")
    model, _, tokenizer = load(_checkpoint(tmp_path))
    theirs = open_clip.build_zero_shot_classifier(
        model, tokenizer, CLASSES, [lambda c, t=t: t.format(c=c) for t in TEMPLATES], num_classes_per_batch=4
    )
    ours = class_weights(lambda prompts: model.encode_text(tokenizer(prompts)), CLASSES, TEMPLATES)
    torch.testing.assert_close(theirs, ours, rtol=1e-5, atol=1e-6)


def test_the_tokenizer_is_the_checkpoints_vocabulary(tmp_path):
    path = _checkpoint(tmp_path)
    model, transform, tokenizer = load(path)
    vocabulary = vocabulary_of(torch.load(path, weights_only=True)["hyper_parameters"]["vocabulary"])
    assert torch.equal(
        tokenizer(["a red disc", "a large blue square"]),
        vocabulary.encode_batch(["a red disc", "a large blue square"], 32),
    )
    assert transform(torch.zeros(3, 40, 50, dtype=torch.uint8)).shape == (3, 32, 32)


class Captioned(torch.utils.data.Dataset):
    """(uint8 picture, [its captions]), CLIP_benchmark's retrieval datasets' items."""

    def __init__(self, n: int = 40) -> None:
        g = torch.Generator().manual_seed(1)
        self.images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
        words = ["red", "blue", "disc", "square", "large", "small", "top", "left"]
        picks = torch.randint(0, len(words), (n, 2, 4), generator=g)
        self.captions = [[" ".join(words[int(i)] for i in row) for row in pair] for pair in picks]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.images[i], self.captions[i]


def test_clip_benchmark_retrieval_through_the_adapter_is_contrasts_recall(tmp_path):
    retrieval = require("clip_benchmark.metrics.zeroshot_retrieval")
    from contrast.eval.retrieval import cross_modal_retrieval

    model, _, tokenizer = load(_checkpoint(tmp_path))
    dataset = Captioned()
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=8, collate_fn=lambda b: (torch.stack([x for x, _ in b]), [t for _, t in b])
    )
    theirs = retrieval.evaluate(model, loader, tokenizer, "cpu", amp=False, recall_k_list=[1, 5])
    captions = [c for pair in dataset.captions for c in pair]
    with torch.no_grad():
        images, texts = model.encode_image(dataset.images), model.encode_text(tokenizer(captions))
    ours = cross_modal_retrieval(
        images, texts, torch.arange(len(dataset)), torch.arange(len(dataset)).repeat_interleave(2), ks=(1, 5)
    )
    for k in (1, 5):  # theirs: fractions, "text retrieval" = image queries; ours: percent
        assert abs(100 * theirs[f"text_retrieval_recall@{k}"] - ours[f"i2t/R@{k}"]) < 1e-4
        assert abs(100 * theirs[f"image_retrieval_recall@{k}"] - ours[f"t2i/R@{k}"]) < 1e-4
    from contrast.eval.crossmodal import clip_benchmark_keys

    named = clip_benchmark_keys(ours, ks=(1, 5))  # what contrast retrieve writes beside its own keys
    assert named.keys() == {k for k in theirs if "recall" in k}
    for key, value in named.items():
        assert abs(value - theirs[key]) < 1e-6, key
