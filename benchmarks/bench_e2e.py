"""End to end: SimCLR pretraining on CIFAR-10 (JPEG ImageFolder), then weighted kNN top-1.

Our toolkit and lightly side by side, with the same backbone, projector widths, batch size,
epochs, optimizer (SGD, momentum 0.9, no weight decay on biases and norms, per-step warmup and
cosine decay), NT-Xent temperature, augmentation parameters and seed. What differs is what each
library brings:

* ours: the images decoded once into one uint8 tensor (``cache="memory"``, or ``"device"`` to
  keep them on the GPU), the batched per-sample views on the training device, our fused NT-Xent;
  on a GPU bf16, channels-last and optionally ``torch.compile``;
* lightly: ``torchvision.datasets.ImageFolder`` read by DataLoader workers that decode every JPEG
  every epoch, ``lightly.transforms.SimCLRTransform`` (``cj_strength=0.5, gaussian_blur=0``, as in
  lightly's own CIFAR-10 benchmark) and ``lightly.loss.NTXentLoss`` in a plain LightningModule.

Both encoders are then scored the same way: features of the 50,000 training and 10,000 test
images (centre, normalised, no augmentation), weighted kNN with k=200, τ=0.07 (Wu et al. 2018).

    python benchmarks/bench_e2e.py --scale cpu                    # tiny CNN, both libraries
    python benchmarks/bench_e2e.py --scale gpu --epochs 200 --no-lightly

Data: ``$CONTRAST_DATA_DIR/cifar10-jpeg/{train,test}/<class>/*.jpg``.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    append_results,
    lightly_lr,
    markdown_table,
    quiet_trainer,
    scale_config,
    simclr_notes,
    simclr_parser,
)

from contrast.data import ContrastiveData  # noqa: E402
from contrast.eval.features import extract_features  # noqa: E402
from contrast.eval.knn import KNNEvaluator  # noqa: E402
from contrast.methods import SimCLR  # noqa: E402
from contrast.methods.base import WarmupCosine  # noqa: E402
from contrast.models import build_backbone  # noqa: E402

SCALES = {
    # 2 CPU cores: a 4-layer CNN so that the budget buys several epochs.
    "cpu": dict(backbone="tiny_cnn_w8", cifar_stem=False, batch=256, epochs=4, workers=1, precision="32"),
    # One GPU: ResNet-18 with the CIFAR stem, batch 512, bf16.
    "gpu": dict(backbone="resnet18", cifar_stem=True, batch=512, epochs=200, workers=8, precision="bf16-mixed"),
}


@dataclass
class Run:
    name: str
    epochs: float
    samples: int
    train_s: float
    epoch_s: list[float]
    setup_s: float
    eval_s: float
    top1: float
    top5: float
    final_loss: float

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.train_s

    @property
    def steady_epoch_s(self) -> float:
        later = self.epoch_s[1:] or self.epoch_s
        return sorted(later)[len(later) // 2]


def train_and_score(name: str, cfg: dict, model, start: float, fit_kwargs: dict, data, train_size: int) -> Run:
    """Fit (timed; set-up counted from ``start``), then score the backbone with the weighted kNN."""
    timer = EpochTimer()
    trainer = trainer_for(cfg, timer)
    setup_s = time.perf_counter() - start
    start = time.perf_counter()
    trainer.fit(model, **fit_kwargs)
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    scores = knn_top1(model.backbone, data, device_of(cfg))
    samples = trainer.global_step * cfg["batch"]
    return Run(
        name,
        samples / train_size,
        samples,
        train_s,
        timer.times,
        setup_s,
        time.perf_counter() - start,
        scores["top1"],
        scores["top5"],
        timer.losses[-1],
    )


class EpochTimer(L.Callback):
    def __init__(self) -> None:
        self.times: list[float] = []
        self.losses: list[float] = []

    def on_train_epoch_start(self, trainer, module) -> None:
        if module.device.type == "cuda":
            torch.cuda.synchronize()
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer, module) -> None:
        if module.device.type == "cuda":
            torch.cuda.synchronize()
        self.times.append(time.perf_counter() - self._start)
        loss = trainer.callback_metrics.get("train/loss")
        self.losses.append(float(loss) if loss is not None else float("nan"))
        print(f"  epoch {len(self.times)}: {self.times[-1]:.1f} s, loss {self.losses[-1]:.4f}", flush=True)


def backbone_for(cfg: dict) -> torch.nn.Module:
    return build_backbone(cfg["backbone"], cifar_stem=cfg["cifar_stem"], channels_last=cfg["channels_last"])


def trainer_for(cfg: dict, timer: EpochTimer) -> L.Trainer:
    return quiet_trainer(
        cfg["gpu"],
        cfg["precision"],
        max_epochs=cfg["epochs"],
        log_every_n_steps=50,
        callbacks=[timer],
        deterministic=False,
        max_time={"minutes": cfg["max_minutes"]} if cfg["max_minutes"] else None,
    )


def device_of(cfg: dict) -> torch.device:
    return torch.device("cuda" if cfg["gpu"] else "cpu")


def knn_top1(backbone: torch.nn.Module, data: ContrastiveData, device: torch.device) -> dict[str, float]:
    backbone.to(device)
    train_x, train_y = extract_features(backbone, data.eval_dataloader(True), device)
    test_x, test_y = extract_features(backbone, data.eval_dataloader(False), device)
    knn_device = device if device.type == "cuda" else torch.device("cpu")
    knn = KNNEvaluator(k=200, temperature=0.07).fit(train_x.to(knn_device), train_y.to(knn_device))
    return knn.score(test_x.to(knn_device), test_y.to(knn_device))


_EVAL_DATA: list[ContrastiveData] = []


def eval_data(cfg: dict) -> ContrastiveData:
    """The labelled splits, decoded once per process and shared by both libraries' evaluations."""
    if not _EVAL_DATA:
        _EVAL_DATA.append(_new_eval_data(cfg))
    return _EVAL_DATA[0]


