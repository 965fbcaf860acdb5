"""The training base every kind of training builds on, and the two-view base of the image methods.

``TrainingBase`` owns what every kind of training shares: the backbone and ``encode`` (channels-last,
``torch.compile``), the optimizer (SGD, AdamW or LARS; no weight decay on biases and norms) with
linear warmup and cosine decay per step, DDP-global logging and the total number of steps. Its
siblings state what their training is:

* :class:`ContrastiveModule`: two augmented views of each image and an online linear probe trained
  on *detached* backbone features (it measures progress and never shapes the representation); a
  method on top (SimCLR, MoCo, NNCLR, SupCon) states only ``contrastive_step``;
* :class:`contrast.methods.CrossModal`: two towers on (image, text, label) pairs.
"""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from contrast import distributed
from contrast.checks import ConfigError, boolean, constructor_parameters, finite_number, int_at_least, one_of
from contrast.methods.lars import LARS
from contrast.models import build_backbone
from contrast.normalization import Normalization
from contrast.schedule import WarmupCosine

OPTIMIZERS = ("sgd", "adamw", "lars")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


class TrainingBase(L.LightningModule):
    """Args shared by every kind of training:

    backbone: torchvision model name, "tiny_cnn", "timm/<name>"; cifar_stem: 3×3 stem for 32 px
    images; in_channels: image channels (linked from the data); channels_last: channels-last memory
    format; optimizer: "sgd" | "adamw" | "lars"; lr: peak learning rate; lr_batch_size: the global
    batch ``lr`` is given for, None: ``lr`` as it is. With it, the optimizer's peak learning rate is
    lr × global batch / lr_batch_size (the linear rule, Goyal et al. 2017; SimCLR's 0.3 × B/256), the
    global batch being data.batch_size × devices × nodes × accumulate_grad_batches, so one config
    keeps its meaning on any number of GPUs and nodes; weight_decay; sgd_momentum; nesterov: Nesterov
    momentum for SGD (SimCLR's linear evaluation, Chen et al. 2020, appendix B.6); warmup_epochs:
    linear warmup length (fractional epochs allowed); compile: ``torch.compile`` the backbone (true:
    the default mode; or a mode's name: "reduce-overhead" (CUDA graphs), "max-autotune",
    "max-autotune-no-cudagraphs"); normalization: the pixel normalisation of the images the
    backbone is given, ``{"mean": [...], "std": [...]}`` (a fact of the data, linked from it, and so
    recorded in the checkpoint; :mod:`contrast.normalization`).

    A sibling that builds its encoder another way (pretrained weights, none for feature vectors)
    overrides :meth:`build_encoder`.
    """

    def __init__(
        self,
        backbone: str = "resnet18",
        cifar_stem: bool = False,
        in_channels: int = 3,
        channels_last: bool = False,
        optimizer: str = "sgd",
        lr: float = 0.06,
        lr_batch_size: int | None = None,
        weight_decay: float = 5e-4,
        sgd_momentum: float = 0.9,
        nesterov: bool = False,
        warmup_epochs: float = 0.0,
        compile: bool | str = False,
        normalization: dict | None = None,
    ) -> None:
        super().__init__()
        Normalization.of(normalization)  # a bad record is refused by name
        one_of("optimizer", optimizer, OPTIMIZERS)
        finite_number("lr", lr, minimum=0, strictly=True)
        if lr_batch_size is not None:
            int_at_least("lr_batch_size", lr_batch_size, 1)
        finite_number("weight_decay", weight_decay, minimum=0)
        finite_number("sgd_momentum", sgd_momentum, minimum=0)
        if not isinstance(compile, bool):
            one_of("compile", compile, COMPILE_MODES)
        boolean("nesterov", nesterov)
        if nesterov and (optimizer != "sgd" or not sgd_momentum > 0):
            raise ConfigError(
                "nesterov",
                f"nesterov needs optimizer sgd with sgd_momentum > 0, got optimizer {optimizer!r}, "
                f"sgd_momentum {sgd_momentum!r}",
            )
        finite_number("warmup_epochs", warmup_epochs, minimum=0)
        self.save_hyperparameters()
        # The command line links every fact of the data (DATA_FACTS in contrast.fits) into the
        # model's arguments; the hyper-parameters keep those this model takes.
        accepted = constructor_arguments(type(self))
        for key in [k for k in self.hparams if not k.startswith("_") and k not in accepted]:
            del self.hparams[key]
        self.set_backbone(self.build_encoder())

    def build_encoder(self) -> nn.Module:
        """The image encoder of the hyper-parameters (``feature_dim`` set)."""
        hp = self.hparams
        return build_backbone(
            hp.backbone, cifar_stem=hp.cifar_stem, in_channels=hp.in_channels, channels_last=hp.channels_last
        )

    def set_backbone(self, backbone: nn.Module) -> None:
        self.backbone = backbone
        self.feature_dim = getattr(backbone, "feature_dim", 0)
        # Not registered as a submodule: the checkpoint holds the backbone once, under the same
        # keys whether or not it is compiled.
        mode = self.hparams.compile
        compiled = torch.compile(backbone, mode=None if mode in (True, "default") else mode) if mode else backbone
        object.__setattr__(self, "_encode", compiled)

    # ------------------------------------------------------------------ the encoder
    def memory_format(self, images: Tensor) -> Tensor:
        """Images in the memory format of the weights (channels-last when ``channels_last``)."""
        return images.contiguous(memory_format=torch.channels_last) if self.hparams.channels_last else images

    def encode(self, images: Tensor) -> Tensor:
        """Backbone features (N, F) of images (N, C, H, W)."""
        return self._encode(self.memory_format(images))

    def forward(self, images: Tensor) -> Tensor:
        """Backbone features of images (what evaluation and export use)."""
        return self.encode(images)

    # ------------------------------------------------------------------ logging
    def _logged(self, value: Tensor) -> Tensor:
        """Under DDP, the mean over all ranks at the steps the logger writes, so the figure is the
        global batch's; a rank's own value at the others (an all-reduce every step would make each
        step wait for every rank). The mean of equal shards' losses is the global batch's loss."""
        trainer = self._trainer
        if distributed.is_distributed() and trainer is not None and trainer._logger_connector.should_update_logs:
            return distributed.mean_over_ranks(value)
        return value.detach()

    # ------------------------------------------------------------------ optimizer and schedule
    def extra_parameter_groups(self) -> list[dict]:
        """Parameter groups with settings of their own (the online probe's); their parameters are
        left out of the weight-decay groups. Each dict: ``prefix`` (the parameters' name prefix), ``lr``."""
        return []

    def configure_optimizers(self):
        hp = self.hparams
        extra = self.extra_parameter_groups()
        prefixes = tuple(group["prefix"] for group in extra)
        decay, no_decay = [], []
        for name, param in self.named_parameters():
            if not param.requires_grad or (prefixes and name.startswith(prefixes)):
                continue
            (no_decay if param.ndim <= 1 else decay).append(param)
        # No weight decay on biases and norms; LARS leaves them (and the probe) unadapted, as SimCLR.
        lars = {"lars_exclude": True} if hp.optimizer == "lars" else {}
        groups = [{"params": decay, "weight_decay": hp.weight_decay}, {"params": no_decay, "weight_decay": 0.0} | lars]
        for group in extra:
            params = [p for name, p in self.named_parameters() if name.startswith(group["prefix"])]
            groups.append({"params": params, "weight_decay": 0.0, "lr": group["lr"]} | lars)
        lr = self.peak_lr()
        if hp.optimizer == "sgd":
            optimizer = torch.optim.SGD(groups, lr=lr, momentum=hp.sgd_momentum, nesterov=hp.get("nesterov", False))
        elif hp.optimizer == "adamw":
            optimizer = torch.optim.AdamW(groups, lr=lr)
        else:
            optimizer = LARS(groups, lr=lr, momentum=hp.sgd_momentum)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        steps_per_epoch = total / max(1, self.trainer.max_epochs or 1) if self.trainer.max_epochs else total
        warmup = int(round(hp.warmup_epochs * steps_per_epoch))
        schedule = WarmupCosine(warmup, total)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def peak_lr(self) -> float:
        """The optimizer's peak learning rate: ``lr``, scaled to the run's global batch when
        ``lr_batch_size`` is set (the online probe's ``probe_lr`` is not scaled)."""
        hp = self.hparams
        if hp.get("lr_batch_size") is None:
            return hp.lr
        trainer = self.trainer
        per_device = getattr(trainer.datamodule, "batch_size", None)
        if not isinstance(per_device, int):
            raise ConfigError("lr_batch_size", "lr_batch_size needs a data module with a batch_size")
        global_batch = per_device * trainer.world_size * trainer.accumulate_grad_batches
        return hp.lr * global_batch / hp.lr_batch_size

    @property
    def total_steps(self) -> int:
        return max(1, int(self.trainer.estimated_stepping_batches)) if self._trainer is not None else 1


