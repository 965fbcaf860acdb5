"""Two towers into one space: CLIP-style and ACMR-style cross-modal retrieval training.

Image tower: a backbone of the registry (or a pretrained one, frozen or fine-tuned), or nothing
(``backbone: none``) when the images are pre-extracted feature vectors; then an MLP head into
``embed_dim``. Text tower: a text encoder over word ids (``bag`` or ``transformer``, vocabulary
from the training captions), or nothing when the texts are vectors; then an MLP head.

Objectives, weighted and summed (``objectives={"clip": 1.0, "triplet": 0.5}``):

* ``clip`` (Radford et al. 2021): symmetric InfoNCE with a learnable, clamped temperature
  (open_clip: logit scale initialised to 1/0.07, clamped at 100; here τ = 1/scale, learned as log τ,
  clamped to [``min_temperature``, 1]); under DDP open_clip's local loss with gathered features.
* ``siglip`` (Zhai et al. 2023): the pairwise sigmoid loss, its scale t = exp(t′) and bias b
  learned (t′ = log 10, b = −10 at the start; t clamped at 100), across ranks with gathered texts.
* ``triplet``: cross-modal triplet constraints (VSE++ hardest negatives by default), label-aware when
  the data has labels (an item of the same label is never a negative).
* ``acmr`` (Wang et al. 2017, "Adversarial Cross-Modal Retrieval"): a label classifier on both
  modalities' embeddings (``label_weight``), the label-aware cross-modal triplet, and a modality
  classifier trained through gradient reversal (``adversarial_weight`` × Ganin's ramp λ_p).

The facts of the data the towers are built for (vocabulary, input widths, classes) are constructor
arguments, linked from the data module by the command line (``CrossModal(**data.facts(), ...)`` in
Python), so they are hyper-parameters: recorded once in every checkpoint, compared by the one
checkpoint-fits-config check, and enough for :meth:`CrossModal.from_checkpoint` to rebuild the model.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from contrast.checkpoint import CheckpointError, read_checkpoint
from contrast.checks import ConfigError, boolean, finite_number, int_at_least, one_of
from contrast.losses import SigLIPScale, Temperature, clip_loss, cross_modal_triplet, modality_loss, siglip_loss
from contrast.losses.adversarial import ganin_schedule
from contrast.methods.base import TrainingBase
from contrast.methods.grad_cache import grad_cache_loss
from contrast.methods.pretrained import load_pretrained, save_pretrained
from contrast.methods.towers import build_towers, image_encoder, pixel_normalization
from contrast.models.locking import checkpoint_activations, keep_frozen_statistics, lock, refuse_trained_batchnorm
from contrast.models.text import vocabulary_of

OBJECTIVES = ("clip", "siglip", "triplet", "acmr")
MINING = ("hardest", "semi-hard", "all")


class CrossModal(TrainingBase):
    """Args (besides :class:`~contrast.methods.base.TrainingBase`'s; ``backbone`` is the image encoder,
    "none" when the images are feature vectors):

    text_encoder: "bag" | "transformer" (trained from scratch; text_width: its width), or
    ``hf/<name or folder>``: a pretrained Hugging Face model (:mod:`contrast.models.hf`; the data's
    tokenizer must be the same ``hf/<name>``), pooled by text_pooler ("cls", "mean", "last",
    "pooler": the model's pooler_output); text_config: the pretrained model's configuration (recorded
    by the model itself, so that a checkpoint rebuilds it without its folder; leave unset);
    ``backbone: hf/<name or folder>``: a Hugging Face vision model as the image tower, pooled by
    image_pooler ("pooler", "cls", "mean"), image_config its recorded configuration; embed_dim: the
    shared space; projection: both heads into it, "mlp" (Linear-ReLU-Linear, head_hidden wide) or
    "linear" (one Linear without bias, CLIP's); objectives: {name: weight} over "clip",
    "siglip", "triplet", "acmr"; temperature: τ of ``clip`` (its initial value when learned);
    learn_temperature; min_temperature: the clamp (0.01 = logit scale 100); margin and mining of
    the triplet terms; label_weight, adversarial_weight: ACMR's label and modality terms;
    image_weights: an exported backbone folder or a checkpoint to start the image tower from;
    freeze_image, freeze_text: keep that encoder fixed (its normalisation statistics too; LiT is a
    frozen pretrained image tower and a trained text tower); image_unlocked_groups,
    text_unlocked_layers: with a frozen tower, its last N layer groups train all the same
    (:mod:`contrast.models.locking`); grad_checkpointing: recompute the text transformer's blocks
    (and a timm image tower's, a pretrained text model's) in the backward pass instead of keeping their
    activations; accumulate_pairs: K, encode the batch K micro-batches at a time, its loss still over
    all the batch's pairs (GradCache, :mod:`contrast.methods.grad_cache`: the data's batch_size is the
    contrastive batch, the towers' activation memory that of batch_size / K); image_mean,
    image_std: normalisation of uint8 images (default: a pretrained encoder's own, recorded with its
    weights; else 0.5 / 0.25); max_length: words per caption (the transformer's
    positions); vocabulary, image_dim, text_dim, num_classes: the data's facts (linked from the data:
    the caption words or a BPE tokenizer's JSON, or the widths of image / text vectors, and the label
    classes; 0 when none);
    optimizer, lr, weight_decay: as the base's, with CLIP-like defaults (AdamW, 1e-3, 1e-4).
    """

    def __init__(
        self,
        text_encoder: str = "bag",
        text_width: int = 256,
        text_pooler: str = "mean",
        text_config: dict | None = None,
        image_pooler: str = "pooler",
        image_config: dict | None = None,
        embed_dim: int = 128,
        head_hidden: int = 512,
        projection: str = "mlp",
        objectives: dict[str, float] | None = None,
        temperature: float = 0.07,
        learn_temperature: bool = True,
        min_temperature: float = 0.01,
        margin: float = 0.2,
        mining: str = "hardest",
        label_weight: float = 1.0,
        adversarial_weight: float = 0.1,
        image_weights: str | None = None,
        open_clip_weights: str | None = None,
        freeze_image: bool = False,
        freeze_text: bool = False,
        image_unlocked_groups: int = 0,
        text_unlocked_layers: int = 0,
        grad_checkpointing: bool = False,
        accumulate_pairs: int = 1,
        image_mean: tuple[float, ...] | None = None,
        image_std: tuple[float, ...] | None = None,
        max_length: int = 32,
        vocabulary: list[str] | str | dict | None = None,
        image_dim: int = 0,
        text_dim: int = 0,
        num_classes: int = 0,
        optimizer: str = "adamw",
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        **kwargs,
    ) -> None:
        super().__init__(optimizer=optimizer, lr=lr, weight_decay=weight_decay, **kwargs)
        objectives = {"clip": 1.0} if objectives is None else dict(objectives)
        unknown = set(objectives) - set(OBJECTIVES)
        if unknown or not objectives:
            raise ConfigError("objectives", f"objectives must map some of {OBJECTIVES} to weights, got {objectives!r}")
        for name, weight in objectives.items():
            try:
                finite_number(f"the weight of {name!r}", weight, minimum=0)
            except ConfigError as error:
                raise ConfigError("objectives", f"objectives: {error}") from None
        int_at_least("embed_dim", embed_dim)
        one_of("mining", mining, MINING)
        for name, value in (
            ("margin", margin),
            ("label_weight", label_weight),
            ("adversarial_weight", adversarial_weight),
        ):
            finite_number(name, value, minimum=0)
        if not isinstance(temperature, (int, float)) or not min_temperature <= temperature <= 1.0:
            raise ConfigError(
                "temperature", f"temperature must lie in [min_temperature={min_temperature}, 1], got {temperature!r}"
            )
        if self._open_clip is not None and open_clip_weights is not None:  # the trained model's own scale
            temperature = min(1.0, max(min_temperature, math.exp(-self._open_clip["facts"]["logit_scale"])))
            self.hparams.temperature = temperature
        image_mean, image_std = self._normalization(image_mean, image_std)
        self.objectives = objectives
        self.temperature = (
            Temperature(temperature, min_value=min_temperature, max_value=1.0)
            if learn_temperature
            else float(temperature)
        )
        self.siglip = SigLIPScale() if "siglip" in objectives else None  # SigLIP's learned scale and bias
        self.register_buffer("image_mean", torch.tensor(image_mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("image_std", torch.tensor(image_std).view(1, -1, 1, 1), persistent=False)
        self._build_towers(vocabulary, image_dim or 0, text_dim or 0, num_classes or 0)
        self._frozen: list[nn.Module] = []  # kept in eval mode by train(): frozen towers, frozen normalisation layers
        for tower, frozen, unlocked, name, freeze in (
            (self.backbone, freeze_image, image_unlocked_groups, "image_unlocked_groups", "freeze_image"),
            (self.text_encoder, freeze_text, text_unlocked_layers, "text_unlocked_layers", "freeze_text"),
        ):
            if unlocked and not frozen:
                raise ConfigError(name, f"{name} unlocks the last groups of a frozen tower: set {freeze} too")
            if frozen and not any(True for _ in tower.parameters()):
                raise ConfigError(freeze, f"{freeze}: this tower has no weights (its inputs are vectors)")
            if frozen:
                norms = lock(tower, unlocked, name)
                self._frozen += [tower] if not unlocked else norms
        if boolean("grad_checkpointing", grad_checkpointing):
            checkpoint_activations(self.backbone, self.text_encoder, freeze_image, self.hparams.backbone)
        if int_at_least("accumulate_pairs", accumulate_pairs) > 1:
            refuse_trained_batchnorm(self.backbone, freeze_image, self.hparams.backbone, "accumulate_pairs")

    def setup(self, stage: str) -> None:
        super().setup(stage)
        data = self.trainer.datamodule if self._trainer is not None else None
        batch = getattr(data, "batch_size", None)
        k = self.hparams.accumulate_pairs
        size = dict(getattr(data, "hparams", {})).get("image_size")
        side = self._open_clip["facts"]["size"] if self._open_clip is not None else getattr(self.backbone, "size", None)
        if stage == "fit" and side is not None and size not in (None, side):  # open_clip's and HF's fixed sides
            raise ConfigError(
                "image_size", f"image_size: {self.hparams.backbone} takes {side}-px images; the data gives {size}"
            )
        if stage == "fit" and k > 1 and self._trainer is not None:
            if self.trainer.accumulate_grad_batches > 1:
                raise ConfigError(
                    "accumulate_pairs",
                    "accumulate_pairs enlarges the contrastive batch itself; "
                    "leave trainer.accumulate_grad_batches at 1",
                )
            if "16" in str(self.trainer.precision) and "bf16" not in str(self.trainer.precision):
                raise ConfigError(
                    "accumulate_pairs", "accumulate_pairs: use precision bf16-mixed or 32, not fp16's scaler"
                )
        if stage == "fit" and isinstance(batch, int) and batch % k:
            raise ConfigError(
                "accumulate_pairs",
                f"accumulate_pairs ({k}) must divide the data's batch_size ({batch}) into micro-batches",
            )

    def _normalization(self, mean, std) -> tuple[tuple[float, ...], tuple[float, ...]]:
        return pixel_normalization(self, mean, std)

    def build_encoder(self) -> nn.Module:
        return image_encoder(self)

    # ------------------------------------------------------------------ the towers, from the data
    def _build_towers(self, vocabulary: list[str] | str | dict | None, image_dim: int, text_dim: int, num_classes: int):
        build_towers(self, vocabulary, image_dim, text_dim, num_classes)

    @classmethod
    def from_checkpoint(cls, path, map_location: str = "cpu") -> CrossModal:
        """The trained model of a checkpoint written by ``contrast fit`` (a path, or the checkpoint
        already read); no data needed: the data's facts are among its hyper-parameters."""
        checkpoint = path if isinstance(path, dict) else read_checkpoint(path)
        path = "the checkpoint" if isinstance(path, dict) else path
        hparams = crossmodal_hparams(checkpoint)
        if hparams is None:
            raise CheckpointError(f"{path}: not a CrossModal checkpoint (no objectives or text tower)")
        # The weights are in the checkpoint (a pretrained text tower is built from the configuration it
        # records, ``text_config``; an open_clip model from open_clip's own configuration of its name).
        hparams.pop("image_weights", None)
        hparams.pop("open_clip_weights", None)
        model = cls(**hparams)
        model.load_state_dict(checkpoint["state_dict"])
        return model.to(map_location).eval()

    @classmethod
    def from_pretrained(cls, folder, map_location: str = "cpu") -> CrossModal:
        """The model ``contrast export`` (:func:`contrast.methods.pretrained.save_pretrained`) wrote."""
        return load_pretrained(cls, folder, map_location)

    def save_pretrained(self, folder):
        """``model.safetensors`` and ``config.json`` in ``folder`` (no pickle); see :meth:`from_pretrained`."""
        return save_pretrained(self, folder)

    # ------------------------------------------------------------------ the towers at work
    def train(self, mode: bool = True) -> CrossModal:
        super().train(mode)
        keep_frozen_statistics(getattr(self, "_frozen", []))  # frozen towers and norms keep their statistics
        return self

    def embed_images(self, images: Tensor) -> Tensor:
        """(B, E) image embeddings (not normalised) of uint8 / float pictures or image vectors."""
        dtype = self.image_mean.dtype  # the model's floating type
        if images.dtype == torch.uint8:
            images = (images.to(dtype) / 255 - self.image_mean) / self.image_std
        features = self.encode(images) if images.dim() == 4 else images.to(dtype)
        return self.image_head(features)

    def tokenize(self, captions: list[str]) -> Tensor:
        """(B, L) token ids of captions with the model's own vocabulary (the one recorded in its
        checkpoint), padded with 0, as the data module gives them in training."""
        if self.hparams.vocabulary is None:
            raise ValueError("this model's texts are vectors (text_dim > 0): it has no vocabulary to tokenize with")
        if getattr(self, "_vocabulary", None) is None:
            self._vocabulary = vocabulary_of(self.hparams.vocabulary)
        return self._vocabulary.encode_batch(list(captions), self.hparams.max_length)

    def embed_texts(self, texts: Tensor) -> Tensor:
        """(B, E) text embeddings of (B, L) word ids or (B, Dt) text vectors."""
        return self.text_head(
            self.text_encoder(texts if texts.dtype == torch.long else texts.to(self.image_mean.dtype))
        )

    def tau(self) -> float | Tensor:
        return self.temperature() if isinstance(self.temperature, Temperature) else self.temperature

    def training_step(self, batch, batch_idx: int) -> Tensor:
        images, texts, labels = batch  # (B, ...), (B, L) or (B, Dt), (B,)
        terms: dict[str, Tensor] = {}

        def objective(image: Tensor, text: Tensor) -> Tensor:  # (B, E) each -> the weighted loss
            terms.update(self._objectives(image, text, labels))
            return sum(self.objectives[name] * value for name, value in terms.items())

        if self.hparams.accumulate_pairs > 1:  # GradCache: the towers run a micro-batch at a time
            image_parameters = [*self.backbone.parameters(), *self.image_head.parameters()]
            loss = grad_cache_loss(
                self.embed_images,
                self.embed_texts,
                objective,
                images,
                texts,
                self.hparams.accumulate_pairs,
                image_parameters,
            )
        else:
            loss = objective(*self._embed(images, texts))
        batch_size = images.shape[0]
        self.log("train/loss", self._logged(loss), prog_bar=True, batch_size=batch_size)
        for name, value in terms.items():
            self.log(f"train/{name}", self._logged(value), batch_size=batch_size)
        tau = self.tau()
        self.log("train/temperature", tau.detach() if isinstance(tau, Tensor) else tau, batch_size=batch_size)
        return loss

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        if self.hparams.accumulate_pairs > 1:  # zeroed before the step: its micro-batches accumulate into .grad
            for optimizer in self.trainer.optimizers:
                optimizer.zero_grad(set_to_none=True)

    def optimizer_zero_grad(self, epoch: int, batch_idx: int, optimizer) -> None:
        if self.hparams.accumulate_pairs == 1:  # otherwise done before the step (on_train_batch_start)
            super().optimizer_zero_grad(epoch, batch_idx, optimizer)

    def _embed(self, images: Tensor, texts: Tensor) -> tuple[Tensor, Tensor]:
        return self.embed_images(images), self.embed_texts(texts)

    def _objectives(self, image: Tensor, text: Tensor, labels: Tensor) -> dict[str, Tensor]:
        """Each objective's loss on the (B, E) embeddings of a batch of pairs."""
        labelled = bool(self.hparams.num_classes)
        terms: dict[str, Tensor] = {}
        if "clip" in self.objectives:
            terms["clip"] = clip_loss(image, text, self.tau(), validate=False, gather=True)
        if "siglip" in self.objectives:
            scale, bias = self.siglip()
            terms["siglip"] = siglip_loss(image, text, scale, bias, gather=True, validate=False)
            self.log("train/siglip_scale", scale.detach(), batch_size=image.shape[0])
            self.log("train/siglip_bias", bias.detach(), batch_size=image.shape[0])
        if "triplet" in self.objectives:
            terms["triplet"] = cross_modal_triplet(
                image,
                text,
                self.hparams.margin,
                labels=labels if labelled else None,
                mining=self.hparams.mining,
                validate=False,
                gather=True,
            )
        if "acmr" in self.objectives:
            terms["acmr"] = self._acmr(image, text, labels)
        return terms

    def _acmr(self, image: Tensor, text: Tensor, labels: Tensor) -> Tensor:
        hp = self.hparams
        label = 0.5 * (
            F.cross_entropy(_full_precision(self.label_classifier(image)), labels)
            + F.cross_entropy(_full_precision(self.label_classifier(text)), labels)
        )
        triplet = cross_modal_triplet(
            image, text, hp.margin, labels=labels, mining=hp.mining, validate=False, gather=True
        )
        progress = self.global_step / self.total_steps if self._trainer is not None else 1.0
        weight = hp.adversarial_weight * ganin_schedule(progress)
        adversarial = modality_loss(self.modality_classifier, image, text, weight)
        self.log("train/acmr_modality", self._logged(adversarial), batch_size=image.shape[0])
        return hp.label_weight * label + triplet + adversarial


def crossmodal_hparams(checkpoint: dict) -> dict | None:
    """A CrossModal checkpoint's hyper-parameters (None for another method's). Checkpoints written
    before the data's facts were hyper-parameters kept them under ``crossmodal_towers`` and had the
    probe arguments of the image methods' base: read in the current form."""
    hparams = {k: v for k, v in checkpoint.get("hyper_parameters", {}).items() if not k.startswith("_")}
    towers = checkpoint.get("crossmodal_towers")
    if "objectives" not in hparams and towers is None:
        return None
    hparams |= towers or {}
    hparams.pop("probe_lr", None)
    if hparams.get("normalization") is None and hparams.get("image_mean") is not None:  # before the record
        hparams["normalization"] = {"mean": list(hparams["image_mean"]), "std": list(hparams["image_std"])}
    return hparams


def _full_precision(x: Tensor) -> Tensor:
    """Logits for a cross-entropy: float32 under bf16 / fp16 autocast, float64 kept."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
