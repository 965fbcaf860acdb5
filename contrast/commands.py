"""What each ``contrast`` command does, once its command line is parsed (``contrast.cli``)."""

from __future__ import annotations

import argparse
import sys

from contrast.errors import report


def run_lightning(argv: list[str]) -> int:
    from contrast import distributed
    from contrast.checkpoint import Interrupted
    from contrast.train import lightning_cli, summary

    try:
        cli = lightning_cli(argv)
        if argv[0] == "fit":
            print(summary(cli), flush=True)
        return 0
    except Interrupted as stop:
        print(f"contrast {argv[0]}: {stop}; resume with the same command and --ckpt_path last", file=sys.stderr)
        return 128 + stop.signum
    except Exception as error:  # noqa: BLE001
        return report(error, argv[0])
    finally:
        distributed.close()


def _knn(args: argparse.Namespace, overrides: list[str]) -> int:
    from contrast.eval import KNNEvaluator

    # the arguments are checked before any feature is extracted
    knn = KNNEvaluator(k=args.k, temperature=args.temperature, backend=args.backend, weighting=args.weighting)
    data, train, test = _checkpoint_features(args)
    result = knn.fit(*train, copy=False).score(*test)  # the bank normalised in place: its memory once
    print(f"{knn.describe()} on {data.dataset}: top-1 {result['top1']:.2f}%  top-5 {result['top5']:.2f}%")
    return 0


def _probe(args: argparse.Namespace, overrides: list[str]) -> int:
    from dataclasses import replace

    from contrast.eval.linear import linear_probe, linear_sgd
    from contrast.eval.protocol import evaluation_crop

    if args.mode == "lbfgs":
        data, train, test = _checkpoint_features(args)
        result = linear_probe(*train, *test)
        print(
            f"linear probe (L-BFGS on fixed backbone features, {evaluation_crop(data.recipe_q)}, standardised) "
            f"on {data.dataset}: "
            f"top-1 {result.top1:.2f}% (weight decay {result.weight_decay:g}, chosen on a held-out tenth of the "
            "training set)"
        )
        return 0
    if args.storage == "disk" and not args.features_dir:
        raise ValueError("--storage disk needs --features_dir: the folder the feature files are written to")
    data, train, test = _checkpoint_features(args, storage=args.storage)
    import torch

    from contrast.checkpoint import sha256

    # What the features are of, recorded in --state: a head is never resumed on other features.
    source = {"checkpoint sha256": sha256(args.ckpt), "dataset": data.dataset, "root": str(data.root)}
    source |= {"test crop": evaluation_crop(data.recipe_q), "train images": len(train[1]), "test images": len(test[1])}

    result = linear_sgd(
        *train,
        *test,
        num_classes=data.num_classes or None,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.sgd_batch_size,
        head_norm=not args.no_head_norm,
        device="cuda" if torch.cuda.is_available() else "cpu",
        state=args.state,
        source=source,
    )
    where = "float16 in memory" if args.storage == "memory" else f"float16 on disk in {args.features_dir}"
    test = evaluation_crop(data.recipe_q)
    protocol = replace(result.protocol, inputs=f"fixed backbone features ({where})", test=test)
    print(f"linear evaluation ({protocol}) on {data.dataset}: top-1 {result.top1:.2f}%  top-5 {result.top5:.2f}%")
    return 0


def _pictures(args: argparse.Namespace, overrides: list[str]) -> int:
    from contrast.checks import int_at_least
    from contrast.eval.pictures import draw_from_data

    for name in ("queries", "k", "points"):
        int_at_least(name, getattr(args, name), 1)
    data, train, test = _checkpoint_features(args)
    title = f"{data.dataset}, backbone features"
    paths = draw_from_data(
        args.out, data, train, test, queries=args.queries, k=args.k, method=args.map, points=args.points, title=title
    )
    print(
        f"wrote {paths['neighbours']} ({paths['k']} nearest training images of {paths['queries']} test images) and "
        f"{paths['map']} ({paths['points']} test features, {paths['method']})"
    )
    return 0