def _new_eval_data(cfg: dict) -> ContrastiveData:
    return ContrastiveData(
        dataset="cifar10_jpeg",
        recipe_q="simclr_cifar10",
        eval_batch_size=1024,
        num_workers=cfg["workers"],
        cache="memory",
    )


# ---------------------------------------------------------------------- ours
def run_ours(cfg: dict) -> Run:
    L.seed_everything(cfg["seed"], verbose=False)
    start = time.perf_counter()
    data = ContrastiveData(
        dataset="cifar10_jpeg",
        recipe_q="simclr_cifar10",
        views="batched",
        cache="device" if cfg["gpu"] else "memory",
        batch_size=cfg["batch"],
        eval_batch_size=1024,
        num_workers=cfg["workers"],
        train_subset=cfg["subset"],
        seed=cfg["seed"],
    )
    data.split(True), data.split(False)  # decode both splits once (timed as set-up)
    if not _EVAL_DATA:
        _EVAL_DATA.append(data)
    model = SimCLR(
        backbone=cfg["backbone"],
        cifar_stem=cfg["cifar_stem"],
        channels_last=cfg["channels_last"],
        projector_hidden=cfg["hidden"],
        projector_dim=128,
        temperature=cfg["tau"],
        optimizer="sgd",
        lr=cfg["lr"],
        weight_decay=cfg["wd"],
        warmup_epochs=cfg["warmup"],
        num_classes=10,
        compile=cfg["compile"],
    )
    return train_and_score("contrast", cfg, model, start, dict(datamodule=data), data, len(data.split(True)))


# ---------------------------------------------------------------------- lightly
class LightlySimCLR(L.LightningModule):
    """A plain Lightning module with lightly's pieces, as lightly's CIFAR-10 benchmark builds it."""

    def __init__(self, backbone: torch.nn.Module, cfg: dict) -> None:
        super().__init__()
        from lightly.loss import NTXentLoss
        from lightly.models.modules import SimCLRProjectionHead

        self.backbone, self.cfg = backbone, cfg
        self.projection_head = SimCLRProjectionHead(backbone.feature_dim, cfg["hidden"], 128)
        self.criterion = NTXentLoss(temperature=cfg["tau"])

    def training_step(self, batch, batch_idx):
        (x0, x1), _ = batch
        if self.cfg["channels_last"]:  # the images in the weights' memory format, as ours
            x0, x1 = (x.contiguous(memory_format=torch.channels_last) for x in (x0, x1))
        z0 = self.projection_head(self.backbone(x0))
        z1 = self.projection_head(self.backbone(x1))
        loss = self.criterion(z0, z1)
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        decay = [p for p in self.parameters() if p.ndim > 1]
        no_decay = [p for p in self.parameters() if p.ndim <= 1]
        optimizer = torch.optim.SGD(
            [{"params": decay, "weight_decay": self.cfg["wd"]}, {"params": no_decay, "weight_decay": 0.0}],
            lr=self.cfg["lr"],
            momentum=0.9,
        )
        total = int(self.trainer.estimated_stepping_batches)
        warmup = int(round(self.cfg["warmup"] * total / self.cfg["epochs"]))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine(warmup, total))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def run_lightly(cfg: dict) -> Run:
    import torchvision
    from lightly.transforms import SimCLRTransform

    from contrast.data.files import data_root
    from contrast.views import get_recipe

    L.seed_everything(cfg["seed"], verbose=False)
    start = time.perf_counter()
    recipe = get_recipe("simclr_cifar10")
    transform = SimCLRTransform(
        input_size=32,
        cj_strength=0.5,
        gaussian_blur=0.0,
        normalize={"mean": list(recipe.mean), "std": list(recipe.std)},
    )
    root = data_root(None) / "cifar10-jpeg"
    dataset = torchvision.datasets.ImageFolder(str(root / "train"), transform=transform)
    if cfg["subset"]:
        dataset = torch.utils.data.Subset(dataset, torch.linspace(0, len(dataset) - 1, cfg["subset"]).long().tolist())
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=cfg["batch"],
        shuffle=True,
        drop_last=True,
        num_workers=cfg["workers"],
        persistent_workers=cfg["workers"] > 0,
        pin_memory=cfg["gpu"],
        generator=torch.Generator().manual_seed(cfg["seed"]),
    )
    model = LightlySimCLR(backbone_for(cfg), cfg)
    return train_and_score("lightly", cfg, model, start, dict(train_dataloaders=loader), eval_data(cfg), len(dataset))


