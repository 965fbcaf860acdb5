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
    result = knn.fit(*train).score(*test)
    print(f"{knn.describe()} on {data.dataset}: top-1 {result['top1']:.2f}%  top-5 {result['top5']:.2f}%")
    return 0


def _probe(args: argparse.Namespace, overrides: list[str]) -> int:
    from contrast.eval.linear import linear_probe

    data, train, test = _checkpoint_features(args)
    result = linear_probe(*train, *test)
    print(
        f"linear probe (backbone features) on {data.dataset}: top-1 {result.top1:.2f}% "
        f"(weight decay {result.weight_decay:g}, chosen on a held-out tenth of the training set)"
    )
    return 0


def _sweep(args: argparse.Namespace, overrides: list[str]) -> int:
    from pathlib import Path

    from contrast.sweep import parse_taus, run_sweep

    rows = run_sweep(args.config, parse_taus(args.tau), args.out, overrides)
    print((Path(args.out) / "sweep.md").read_text())
    return 0 if rows else 1


def _export(args: argparse.Namespace, overrides: list[str]) -> int:
    from contrast.export import export_backbone

    weights, meta = export_backbone(args.ckpt, args.out)
    print(f"wrote {weights} and {meta}; load with contrast.load_backbone({str(args.out)!r})")
    return 0


def _retrieve(args: argparse.Namespace, overrides: list[str]) -> int:
    import json

    import torch

    from contrast.checkpoint import read_checkpoint
    from contrast.data import PairedData
    from contrast.eval.crossmodal import format_scores, retrieval_scores
    from contrast.methods import CrossModal

    checkpoint = read_checkpoint(args.ckpt)
    model = CrossModal.from_checkpoint(checkpoint, map_location="cuda" if torch.cuda.is_available() else "cpu")
    data = _data_of(checkpoint, PairedData, args)
    _check_fits(args.ckpt, checkpoint, data)
    scores = retrieval_scores(model, data)
    split = data.split(False)
    print(f"{data.dataset} test split: {len(split)} images, {split.text_image.shape[0]} texts")
    print(format_scores(scores).replace("; ", "\n"))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(scores, f, indent=2)
    return 0


def _data_of(checkpoint: dict, data_class: type, args: argparse.Namespace):
    """The checkpoint's data module (``data_class`` with its saved arguments), with ``--dataset`` /
    ``--root`` where given and ``--batch-size`` for evaluation."""
    import inspect

    accepted = inspect.signature(data_class.__init__).parameters
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


def _checkpoint_features(args: argparse.Namespace):
    """(data module, (train features, labels), (test features, labels)) of a checkpoint's backbone."""
    import torch

    from contrast.checkpoint import read_checkpoint
    from contrast.data import ContrastiveData
    from contrast.eval import extract_features
    from contrast.export import backbone_from_checkpoint

    checkpoint = read_checkpoint(args.ckpt)
    backbone, _ = backbone_from_checkpoint(checkpoint)
    data = _data_of(checkpoint, ContrastiveData, args)
    _check_fits(args.ckpt, checkpoint, data, facts=("in_channels",))  # any classes: kNN and the probe fit their own
    device = "cuda" if torch.cuda.is_available() else "cpu"
    backbone.to(device)
    train = extract_features(backbone, data.eval_dataloader(True), device, progress=True)
    test = extract_features(backbone, data.eval_dataloader(False), device, progress=True)
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
                classes_file=args.classes)  # fmt: skip
    size = sum(shard["bytes"] for shard in meta["shards"])
    print(
        f"{args.dest}: {meta['images']} images in {len(meta['shards'])} shard(s), {size / 2**20:.1f} MiB, "
        f"{len(meta['classes'])} classes" + (f", {meta['skipped']} unreadable skipped" if meta["skipped"] else "")
    )
    return 0


# name -> the command's function (its parsed arguments, the options it passes on to fit)
COMMANDS = {"knn": _knn, "probe": _probe, "sweep": _sweep, "export": _export, "retrieve": _retrieve, "pack": _pack}