def _sweep(args: argparse.Namespace, overrides: list[str]) -> int:
    from pathlib import Path

    from contrast.sweep import parse_taus, run_sweep

    rows = run_sweep(args.config, parse_taus(args.tau), args.out, overrides)
    print((Path(args.out) / "sweep.md").read_text())
    return 0 if rows else 1


def _export(args: argparse.Namespace, overrides: list[str]) -> int:
    from pathlib import Path

    from contrast.checkpoint import read_checkpoint
    from contrast.export import export_backbone
    from contrast.methods.crossmodal import CrossModal, crossmodal_hparams
    from contrast.methods.pretrained import hf_dual_encoder_ready
    from contrast.models.hf import hf_name

    checkpoint = read_checkpoint(args.ckpt)
    if crossmodal_hparams(checkpoint) is not None:  # both towers, the tokenizer, the normalisation
        model = CrossModal.from_checkpoint(checkpoint)
        weights, config = model.save_pretrained(args.out)
        print(f"wrote {weights} and {config}; load with CrossModal.from_pretrained({str(args.out)!r})")
        for folder, how in (
            ("open_clip_config.json", 'open_clip.create_model_and_transforms("local-dir:{out}")'),
            ("hf", 'transformers.VisionTextDualEncoderModel.from_pretrained("{out}/hf")'),
        ):
            if (Path(args.out) / folder).exists():
                print("also in its library's own layout: " + how.format(out=args.out))
        why = hf_dual_encoder_ready(model)
        if why is not None and hf_name(model.hparams.backbone) and hf_name(model.hparams.text_encoder):
            print(f"not in HF's VisionTextDualEncoderModel layout: {why}")  # HF towers of another shape
        return 0

    weights, meta = export_backbone(args.ckpt, args.out, recipe=args.recipe)
    print(f"wrote {weights} and {meta}; load with contrast.load_backbone({str(args.out)!r})")
    return 0


def _retrieve(args: argparse.Namespace, overrides: list[str]) -> int:
    import json

    import torch

    from contrast.checkpoint import read_checkpoint
    from contrast.data import PairedData
    from contrast.eval.crossmodal import clip_benchmark_keys, format_scores, retrieval_scores
    from contrast.methods import CrossModal

    checkpoint = read_checkpoint(args.ckpt)
    model = CrossModal.from_checkpoint(checkpoint, map_location="cuda" if torch.cuda.is_available() else "cpu")
    data = _data_of(checkpoint, PairedData, args)
    if isinstance(model.hparams.vocabulary, dict):  # a pretrained model's tokenizer: the one recorded, no folder
        data.use_tokenizer(model.hparams.vocabulary)
    _check_fits(args.ckpt, checkpoint, data)
    scores = retrieval_scores(model, data)
    split = data.split(False)
    print(f"{data.dataset} test split: {len(split)} images, {split.text_image.shape[0]} texts")
    print(format_scores(scores).replace("; ", "\n"))
    if args.json:
        with open(args.json, "w") as f:  # contrast's keys, and CLIP_benchmark's for the same recalls
            json.dump({**scores, **clip_benchmark_keys(scores)}, f, indent=2)
    return 0


