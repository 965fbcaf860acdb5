"""Linear evaluation: a linear classifier trained on a frozen pretrained backbone.

The ImageNet protocol of MoCo (He et al. 2020, ``main_lincls.py``: 100 epochs, SGD lr 30, no weight
decay) and solo-learn (``main_linear.py``): the backbone is frozen, BatchNorm included (kept in eval
mode, its running statistics untouched); a linear head — optionally behind a BatchNorm without
affine parameters, as MoCo v3 and MAE — is trained with SGD on RandomResizedCrop + flip views
(recipe ``linear_imagenet`` / ``linear_cifar10``, one view per image: ``recipe_k: none``); the test
split is scored on resize + centre crop (the recipe's ``eval_side``), top-1 and top-5.

``weights``: a ``contrast fit`` checkpoint, a ``contrast export`` folder, ``torchvision/<name>``
(``torchvision/resnet50``, ``torchvision/resnet50:IMAGENET1K_V1``: torchvision's weights, from the
torch hub cache when offline) or ``timm/<name>`` (timm's pretrained weights).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from contrast.checks import ConfigError, int_at_least
from contrast.eval.linear import correct_counts
from contrast.eval.protocol import LinearProtocol, augmentation, evaluation_crop
from contrast.methods.base import TrainingBase
from contrast.models import linear_head
from contrast.normalization import Normalization


class LinearEval(TrainingBase):
    """Args (besides :class:`TrainingBase`'s optimizer and schedule; its backbone arguments are
    taken from ``weights``): weights: the pretrained backbone (see the module's docstring);
    num_classes: classes of the training labels (linked from the data); head_norm: a non-affine
    BatchNorm in front of the linear layer.

    The backbone is fed pixels normalised as in its pretraining: where the data's normalisation
    (its fact ``normalization``, the recipe's) differs from the one recorded with the weights, the
    views are re-normalised per channel before the backbone (an affine map, exact), and the
    summary line says so.

    Defaults are MoCo's: SGD, lr 30 at batch 256, momentum 0.9, no weight decay, cosine schedule."""

    def __init__(
        self,
        weights: str,
        num_classes: int = 10,
        head_norm: bool = False,
        lr: float = 30.0,
        weight_decay: float = 0.0,
        **kwargs,
    ) -> None:
        if not isinstance(weights, str) or not weights:
            raise ConfigError(
                "weights", f"weights must name a checkpoint, an export folder or a model, got {weights!r}"
            )
        int_at_least("num_classes", num_classes, 2, why="linear evaluation needs labelled images of at least 2 classes")
        super().__init__(lr=lr, weight_decay=weight_decay, **kwargs)
        self._renormalise_from(Normalization.of(self.hparams.normalization))
        self.head = linear_head(self.feature_dim, num_classes, head_norm)
        self.backbone.requires_grad_(False)
        self.backbone.eval()
        self._counts = torch.zeros(3, dtype=torch.long)  # test images: seen, top-1 right, top-5 right
        self.scores: dict[str, float] = {}  # the last test figures: top1, top5
        self.protocol: LinearProtocol | None = None  # how the figures were made, said with them (set in setup)

    # ------------------------------------------------------------------ the frozen encoder
    def build_encoder(self) -> nn.Module:
        from contrast.export import pretrained_backbone

        hp = self.hparams
        backbone, arch = pretrained_backbone(hp.weights)
        if arch["in_channels"] != hp.in_channels:
            raise ValueError(
                f"weights: the backbone of {hp.weights} takes {arch['in_channels']}-channel images, but the data has "
                f"{hp.in_channels}-channel images"
            )
        hp.backbone, hp.cifar_stem = arch["backbone"], arch["cifar_stem"]  # recorded as they are
        self.pretrained = Normalization.of({k: arch[k] for k in ("mean", "std")}) if "mean" in arch else None
        return backbone

    def _renormalise_from(self, data: Normalization | None) -> None:
        """Map the data's normalisation onto the backbone's pretraining one (where both are known and differ)."""
        self.renormalised = data is not None and self.pretrained is not None and not data.same(self.pretrained)
        scale, shift = data.onto(self.pretrained) if self.renormalised else ((1.0,), (0.0,))
        self.register_buffer("_scale", torch.tensor(scale, dtype=torch.float64).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("_shift", torch.tensor(shift, dtype=torch.float64).view(1, -1, 1, 1), persistent=False)

    def encode(self, images: Tensor) -> Tensor:
        if self.renormalised:  # pixels as the backbone was pretrained on them
            images = images * self._scale.to(images.dtype) + self._shift.to(images.dtype)
        return super().encode(images)

    def train(self, mode: bool = True):
        super().train(mode)
        self.backbone.eval()  # frozen: BatchNorm uses and keeps its pretrained statistics
        return self

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        from contrast.checkpoint import CheckpointError

        state = checkpoint.get("state_dict", {})
        weight = next((v for k, v in state.items() if k in ("head.weight", "head.1.weight")), None)
        if weight is not None and tuple(weight.shape) != (self.hparams.num_classes, self.feature_dim):
            raise CheckpointError(
                f"the checkpoint's head takes features of width {weight.shape[1]} for {weight.shape[0]} classes, "
                f"but the backbone of {self.hparams.weights} gives features of width {self.feature_dim} and "
                f"the data has {self.hparams.num_classes} classes"
            )

    @torch.no_grad()
    def features(self, images: Tensor) -> Tensor:
        return self.encode(images).float()

    # ------------------------------------------------------------------ the checks against the data
    def setup(self, stage: str) -> None:
        import warnings

        warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")  # the frozen backbone
        data = self.trainer.datamodule if self._trainer is not None else None
        if data is None or stage != "fit":
            return
        if not getattr(data, "labelled", True):
            raise ValueError("linear evaluation needs labels: the training split of the data has none")
        test = data.eval_split(False) if hasattr(data, "eval_split") else None
        if test is not None:
            classes = getattr(test, "classes", None)
            count = len(classes) if classes else int(test.labels.max()) + 1
            if count != self.hparams.num_classes or int(test.labels.max()) >= self.hparams.num_classes:
                raise ValueError(
                    f"the training split has {self.hparams.num_classes} classes but the test split {count}: "
                    "linear evaluation needs the same classes in both"
                )
        recipe = getattr(data, "recipe_q", None)
        if recipe is not None:
            if self.hparams.normalization is None:  # built without the data's facts: the recipe's
                self._renormalise_from(recipe.normalization)
            self.protocol = protocol(self, data)

    # ------------------------------------------------------------------ training and test
    def training_step(self, batch, batch_idx: int) -> Tensor:
        views, labels = batch  # one view per image (recipe_k: none); each view a sample when more
        x = torch.cat(list(views)) if isinstance(views, (tuple, list)) else views
        y = labels.repeat(x.shape[0] // labels.shape[0])
        logits = self.head(self.features(x))
        loss = F.cross_entropy(logits, y)
        top1 = (logits.argmax(1) == y).float().mean() * 100
        self.log("train/loss", self._logged(loss), prog_bar=True, batch_size=x.shape[0])
        self.log("train/top1", self._logged(top1), batch_size=x.shape[0])
        return loss

    def on_validation_epoch_start(self) -> None:
        self._counts = torch.zeros(3, dtype=torch.long, device=self.device)

    def validation_step(self, batch, batch_idx: int) -> None:
        images, labels = batch
        logits = self.head(self.features(images))
        self._counts += correct_counts(logits, labels)

    def on_validation_epoch_end(self) -> None:
        from contrast import distributed

        counts = distributed.sum_over_ranks(self._counts) if distributed.is_distributed() else self._counts
        if self._trainer is not None and self.trainer.sanity_checking:
            return  # a few batches before training: no figure
        seen = max(1, int(counts[0]))
        self.scores = {"top1": 100.0 * int(counts[1]) / seen, "top5": 100.0 * int(counts[2]) / seen, "images": seen}
        self.scores["epoch"] = self.current_epoch + 1 if self._trainer is not None else 0
        self.log("val/top1", self.scores["top1"], prog_bar=True)
        self.log("val/top5", self.scores["top5"])

    def summary(self) -> str | None:
        """The last test figures with their protocol, for the run's summary line."""
        if not self.scores:
            return None
        return (
            f"linear evaluation ({self.protocol}): top-1 {self.scores['top1']:.2f}%  top-5 {self.scores['top5']:.2f}% "
            f"on {self.scores['images']} test images after epoch {self.scores['epoch']}"
        )


def protocol(model: LinearEval, data) -> LinearProtocol:
    """The run's protocol, from the model's and the data's settings and the trainer's length."""
    hp, recipe = model.hparams, data.recipe_q
    trainer = model._trainer
    epochs = trainer.max_epochs if trainer is not None and trainer.max_epochs not in (None, -1) else None
    steps = trainer.max_steps if trainer is not None and trainer.max_steps not in (None, -1) else None
    inputs = f"augmented views ({augmentation(recipe)}), frozen backbone"
    if model.renormalised:
        inputs += f" fed pixels re-normalised to its pretraining {model.pretrained}"
    return LinearProtocol(
        inputs=inputs,
        head_norm=hp.head_norm,
        length=f"{steps} steps" if steps is not None else f"{epochs} epochs",
        lr=model.peak_lr(),
        batch_size=getattr(data, "batch_size", 0),
        optimizer=hp.optimizer,
        momentum=hp.sgd_momentum,
        nesterov=bool(hp.get("nesterov")),
        weight_decay=hp.weight_decay,
        warmup_epochs=hp.warmup_epochs,
        test=evaluation_crop(recipe),
    )
