"""The ``contrast`` command.

contrast fit --config configs/quickstart.yaml          # pretrain (LightningCLI: every option overridable)
contrast validate --config ... --ckpt_path runs/.../last.ckpt
contrast export --ckpt last.ckpt --out exported/       # backbone.pt + backbone.json
contrast knn --ckpt last.ckpt                          # weighted kNN accuracy of a checkpoint
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

LIGHTNING_COMMANDS = ("fit", "validate", "test")
USAGE = __doc__


def _wandb_offline_unless_reachable(argv: list[str]) -> None:
    """wandb must never hang a run: offline when there is no API key or the service is unreachable."""
    text = " ".join(argv)
    for i, arg in enumerate(argv):
        if arg in ("--config", "-c") and i + 1 < len(argv) and Path(argv[i + 1]).is_file():
            text += Path(argv[i + 1]).read_text()
    if "WandbLogger" not in text or os.environ.get("WANDB_MODE"):
        return
    has_key = bool(os.environ.get("WANDB_API_KEY")) or "api.wandb.ai" in _read(Path.home() / ".netrc")
    if not has_key or not _reachable("api.wandb.ai", 443, timeout=3.0):
        os.environ["WANDB_MODE"] = "offline"
        print("wandb: no API key or no network; logging offline (sync later with `wandb sync`)", file=sys.stderr)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _reachable(host: str, port: int, timeout: float) -> bool:
    import concurrent.futures

    def connect() -> bool:
        with socket.create_connection((host, port), timeout=timeout):
            return True

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:  # the DNS lookup itself can hang: bound the whole attempt
        return pool.submit(connect).result(timeout=timeout)
    except Exception:
        return False
    finally:
        pool.shutdown(wait=False)


def lightning_cli(argv: list[str], run: bool = True):
    from lightning.pytorch.cli import LightningCLI

    from contrast.checkpoint import AtomicCheckpointIO
    from contrast.data import ContrastiveData
    from contrast.methods import ContrastiveModule

    class ContrastCLI(LightningCLI):
        def add_arguments_to_parser(self, parser) -> None:
            parser.link_arguments("data.num_classes", "model.init_args.num_classes", apply_on="instantiate")
            parser.link_arguments("data.in_channels", "model.init_args.in_channels", apply_on="instantiate")

        def instantiate_trainer(self, **kwargs):
            plugins = kwargs.get("plugins") or []
            if not any(hasattr(p, "save_checkpoint") for p in (plugins if isinstance(plugins, list) else [plugins])):
                kwargs["plugins"] = [*(plugins if isinstance(plugins, list) else [plugins]), AtomicCheckpointIO()]
            return super().instantiate_trainer(**kwargs)

    _wandb_offline_unless_reachable(argv)
    return ContrastCLI(
        ContrastiveModule,
        ContrastiveData,
        subclass_mode_model=True,
        args=argv,
        run=run,
        save_config_kwargs={"overwrite": True},
        trainer_defaults={
            "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": "runs"}},
        },
    )


def _checkpoint_features(args: argparse.Namespace):
    """(data module, (train features, labels), (test features, labels)) of a checkpoint's backbone."""
    import inspect

    import torch

    from contrast.data import ContrastiveData
    from contrast.eval import extract_features
    from contrast.export import load_checkpoint
    from contrast.models import build_backbone

    checkpoint = load_checkpoint(args.ckpt)
    hp = checkpoint["hyper_parameters"]
    accepted = inspect.signature(ContrastiveData.__init__).parameters
    data_hp = {k: v for k, v in checkpoint.get("datamodule_hyper_parameters", {}).items() if k in accepted}
    for key in ("dataset", "root"):
        if getattr(args, key) is not None:
            data_hp[key] = getattr(args, key)
    data_hp["eval_batch_size"] = args.batch_size
    data = ContrastiveData(**data_hp)
    backbone = build_backbone(hp["backbone"], cifar_stem=hp["cifar_stem"], in_channels=hp["in_channels"])
    backbone.load_state_dict(
        {k[len("backbone.") :]: v for k, v in checkpoint["state_dict"].items() if k.startswith("backbone.")}
    )
    device = "cuda" if torch.cuda.is_available() else "cpu"
    backbone.to(device)
    train = extract_features(backbone, data.eval_dataloader(True), device, progress=True)
    test = extract_features(backbone, data.eval_dataloader(False), device, progress=True)
    return data, train, test