def _zeroshot(args: argparse.Namespace, overrides: list[str]) -> int:
    import torch

    from contrast.data import load_split
    from contrast.eval.zeroshot import class_weights, load_templates, zero_shot_scores
    from contrast.integrations.clip_benchmark import load

    device = "cuda" if torch.cuda.is_available() else "cpu"
    towers, transform, tokenize = load(args.ckpt, args.image_size, device)
    split = load_split(args.dataset, args.root, False, image_size=towers.image_size)
    if split is None:
        raise ValueError(f"--dataset {args.dataset}: no test split under {args.root or '$CONTRAST_DATA_DIR'}")
    if args.classnames is not None:
        from pathlib import Path

        classnames = [line.strip() for line in Path(args.classnames).read_text().splitlines() if line.strip()]
    else:
        classnames = [name.replace("_", " ") for name in getattr(split, "classes", None) or []]
    if len(classnames) < 2 or int(split.labels.max()) >= len(classnames):
        raise ValueError(f"--classnames: {len(classnames)} class names for labels up to {int(split.labels.max())}")
    key = args.templates_key or ("cifar10" if args.dataset.startswith("cifar10") else "imagenet1k")
    templates = load_templates(key, args.templates)
    weights = class_weights(lambda prompts: towers.encode_text(tokenize(prompts).to(device)), classnames, templates)
    loader = torch.utils.data.DataLoader(split, batch_size=args.batch_size)
    with torch.no_grad():
        embeddings = torch.cat([towers.encode_image(transform(x).to(device)) for x, _ in loader])
    scores = zero_shot_scores(embeddings, split.labels, weights)
    print(
        f"zero-shot on {args.dataset} test split ({len(split)} images, {len(classnames)} classes; {len(templates)} "
        f"{key} prompt templates, class embeddings averaged over them and renormalised; cosine): "
        f"top-1 {scores['top1']:.2f}%  top-5 {scores['top5']:.2f}%  mean per-class recall "
        f"{scores['mean_per_class_recall']:.2f}%"
    )
    return 0


def _data_of(checkpoint: dict, data_class: type, args: argparse.Namespace):
    """The checkpoint's data module (``data_class`` with its saved arguments), with ``--dataset`` /
    ``--root`` where given and ``--batch-size`` for evaluation."""
    from contrast.checks import constructor_parameters

    accepted = constructor_parameters(data_class)
    data_hp = {k: v for k, v in checkpoint.get("datamodule_hyper_parameters", {}).items() if k in accepted}
    for key in ("dataset", "root"):
        if getattr(args, key, None) is not None:
            data_hp[key] = getattr(args, key)
    data_hp["eval_batch_size"] = args.batch_size
    return data_class(**data_hp)


def _check_fits(path: str, checkpoint: dict, data, facts: tuple[str, ...] | None = None) -> None:
    """Refuse data the checkpoint's model was not built for (the one check of ``contrast fit`` too)."""
    from contrast.checkpoint import CheckpointError
    from contrast.fits import checkpoint_differences

    differences = checkpoint_differences(checkpoint, data=data, **({} if facts is None else {"facts": facts}))
    if differences:
        raise CheckpointError(f"--ckpt {path}: {'; '.join(differences)}; score it on the data it was built for")