# ---------------------------------------------------------------------- main
def main() -> None:
    parser = simclr_parser(__doc__, SCALES, "--scale")
    parser.add_argument("--epochs", type=int, help="default: 4 (cpu), 200 (gpu)")
    parser.add_argument("--lightly-epochs", type=int, help="epochs for lightly (default: the same)")
    parser.add_argument("--tau", type=float, default=0.5, help="NT-Xent temperature (lightly's benchmark: 0.5)")
    parser.add_argument("--lr", type=float, help="default 0.06 × batch / 128, the rule of lightly's CIFAR-10 benchmark")
    parser.add_argument("--wd", type=float, default=5e-4)
    parser.add_argument("--warmup", type=float, default=0.0, help="warmup epochs")
    parser.add_argument("--hidden", type=int, default=2048, help="projector hidden width")
    parser.add_argument("--compile", action="store_true", help="torch.compile our backbone")
    parser.add_argument(
        "--no-channels-last",
        action="store_true",
        help="keep the weights and images channels-first (both libraries; default: channels-last, as the configs)",
    )
    parser.add_argument("--no-lightly", action="store_true")
    parser.add_argument("--no-ours", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-minutes", type=float, help="stop training after this long (epochs then fall short)")
    args = parser.parse_args()

    cfg = scale_config(SCALES, args.scale, args, keys=("epochs", "batch", "workers"))
    cfg.update(
        subset=args.subset,
        max_minutes=args.max_minutes,
        tau=args.tau,
        wd=args.wd,
        warmup=args.warmup,
        hidden=args.hidden,
        seed=args.seed,
        compile=args.compile,
        channels_last=not args.no_channels_last,
    )
    cfg["lr"] = args.lr or lightly_lr(cfg["batch"])
    cfg["gpu"] = args.scale == "gpu"

    runs: list[Run] = []
    if not args.no_ours:
        print("contrast:", flush=True)
        runs.append(run_ours(cfg))
    if not args.no_lightly:
        try:
            import lightly  # noqa: F401
        except ImportError:
            print("lightly is not installed (pip install -e .[bench]): skipped", flush=True)
        else:
            print("lightly:", flush=True)
            runs.append(run_lightly({**cfg, "epochs": args.lightly_epochs or cfg["epochs"]}))

    reference = next((r for r in runs if r.name == "lightly"), None)
    rows = []
    for r in runs:
        speedup = f"{r.samples_per_s / reference.samples_per_s:.2f}x" if reference else "-"
        rows.append(
            [
                r.name,
                f"{r.epochs:.4g}",
                f"{r.samples_per_s:,.0f}",
                speedup,
                f"{r.steady_epoch_s:.2f}",
                f"{r.train_s:.0f}",
                f"{r.setup_s:.0f}",
                f"{r.eval_s:.0f}",
                f"{r.final_loss:.3f}",
                f"{r.top1:.2f}",
                f"{r.top5:.2f}",
            ]
        )
    header = [
        "library",
        "epochs",
        "samples/s",
        "vs lightly",
        "s/epoch (median after 1st)",
        "train s",
        "set-up s",
        "kNN eval s",
        "final loss",
        "kNN top-1 %",
        "kNN top-5 %",
    ]
    table = markdown_table(header, rows)
    print(table)
    if not args.no_append:
        device = "cuda" if cfg["gpu"] else "cpu"
        notes = (
            f"{simclr_notes(cfg)}, SGD lr {cfg['lr']:.3g} wd {cfg['wd']:g}, τ {cfg['tau']}, "
            f"projector {cfg['hidden']}-128, precision {cfg['precision']}, seed {cfg['seed']}"
            f"{', channels-last (both libraries)' if cfg['channels_last'] else ''}"
            f"{', torch.compile' if cfg['compile'] else ''}. kNN: k=200, τ=0.07, train split as the bank, test "
            "split scored. samples/s = training images × epochs / training wall time (all epochs, first included). "
            "Set-up: data decoding and model construction; our set-up decodes both splits once."
        )
        append_results(f"End-to-end SimCLR on CIFAR-10 ({args.scale})", device, table, notes)


if __name__ == "__main__":
    main()
