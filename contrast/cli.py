"""The ``contrast`` command: parse the command line and dispatch, nothing else.

Errors a user can fix (a bad value, an unknown option, missing data, a file that is not a
checkpoint, a full disk) are printed as one short message with exit code 2 (1 for a full disk);
a run stopped by SIGINT / SIGTERM exits with 130 / 143 after writing its checkpoint.
"""

from __future__ import annotations

import argparse
import difflib
import errno
import os
import re
import sys

LIGHTNING_COMMANDS = {
    "fit": "pretrain (LightningCLI: --config FILE, every option overridable, --ckpt_path last resumes)",
    "validate": "online-probe accuracy of a checkpoint on the test split (--config FILE --ckpt_path CKPT)",
}
EPILOG = """examples:
  contrast fit --config configs/quickstart.yaml
  contrast fit --config configs/quickstart.yaml --ckpt_path last        # resume the newest run
  contrast fit --config configs/simclr_cifar10.yaml --run_dir runs/simclr --ckpt_path last
  contrast knn --ckpt runs/lightning_logs/version_0/checkpoints/last.ckpt
  contrast export --ckpt last.ckpt --out exported/
  contrast sweep --config configs/quickstart.yaml --tau 0.1,0.2,0.5 --out sweep/
  contrast fit --config configs/crossmodal_shapes.yaml --run_dir runs/crossmodal   # images <-> captions
  contrast retrieve --ckpt runs/crossmodal/checkpoints/last.ckpt
each command has its own --help (contrast fit --help)"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="contrast",
        description="Self-supervised contrastive pretraining and evaluation.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in LIGHTNING_COMMANDS.items():
        commands.add_parser(name, help=help_text, add_help=False)
    commands.add_parser("test", help="not supported: use knn or probe on a checkpoint", add_help=False)

    export = commands.add_parser("export", help="write a checkpoint's backbone as a plain state_dict + how to build it")
    export.add_argument("--ckpt", required=True, help="a checkpoint written by contrast fit")
    export.add_argument("--out", required=True, help="output folder for backbone.pt and backbone.json")

    for name, help_text in (("knn", "weighted kNN accuracy of a checkpoint"), ("probe", "linear probe accuracy")):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--ckpt", required=True, help="a checkpoint written by contrast fit")
        command.add_argument("--dataset", default=None, help="dataset name (default: the checkpoint's)")
        command.add_argument(
            "--root", default=None, help="data folder (default: the checkpoint's / $CONTRAST_DATA_DIR)"
        )
        command.add_argument("--batch-size", type=int, default=512)
        if name == "knn":
            command.add_argument("--k", type=int, default=200)
            command.add_argument("--temperature", type=float, default=0.1, help="τ of the vote weights (0.1: CIFAR)")
            command.add_argument("--weighting", default="weighted", choices=["weighted", "majority"])
            command.add_argument("--backend", default="auto", choices=["auto", "faiss", "torch"])

    retrieve = commands.add_parser(
        "retrieve", help="cross-modal retrieval (R@K, median rank, mAP) of a two-tower checkpoint"
    )
    retrieve.add_argument("--ckpt", required=True, help="a checkpoint written by contrast fit with CrossModal")
    retrieve.add_argument("--root", default=None, help="data folder (default: the checkpoint's / $CONTRAST_DATA_DIR)")
    retrieve.add_argument("--batch-size", type=int, default=512)
    retrieve.add_argument("--json", default=None, help="also write the figures to this JSON file")

    sweep = commands.add_parser("sweep", help="temperature ablation: one pretraining per τ, then a report")
    sweep.add_argument("--config", required=True, help="a fit config, e.g. configs/quickstart.yaml")
    sweep.add_argument(
        "--tau",
        required=True,
        help="comma-separated temperatures, e.g. 0.05,0.1,0.2,0.5,1.0; for a CrossModal config also 'learned' "
        "(τ learned from the config's initial value)",
    )
    sweep.add_argument("--out", default="sweep", help="output folder: runs, logs and report (reruns skip finished τ)")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0
    command = argv[0]
    if command in LIGHTNING_COMMANDS:
        return _run_lightning(argv)
    if command == "test":
        print(
            "contrast test: not supported (a method has no test step); score a checkpoint with "
            "`contrast knn --ckpt ...` or `contrast probe --ckpt ...`",
            file=sys.stderr,
        )
        return 2
    if command == "sweep":
        args, overrides = parser.parse_known_args(argv)  # the rest are fit overrides (--trainer.max_epochs 5)
    else:
        args, overrides = parser.parse_args(argv), []
    try:
        return COMMANDS[command](args, overrides)
    except Exception as error:  # noqa: BLE001 - reported below or re-raised
        return _report(error, command)


# ---------------------------------------------------------------------- the commands
def _run_lightning(argv: list[str]) -> int:
    from contrast.checkpoint import Interrupted
    from contrast.train import lightning_cli, summary

    try:
        cli = lightning_cli(argv)
    except Interrupted as stop:
        print(f"contrast {argv[0]}: {stop}; resume with the same command and --ckpt_path last", file=sys.stderr)
        return 128 + stop.signum
    except Exception as error:  # noqa: BLE001
        return _report(error, argv[0])
    if argv[0] == "fit":
        print(summary(cli), flush=True)
    return 0


def _knn(args: argparse.Namespace, overrides: list[str]) -> int:
    from contrast.eval import KNNEvaluator

    data, train, test = _checkpoint_features(args)
    knn = KNNEvaluator(k=args.k, temperature=args.temperature, backend=args.backend, weighting=args.weighting)
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
    from contrast.train import checkpoint_differences

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


COMMANDS = {"knn": _knn, "probe": _probe, "sweep": _sweep, "export": _export, "retrieve": _retrieve}


# ---------------------------------------------------------------------- errors a person can read
def _report(error: BaseException, command: str) -> int:
    """Print the useful line of a user error and return its exit code; re-raise anything else."""
    from contrast.checkpoint import CheckpointError
    from contrast.data import DataNotFoundError

    if os.environ.get("CONTRAST_TRACEBACK"):
        raise error
    chain = _chain(error)
    full_disk = [e for e in chain if isinstance(e, OSError) and e.errno == errno.ENOSPC]
    if full_disk:
        print(f"contrast {command}: error: {full_disk[0].strerror or full_disk[0]}", file=sys.stderr)
        return 1
    named = [e for e in chain if isinstance(e, (CheckpointError, DataNotFoundError))]
    values = [e for e in chain if isinstance(e, (ValueError, FileNotFoundError))]
    if named:
        message = str(named[0])
    elif _is_argument_error(error):  # parsing: an unknown option or a value of the wrong type
        message = _argument_message(str(error))
    elif values:  # the innermost: jsonargparse wraps the error a constructor raised
        message = _with_option(str(values[-1]))
    else:
        raise error
    print(f"contrast {command}: error: {message}", file=sys.stderr)
    print("(set CONTRAST_TRACEBACK=1 for the full traceback)", file=sys.stderr)
    return 2


def _chain(error: BaseException) -> list[BaseException]:
    """The error and the ones it was raised from, outermost first."""
    chain: list[BaseException] = []
    while error is not None and all(error is not seen for seen in chain):
        chain.append(error)
        error = error.__cause__ or error.__context__
    return chain


def _is_argument_error(error: BaseException) -> bool:
    return isinstance(error, argparse.ArgumentError) or type(error).__name__ == "ArgumentError"


def _argument_message(text: str) -> str:
    """One line from jsonargparse's nested report: the option, and what was wrong with its value
    (``--data.x`` and ``--data.init_args.x`` both work; the short form is the one named)."""
    return _argument_message_long(text).replace("--data.init_args.", "--data.")


def _argument_message_long(text: str) -> str:
    unknown = re.search(r"Option '([^']+)' is not accepted", text)
    if unknown:
        name = unknown.group(1)
        close = difflib.get_close_matches(name, _accepted_options(text), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        key = re.search(r'Parser key "([\w.]+)"', text)
        option = f"--{key.group(1)}.init_args.{name}" if key else name
        return f"unknown option {option!r}{hint}"
    unrecognized = re.search(r"unrecognized arguments: (?:\w+ )?(--\S+)", text, re.IGNORECASE)
    if unrecognized:
        return f"unknown option {unrecognized.group(1)!r} (contrast fit --help lists the options)"
    keys = re.findall(r'Parser key "([\w.]+)"', text)
    expected = re.search(r"Expected a <class '(\w+)'>", text)
    value = re.search(r"(?:Got value|Given value): (.*)", text)
    if keys and expected:
        option = keys[0] if len(keys) == 1 else f"{keys[0]}.init_args.{keys[-1]}"
        got = f", got {value.group(1).strip()!r}" if value else ""
        return f"--{option}: expected {'an' if expected.group(1)[0] in 'aeiou' else 'a'} {expected.group(1)}{got}"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " / ".join(lines[:3]) if lines else "invalid arguments"


def _accepted_options(text: str) -> list[str]:
    class_path = re.search(r"class_path '([\w.]+)'", text)
    if not class_path:
        return []
    import importlib

    module, _, name = class_path.group(1).rpartition(".")
    try:
        return _init_parameters(getattr(importlib.import_module(module), name))
    except (ImportError, AttributeError):
        return []


def _init_parameters(cls: type) -> list[str]:
    """The constructor arguments of ``cls`` and of the classes it passes ``**kwargs`` to."""
    import inspect

    names = []
    for klass in cls.__mro__:
        if "__init__" in vars(klass) and klass is not object:
            names += [p for p in inspect.signature(klass.__init__).parameters if p not in ("self", "args", "kwargs")]
    return names


def _with_option(message: str) -> str:
    """Name the command-line option a constructor argument comes from ("lr must be ..." ->
    "--model.init_args.lr: lr must be ...")."""
    from contrast.data import ContrastiveData, PairedData
    from contrast.methods import METHODS

    first = message.removeprefix("unknown ").split(" ", 1)[0].rstrip(":")  # "lr must be ..." / "unknown backbone ..."
    if any(first in _init_parameters(cls) for cls in METHODS.values()):
        return f"--model.init_args.{first}: {message}"
    if any(first in _init_parameters(cls) for cls in (ContrastiveData, PairedData)):
        return f"--data.{first}: {message}"
    return message


if __name__ == "__main__":
    raise SystemExit(main())