def _checkpoint_features(args: argparse.Namespace, storage: str | None = None):
    """(data module, (train features, labels), (test features, labels)) of a checkpoint's backbone:
    float32 tensors; with ``storage`` "memory" float16 tensors, "disk" float16 .npy files memory-mapped
    from ``args.features_dir`` (extracted once per checkpoint and split)."""
    import os

    import torch

    from contrast.checkpoint import read_checkpoint
    from contrast.data import ContrastiveData
    from contrast.eval import extract_features
    from contrast.eval.features import check_finite
    from contrast.export import backbone_from_checkpoint

    checkpoint = read_checkpoint(args.ckpt)
    backbone, _ = backbone_from_checkpoint(checkpoint)
    data = _data_of(checkpoint, ContrastiveData, args)
    _check_fits(args.ckpt, checkpoint, data, facts=("in_channels",))  # any classes: kNN and the probe fit their own
    if not data.has_labelled_eval:  # the fit's --data.eval_root is not an option of these commands
        raise ValueError(
            f"--ckpt {args.ckpt}: its data ({data.dataset} in {data.root}) has no labelled train and test split to "
            "score on; give labelled images with --dataset and --root (e.g. --dataset imagefolder --root FOLDER "
            "holding train/ and test/ folders of class folders)"
        )
    device = "cuda" if torch.cuda.is_available() else "cpu"
    backbone.to(device)
    if storage == "disk":
        from pathlib import Path

        from contrast.eval.features import features_on_disk

        stat = os.stat(args.ckpt)
        key = {"checkpoint": os.path.abspath(args.ckpt), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        key |= {"dataset": data.dataset, "root": str(data.root), "recipe": data.recipe_q.name}
        folder = Path(args.features_dir)
        train, test = (
            features_on_disk(
                backbone,
                data.eval_dataloader(split),
                folder / f"{name}.npy",
                device,
                key=key | {"split": name},
                progress=True,
            )
            for split, name in ((True, "train"), (False, "test"))
        )
        return data, train, test  # checked where they are read (linear_sgd names the file)
    dtype = torch.float16 if storage == "memory" else torch.float32
    train = extract_features(backbone, data.eval_dataloader(True), device, progress=True, dtype=dtype)
    test = extract_features(backbone, data.eval_dataloader(False), device, progress=True, dtype=dtype)
    for (features, _), name in ((train, "train"), (test, "test")):
        check_finite(features, f"the {name} features of --ckpt {args.ckpt}")
    return data, train, test


def _pack(args: argparse.Namespace, overrides: list[str]) -> int:
    from contrast.checks import int_at_least
    from contrast.data.pack import Settings, pack

    int_at_least("max_side", args.max_side, 16)
    int_at_least("shard_bytes", args.shard_bytes, 2**16)
    int_at_least("workers", args.workers, 0)
    if not 1 <= args.quality <= 100:
        from contrast.checks import ConfigError

        raise ConfigError("quality", f"quality must be an int in [1, 100], got {args.quality}")
    settings = Settings(max_side=args.max_side, quality=args.quality, shard_bytes=args.shard_bytes)
    meta = pack(args.src, args.dest, settings=settings, workers=args.workers, skip_corrupt=args.skip_corrupt,
                classes_file=args.classes, captions=args.captions, csv_img_key=args.csv_img_key,
                csv_caption_key=args.csv_caption_key, csv_separator=args.csv_separator)  # fmt: skip
    size = sum(shard["bytes"] for shard in meta["shards"])
    print(
        f"{args.dest}: {meta['images']} images in {len(meta['shards'])} shard(s), {size / 2**20:.1f} MiB, "
        f"{len(meta['classes'])} classes"
        + (f", {meta['skipped']} unreadable skipped" if meta["skipped"] else "")
        + (f", a caption each ({meta['empty_captions_skipped']} empty skipped)" if "captions_sha256" in meta else "")
    )
    return 0


# name -> the command's function (its parsed arguments, the options it passes on to fit)
def _embed(args: argparse.Namespace, overrides: list[str]) -> int:
    from contrast.search.embed import embed

    embed(args.ckpt, args.out, args.images, args.texts, args.shard_size, args.batch_size, args.image_size)
    return 0


def _index(args: argparse.Namespace, overrides: list[str]) -> int:
    from contrast.search.index import index

    records = index(args.dir, args.max_memory, args.max_query_ms, args.out, args.train_only, args.part, args.merge)
    for record in records:
        if "factory" not in record:  # a step of an index built in parts
            print(f"{record['kind']}: wrote {record.get('trained') or record.get('part')}")
            continue
        tuned = "" if record["parameter"] is None else f", {record['parameter']} {record['value']}"
        print(
            f"{record['kind']}: {record['factory']} over {record['count']:,} × {record['dim']}{tuned}: "
            f"recall@10 {record['recall@10']:.3f} against exact search, median {record['median_ms']:.2f} ms, "
            f"p99 {record['p99_ms']:.2f} ms; {record['file_bytes'] / 2**20:.1f} MiB"
        )
    return 0


def _serve(args: argparse.Namespace, overrides: list[str]) -> int:
    from contrast.search.serve import serve

    serve(args.dir, args.ckpt, args.host, args.port, args.index)
    return 0


COMMANDS = {
    "knn": _knn,
    "probe": _probe,
    "pictures": _pictures,
    "sweep": _sweep,
    "export": _export,
    "retrieve": _retrieve,
    "zeroshot": _zeroshot,
    "embed": _embed,
    "index": _index,
    "serve": _serve,
    "pack": _pack,
}
