"""Cross-modal retrieval on CIFAR-10 with class captions: ACMR (and CLIP) against CCA, on the same features.

1. Image features: the backbone of a SimCLR checkpoint (``--backbone``: a checkpoint or an export
   folder), or, without one, a tiny CNN pretrained here with SimCLR for ``--pretrain-epochs`` on the
   training images (no labels). Features of the 50,000 training and 10,000 test images, centre,
   normalised, no augmentation.
2. Text features: one caption per image drawn from templates and synonyms of its class ("a blurry
   photo of the pony"), as a bag-of-words vector (word frequencies over the training vocabulary).
3. Methods on the same (image, text) feature pairs, all scored by the same code
   (:func:`contrast.eval.retrieval.cross_modal_retrieval`): mAP over the whole ranking and mAP@R
   with label relevance, both directions, every test image and caption as a query:
   * CCA (``sklearn.cross_decomposition.CCA``, the classical baseline ACMR compares with);
   * ACMR: ``configs/acmr_features.yaml`` (label classifier, label-aware cross-modal triplet,
     modality adversary through gradient reversal);
   * CLIP: the same towers with the symmetric InfoNCE only (no labels).

    python benchmarks/bench_crossmodal.py                          # pretrain a tiny CNN, then all three
    python benchmarks/bench_crossmodal.py --backbone runs/simclr/checkpoints/last.ckpt

Data: ``$CONTRAST_DATA_DIR/cifar10-jpeg``. The feature pairs are written to ``--features-out`` in
the layout ``PairedData(dataset="features")`` reads, so they can be reused with ``contrast fit``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import append_results, markdown_table, quiet_trainer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def pretrain_backbone(epochs: int, subset: int | None, seed: int):
    """A tiny CNN pretrained with SimCLR on the CIFAR-10 training images (no labels used)."""
    import lightning as L

    from contrast.data import ContrastiveData
    from contrast.methods import SimCLR

    L.seed_everything(seed, verbose=False)
    data = ContrastiveData(
        dataset="cifar10_jpeg",
        recipe_q="simclr_cifar10",
        views="batched",
        cache="memory",
        image_size=32,
        batch_size=256,
        train_subset=subset,
        seed=seed,
    )
    model = SimCLR(
        backbone="tiny_cnn", projector_hidden=512, projector_dim=128, temperature=0.5, lr=0.12, num_classes=10
    )
    quiet_trainer(torch.cuda.is_available(), "32", max_epochs=epochs).fit(model, data)
    return model.backbone.eval()


def image_features(backbone, subset: int | None):
    from contrast.data import ContrastiveData
    from contrast.eval import extract_features

    data = ContrastiveData(dataset="cifar10_jpeg", recipe_q="simclr_cifar10", image_size=32, train_subset=subset)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    train = extract_features(backbone.to(device), data.eval_dataloader(True), device)
    test = extract_features(backbone, data.eval_dataloader(False), device)
    return train, test, list(data.split(True).classes)


def caption_features(labels_train, labels_test, classes, seed: int):
    """Bag-of-words vectors of one templated caption per image, and the captions."""
    from contrast.data.captions import class_caption
    from contrast.models.text import Vocabulary, tokenize

    g = torch.Generator().manual_seed(seed)
    captions = [[class_caption(classes[int(y)], g) for y in labels] for labels in (labels_train, labels_test)]
    vocabulary = Vocabulary.build(captions[0])

    def vectors(texts):
        out = torch.zeros(len(texts), len(vocabulary))
        for i, text in enumerate(texts):
            for word in tokenize(text):
                out[i, vocabulary.index.get(word, 1)] += 1
        return out / out.sum(1, keepdim=True)

    return vectors(captions[0]), vectors(captions[1]), captions


def score(image, text, labels) -> dict[str, float]:
    from contrast.eval.retrieval import cross_modal_retrieval

    ids = torch.arange(len(labels))
    return cross_modal_retrieval(image, text, ids, ids, labels, labels)


def run_cca(train, test, components: int, fit_rows: int, seed: int) -> tuple[dict, float]:
    from sklearn.cross_decomposition import CCA

    start = time.perf_counter()
    (xi, xt, _), (ti, tt, labels) = train, test
    rows = torch.randperm(len(xi), generator=torch.Generator().manual_seed(seed))[:fit_rows]
    cca = CCA(n_components=components, max_iter=1000)
    cca.fit(xi[rows].numpy(), xt[rows].numpy())
    image, text = cca.transform(ti.numpy(), tt.numpy())
    seconds = time.perf_counter() - start
    return score(torch.from_numpy(image).double(), torch.from_numpy(text).double(), labels), seconds


def run_config(features_dir: Path, out: Path, overrides: list[str]) -> tuple[dict, dict, float]:
    from contrast.eval import RetrievalCallback
    from contrast.train import lightning_cli

    start = time.perf_counter()
    cli = lightning_cli(
        [
            "fit",
            "--config",
            str(ROOT / "configs" / "acmr_features.yaml"),
            "--data.root",
            str(features_dir),
            "--run_dir",
            str(out),
            "--trainer.enable_progress_bar",
            "false",
            *overrides,
        ]
    )
    seconds = time.perf_counter() - start
    callback = next(cb for cb in cli.trainer.callbacks if isinstance(cb, RetrievalCallback))
    return callback.results, callback.initial, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", help="a SimCLR checkpoint or export folder (default: pretrain a tiny CNN here)")
    parser.add_argument("--pretrain-epochs", type=int, default=10)
    parser.add_argument("--pretrain-subset", type=int, default=None, help="training images for the pretraining")
    parser.add_argument("--epochs", type=int, default=20, help="epochs of the ACMR / CLIP runs")
    parser.add_argument("--cca-components", type=int, default=10)
    parser.add_argument("--cca-rows", type=int, default=10000, help="training pairs CCA is fitted on")
    parser.add_argument("--features-out", default="features/cifar10", help="where the feature pairs are written")
    parser.add_argument("--out", default="runs/bench_crossmodal", help="run folders of the ACMR / CLIP fits")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-clip", action="store_true")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()

    start = time.perf_counter()
    if args.backbone:
        from contrast.methods.crossmodal import _pretrained

        backbone, _ = _pretrained(args.backbone)
        source = f"SimCLR backbone from {args.backbone}"
    else:
        backbone = pretrain_backbone(args.pretrain_epochs, args.pretrain_subset, args.seed)
        source = f"tiny CNN pretrained here with SimCLR ({args.pretrain_epochs} epochs)"
    (train_x, train_y), (test_x, test_y), classes = image_features(backbone, None)
    train_t, test_t, _ = caption_features(train_y, test_y, classes, args.seed)
    features_dir = Path(args.features_out)
    features_dir.mkdir(parents=True, exist_ok=True)
    torch.save({"image": train_x, "text": train_t, "labels": train_y}, features_dir / "train.pt")
    torch.save({"image": test_x, "text": test_t, "labels": test_y}, features_dir / "test.pt")
    prepared = time.perf_counter() - start
    print(f"features: image {tuple(train_x.shape)}, text {tuple(train_t.shape)}; {prepared:.0f} s", flush=True)

    results = {}
    results["CCA"], cca_seconds = run_cca(
        (train_x, train_t, train_y), (test_x, test_t, test_y), args.cca_components, args.cca_rows, args.seed
    )
    print("CCA", results["CCA"], flush=True)
    acmr, untrained, acmr_seconds = run_config(
        features_dir, Path(args.out) / "acmr", ["--trainer.max_epochs", str(args.epochs)]
    )
    results["ACMR (acmr_features.yaml)"], results["untrained towers"] = acmr, untrained
    seconds = {"CCA": cca_seconds, "ACMR (acmr_features.yaml)": acmr_seconds, "untrained towers": 0.0}
    if not args.no_clip:
        clip, _, clip_seconds = run_config(
            features_dir,
            Path(args.out) / "clip",
            ["--trainer.max_epochs", str(args.epochs), "--model.init_args.objectives", "{clip: 1.0}"],
        )
        results["CLIP objective (no labels)"], seconds["CLIP objective (no labels)"] = clip, clip_seconds

    header = ["method", "image→text mAP", "text→image mAP", "image→text mAP@R", "text→image mAP@R", "seconds"]
    rows = [
        [
            name,
            f"{r['i2t/mAP']:.2f}",
            f"{r['t2i/mAP']:.2f}",
            f"{r['i2t/mAP@R']:.2f}",
            f"{r['t2i/mAP@R']:.2f}",
            f"{seconds[name]:.0f}" if seconds[name] else "–",
        ]
        for name, r in results.items()
    ]
    table = markdown_table(header, rows)
    acmr_wins = all(acmr[f"{d}/mAP"] > results["CCA"][f"{d}/mAP"] for d in ("i2t", "t2i"))
    verdict = f"ACMR mAP above CCA's in both directions: {'yes' if acmr_wins else 'NO'}"
    print(table)
    print(verdict)
    if not args.no_append:
        append_results(
            "Cross-modal retrieval on CIFAR-10 class captions: ACMR and CLIP vs CCA (same features)",
            "cuda" if torch.cuda.is_available() else "cpu",
            table,
            f"Image features: {source}, {train_x.shape[1]}-d; text: one templated class caption per image as "
            f"a {train_t.shape[1]}-word bag-of-words vector. CCA: {args.cca_components} components fitted on "
            f"{args.cca_rows} training pairs. ACMR / CLIP: {args.epochs} epochs on all 50,000 pairs. Scored on the "
            "10,000 test pairs, every image and caption a query, label relevance: mAP over the whole ranking and "
            f"mAP@R. {verdict}. Feature preparation (pretraining included): {prepared:.0f} s.",
        )


if __name__ == "__main__":
    main()