def _knn(args: argparse.Namespace) -> int:
    from contrast.eval import KNNEvaluator

    data, train, test = _checkpoint_features(args)
    knn = KNNEvaluator(k=args.k, temperature=args.temperature, backend=args.backend, weighting=args.weighting)
    result = knn.fit(*train).score(*test)
    print(
        f"kNN ({args.weighting}, k={args.k}, τ={args.temperature}) on {data.dataset}: "
        f"top-1 {result['top1']:.2f}%  top-5 {result['top5']:.2f}%"
    )
    return 0


def _probe(args: argparse.Namespace) -> int:
    from contrast.eval.linear import linear_probe

    data, train, test = _checkpoint_features(args)
    result = linear_probe(*train, *test)
    print(
        f"linear probe on {data.dataset}: top-1 {result.top1:.2f}% (weight decay {result.weight_decay:g}, "
        f"chosen on a held-out tenth of the training set)"
    )
    return 0


def _sweep(args: argparse.Namespace, overrides: list[str]) -> int:
    from contrast.eval.ablation import parse_taus, run_sweep

    rows = run_sweep(args.config, parse_taus(args.tau), args.out, overrides)
    print((Path(args.out) / "sweep.md").read_text())
    return 0 if rows else 1


def _export(args: argparse.Namespace) -> int:
    from contrast.export import export_backbone

    weights, meta = export_backbone(args.ckpt, args.out)
    print(f"wrote {weights} and {meta}; load with contrast.load_backbone({str(args.out)!r})")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    command, rest = argv[0], argv[1:]
    if command in LIGHTNING_COMMANDS:
        lightning_cli([command, *rest])
        return 0
    parser = argparse.ArgumentParser(prog=f"contrast {command}")
    if command == "export":
        parser.add_argument("--ckpt", required=True, help="a checkpoint written by contrast fit")
        parser.add_argument("--out", required=True, help="output folder for backbone.pt and backbone.json")
        return _export(parser.parse_args(rest))
    if command == "sweep":
        parser.add_argument("--config", required=True, help="a fit config, e.g. configs/quickstart.yaml")
        parser.add_argument("--tau", required=True, help="comma-separated temperatures, e.g. 0.05,0.1,0.2,0.5,1.0")
        parser.add_argument("--out", default="sweep", help="output folder (reruns skip finished τ values)")
        args, overrides = parser.parse_known_args(rest)  # the rest are fit overrides, e.g. --trainer.max_epochs 5
        return _sweep(args, overrides)
    if command in ("knn", "probe"):
        parser.add_argument("--ckpt", required=True, help="a checkpoint written by contrast fit")
        parser.add_argument("--dataset", default=None, help="dataset name (default: the checkpoint's)")
        parser.add_argument("--root", default=None, help="data folder (default: the checkpoint's / $CONTRAST_DATA_DIR)")
    if command == "probe":
        parser.add_argument("--batch-size", type=int, default=512)
        return _probe(parser.parse_args(rest))
    if command == "knn":
        parser.add_argument("--k", type=int, default=200)
        parser.add_argument("--temperature", type=float, default=0.1, help="0.1 for CIFAR, 0.07 for ImageNet")
        parser.add_argument("--weighting", default="weighted", choices=["weighted", "majority"])
        parser.add_argument("--backend", default="auto", choices=["auto", "faiss", "torch"])
        parser.add_argument("--batch-size", type=int, default=512)
        return _knn(parser.parse_args(rest))
    print(f"contrast: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