class ContrastiveModule(TrainingBase):
    """Two views of each image. Args (besides :class:`TrainingBase`'s): num_classes: classes of the
    online probe (linked from the data; 0: unlabelled data, no probe); probe_lr: its learning rate.
    A method subclass states only ``contrastive_step``: how the two views become a loss.

    Multi-crop (``num_small`` small views after q and k, Caron et al. 2020) reaches the methods whose
    ``multi_crop`` is True, as ``contrastive_step(q, k[, labels], small=(s_1, …, s_n))``."""

    uses_labels = False  # True: contrastive_step(q, k, labels) (SupCon)
    multi_crop = False  # True: contrastive_step takes small=(views …) beyond q and k

    def __init__(self, num_classes: int = 10, probe_lr: float = 0.1, **kwargs) -> None:
        super().__init__(**kwargs)
        finite_number("probe_lr", probe_lr, minimum=0, strictly=True)
        if num_classes != 0:  # 0: unlabelled data, no probe
            int_at_least("num_classes", num_classes, 2, why="or 0: unlabelled data, no probe")
        self.probe = nn.Linear(self.feature_dim, num_classes) if num_classes else None

    def contrastive_step(self, q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
        """Return (loss, backbone features of the q view) for one batch of views."""
        raise NotImplementedError

    def setup(self, stage: str) -> None:
        data = self.trainer.datamodule if self._trainer is not None else None
        if stage == "fit" and self.uses_labels and data is not None and not getattr(data, "labelled", True):
            raise ValueError(f"{type(self).__name__} needs labelled training images; the data has none")
        if stage == "fit" and data is not None and len(getattr(data, "recipes", (None, None))) < 2:
            raise ConfigError(
                "recipe_k", f"{type(self).__name__} needs two views of each image; recipe_k 'none' gives one"
            )
        if stage == "fit" and data is not None and len(getattr(data, "recipes", ())) > 2 and not self.multi_crop:
            raise ConfigError(
                "num_small",
                f"{type(self).__name__} takes two views of each image here; multi-crop (num_small) is for SimCLR "
                "with loss nt_xent and SupCon",
            )

    def training_step(self, batch, batch_idx: int) -> Tensor:
        (q, k, *small), labels = batch  # two views of each image (every data path), multi-crop's small ones, labels
        more = {"small": tuple(small)} if small else {}
        args = (q, k, labels) if self.uses_labels else (q, k)
        loss, features = self.contrastive_step(*args, **more)
        batch_size = q.shape[0]
        self.log("train/loss", self._logged(loss), prog_bar=True, batch_size=batch_size)
        if self.probe is None:  # unlabelled data
            return loss
        probe_logits = self.probe(features.detach().float())
        probe_loss = F.cross_entropy(probe_logits, labels)
        probe_top1 = (probe_logits.argmax(1) == labels).float().mean() * 100
        self.log("probe/train_loss", self._logged(probe_loss), batch_size=batch_size)
        self.log("probe/train_top1", self._logged(probe_top1), batch_size=batch_size)
        return loss + probe_loss

    def validation_step(self, batch, batch_idx: int) -> None:
        images, labels = batch
        if self.probe is None:
            return
        logits = self.probe(self.encode(images).float())
        self.log(
            "val/probe_top1",
            (logits.argmax(1) == labels).float().mean() * 100,
            prog_bar=True,
            batch_size=images.shape[0],
            sync_dist=True,
        )

    def extra_parameter_groups(self) -> list[dict]:
        return [] if self.probe is None else [{"prefix": "probe.", "lr": self.hparams.probe_lr}]


def constructor_arguments(cls: type) -> set[str]:
    """The arguments of ``cls.__init__`` and of the bases it hands ``**kwargs`` to."""
    return set(constructor_parameters(cls))
