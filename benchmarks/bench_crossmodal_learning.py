"""What the new text and image towers learn, on CIFAR-10 with class captions, each pair of runs on the
same budget, side by side, over several seeds (mean ± sd):

A. Subword against word text towers on test captions of words the training never saw, two ways:
   * held-out synonyms: the training captions name each class by all its synonyms but one ("a photo of
     a plane"), the test captions by the held-out one only ("a close-up photo of the jet");
   * plurals: the training captions name each class by its words in the singular, the test captions by
     their plurals ("a photo of a planes", "… puppies", "… pickup trucks"; the training templates,
     only the noun changed, irregular plurals as English has them).
   The word vocabulary reads an unseen word as unknown; the BPE vocabulary cuts it into pieces it has
   seen ("planes" -> "plane" + "s"), which can carry its meaning only where the pieces do: a synonym
   that shares no piece with a training word ("jet" for "plane") is as unknown to a tower trained from
   scratch over either vocabulary (a pretrained text tower, ``hf/``, is what reads those).
B. LiT (a frozen image tower pretrained with SimCLR on the training images, exported with ``contrast
   export``, and a text tower trained on it) against both towers trained from scratch, on the same
   captions (every test word seen in training) and epochs.

Scores: R@1 both ways with class relevance (a caption is a hit for every image of its class: the
question both towers answer here), and mAP with label relevance, on 1,000 test images and one caption
each. Sources are registered in ``PAIR_SOURCES`` (one function, one line each).

    python benchmarks/bench_crossmodal_learning.py                # 3 seeds, about 10 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import append_results, markdown_table, quiet_trainer  # noqa: E402

from contrast.data.captions import CIFAR_TEMPLATES, CIFAR_WORDS  # noqa: E402
from contrast.data.datasets import Subset, decode_all  # noqa: E402
from contrast.data.pair_sources import PAIR_SOURCES, PairedSplit  # noqa: E402
from contrast.data.sources import load_split  # noqa: E402
from contrast.seeds import derive_seed  # noqa: E402

IRREGULAR = {"puppy": "puppies", "pony": "ponies", "lorry": "lorries", "deer": "deer", "aircraft": "aircraft"}


def plural(words: str) -> str:
    """The English plural of a class word (of a compound's last word)."""
    *head, last = words.split(" ")
    return " ".join([*head, IRREGULAR.get(last, last + "s")])


def held_out_synonym(words: tuple[str, ...], train: bool) -> tuple[str, ...]:
    """All a class's synonyms (``CIFAR_WORDS``) but the last in training, the last alone in the test."""
    return words if len(words) == 1 else words[:-1] if train else words[-1:]


def plurals(words: tuple[str, ...], train: bool) -> tuple[str, ...]:
    """A class's words in the singular in training, in the plural in the test."""
    return words if train else tuple(plural(w) for w in words)


def class_captions(words_of):
    """A pair source: CIFAR-10 with class captions (a template and one of the class's words, as
    ``words_of(its words, train)`` gives them for the split); an image's key is its class."""

    def source(root, train: bool, s) -> PairedSplit:
        base = load_split("cifar10_jpeg", root, train, image_size=32)
        subset = s.train_subset if train else s.eval_subset
        if subset is not None and subset < len(base):
            base = Subset(base, subset)
        decoded = decode_all(base, 0, "cifar10")
        classes, labels = list(decoded.classes), decoded.labels
        g = torch.Generator().manual_seed(derive_seed(s.seed, "captions", train))
        captions = []
        for y in labels.tolist():
            words = words_of(CIFAR_WORDS[classes[y]], train)
            for _ in range(s.captions_per_image):
                template = CIFAR_TEMPLATES[int(torch.randint(len(CIFAR_TEMPLATES), (1,), generator=g))]
                captions.append(template.format(words[int(torch.randint(len(words), (1,), generator=g))]))
        text_image = torch.arange(len(labels)).repeat_interleave(s.captions_per_image)
        return PairedSplit(decoded.images, labels, text_image, captions, image_keys=labels.clone())

    return source


PAIR_SOURCES["cifar10_unseen_synonyms"] = class_captions(held_out_synonym)
PAIR_SOURCES["cifar10_unseen_plurals"] = class_captions(plurals)
PAIR_SOURCES["cifar10_class_captions"] = class_captions(lambda words, train: words)  # every word in both splits


def train_and_score(args, seed: int, dataset: str, tokenizer: str, **model_args) -> dict:
    from contrast.data import PairedData
    from contrast.eval.crossmodal import retrieval_scores
    from contrast.methods import CrossModal

    torch.manual_seed(seed)
    data = PairedData(
        dataset=dataset,
        batch_size=256,
        train_subset=args.subset,
        eval_subset=1000,
        captions_per_image=2,
        eval_captions_per_image=1,
        tokenizer=tokenizer,
        vocab_size=600,
        seed=seed,
    )
    model = CrossModal(
        **{"backbone": "tiny_cnn", "text_encoder": "bag", "embed_dim": 64, "lr": 3e-3, **model_args},
        **data.facts(),
    )
    start = time.perf_counter()
    quiet_trainer(False, "32", max_epochs=args.epochs).fit(model, data)
    seconds = time.perf_counter() - start
    return {**retrieval_scores(model.eval(), data), "seconds": seconds}


def pretrained_image_tower(args, folder: Path) -> Path:
    """A tiny CNN pretrained with SimCLR on the training images (no labels, no captions), exported by
    ``contrast export`` (its backbone and pixel normalisation); the folder."""
    import lightning as L

    from contrast.data import ContrastiveData
    from contrast.methods import SimCLR

    L.seed_everything(args.seed, verbose=False)
    data = ContrastiveData(
        dataset="cifar10_jpeg",
        recipe_q="simclr_cifar10",
        views="batched",
        cache="memory",
        image_size=32,
        batch_size=256,
        train_subset=args.subset,
        seed=args.seed,
    )
    model = SimCLR(
        backbone="tiny_cnn", channels_last=True, projector_hidden=512, temperature=0.5, lr=0.12, num_classes=10
    )
    trainer = quiet_trainer(False, "32", max_epochs=args.pretrain_epochs)
    trainer.fit(model, data)
    path = folder / "simclr.ckpt"
    trainer.save_checkpoint(path)
    from contrast.export import export_backbone

    export_backbone(path, folder / "simclr", recipe="simclr_cifar10")  # the normalisation of its views
    return folder / "simclr"


def main() -> None:
    import statistics

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=4, help="two-tower training epochs of every run")
    parser.add_argument("--subset", type=int, default=10000, help="training images")
    parser.add_argument("--pretrain-epochs", type=int, default=30, help="SimCLR epochs of LiT's image tower")
    parser.add_argument("--seeds", default="0,1,2", help="seeds of the two-tower runs (the SimCLR tower: seed 0)")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    args.seed = 0  # the SimCLR pretraining's
    seeds = [int(x) for x in args.seeds.split(",")]
    settings = {
        "A, held-out synonyms: word vocabulary": ("cifar10_unseen_synonyms", "words", {}),
        "A, held-out synonyms: BPE vocabulary": ("cifar10_unseen_synonyms", "bpe", {}),
        "A, plurals: word vocabulary": ("cifar10_unseen_plurals", "words", {}),
        "A, plurals: BPE vocabulary": ("cifar10_unseen_plurals", "bpe", {}),
        "B: both towers from scratch": ("cifar10_class_captions", "words", {}),
    }
    runs: dict[str, list[dict]] = {name: [] for name in [*settings, "B: LiT, SimCLR image tower frozen"]}
    with tempfile.TemporaryDirectory() as tmp:
        simclr = pretrained_image_tower(args, Path(tmp))
        settings["B: LiT, SimCLR image tower frozen"] = (
            "cifar10_class_captions",
            "words",
            {"image_weights": str(simclr), "freeze_image": True},
        )
        for seed in seeds:
            for name, (dataset, tokenizer, extra) in settings.items():
                runs[name].append(train_and_score(args, seed, dataset, tokenizer, **extra))
                r = runs[name][-1]
                print(f"seed {seed} {name}: t2i R@1 {r['t2i/R@1']:.1f} i2t R@1 {r['i2t/R@1']:.1f}", flush=True)

    def spread(name: str, key: str) -> str:
        values = [r[key] for r in runs[name]]
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):.1f} ± {sd:.1f}"

    keys = ("t2i/R@1", "i2t/R@1", "t2i/mAP", "i2t/mAP")
    rows = [
        [name, *(spread(name, key) for key in keys), f"{statistics.mean(r['seconds'] for r in runs[name]):.0f}"]
        for name in runs
    ]
    table = markdown_table(["run", "text→image R@1", "image→text R@1", "t2i mAP", "i2t mAP", "train s"], rows)
    print(table)
    if not args.no_append:
        notes = (
            f"CIFAR-10 ({args.subset:,} training images, 2 captions each; 1,000 test images, 1 caption each), tiny "
            f"CNN image tower, bag-of-words text tower, embed 64, clip objective, AdamW 3e-3, batch 256, "
            f"{args.epochs} epochs each, mean ± sd over seeds {args.seeds}. A: test captions name each class by "
            "the synonym held out of training, or by the plural of a training word. B: every test word seen in "
            f"training; LiT's image tower: SimCLR, {args.pretrain_epochs} epochs on the same training images "
            "(seed 0), exported, frozen. Relevance: the class (R@1 and mAP)."
        )
        append_results("Cross-modal learning: subword text on unseen words, LiT", "cpu", table, notes)


if __name__ == "__main__":
    main()
