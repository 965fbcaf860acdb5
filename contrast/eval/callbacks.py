"""The evaluation callbacks: kNN accuracy of the image methods, retrieval of the two-tower models.

Each scores on the data module's test split every ``every_n_epochs`` epochs and after the last,
optionally scores the untrained model once at a fresh start (kept in the checkpoint, so a resumed
run reprints it), and gives :meth:`summary`, its final figure for the run's summary line.
"""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info

from contrast.checks import ConfigError, int_at_least
from contrast.eval.crossmodal import format_scores, retrieval_scores
from contrast.eval.features import extract_features
from contrast.eval.knn import KNNEvaluator


class KNNCallback(L.Callback):
    """Every ``every_n_epochs`` epochs (and after the last), extract backbone features of the data
    module's labelled train and test splits and log weighted-kNN ``knn/top1`` and ``knn/top5``.

    ``baseline=True`` also scores the untrained encoder once at the start of a fresh run
    (``knn/top1_init``), so the gain from pretraining is visible; the figure is kept in the
    checkpoint, so a resumed run reprints it instead of scoring the resumed weights. Features are
    extracted under ``no_grad`` (bf16 autocast on CUDA). Under DDP every rank extracts its shard and
    the features are gathered. The protocol (weighting, k, τ, backbone features, train split as the
    bank, test split scored) is printed with every figure and logged as hyper-parameters.

    ``pictures_every_n_epochs`` (0: never; a multiple of ``every_n_epochs``) also draws, from the
    same features, the nearest-neighbour grid and the 2-D map (:mod:`contrast.eval.pictures`) into
    ``<run folder>/pictures/epochNNNN_{neighbours,map}.png``, logged as images where the logger
    takes them (wandb).
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        k: int = 200,
        temperature: float = 0.1,
        backend: str = "auto",
        baseline: bool = False,
        pictures_every_n_epochs: int = 0,
        pictures_map: str = "auto",
    ) -> None:
        int_at_least("every_n_epochs", every_n_epochs)
        int_at_least("pictures_every_n_epochs", pictures_every_n_epochs, 0)
        if pictures_every_n_epochs % every_n_epochs:
            raise ConfigError(
                "pictures_every_n_epochs",
                f"pictures_every_n_epochs ({pictures_every_n_epochs}) must be a multiple of every_n_epochs "
                f"({every_n_epochs}): the pictures are drawn from the kNN evaluation's features",
            )
        from contrast.eval.pictures import MAPS

        if pictures_map not in MAPS:
            raise ConfigError("pictures_map", f"pictures_map must be one of {MAPS}, got {pictures_map!r}")
        self.pictures_every_n_epochs, self.pictures_map = pictures_every_n_epochs, pictures_map
        self.every_n_epochs, self.baseline = every_n_epochs, baseline
        self.knn = KNNEvaluator(k=k, temperature=temperature, backend=backend)  # validates the arguments
        self.results: dict[str, float] = {}
        self._evaluated_at_step = -1

    def describe(self) -> str:
        return self.knn.describe()

    def state_dict(self) -> dict:
        return {"top1_init": self.results["top1_init"]} if "top1_init" in self.results else {}

    def load_state_dict(self, state_dict: dict) -> None:
        if "top1_init" in state_dict:
            self.results["top1_init"] = float(state_dict["top1_init"])

    def active(self, trainer: L.Trainer) -> bool:
        """Whether there is labelled data to score on (pretraining on unlabelled images has none)."""
        data = trainer.datamodule
        if data is None or not hasattr(data, "eval_dataloader"):
            raise ValueError("KNNCallback needs a ContrastiveData data module (with eval_dataloader)")
        return getattr(data, "has_labelled_eval", True)

    def evaluate(self, trainer: L.Trainer, module: L.LightningModule) -> dict[str, float]:
        data = trainer.datamodule
        from contrast import distributed

        # Each rank extracts its share of the images with rank 0's BatchNorm statistics; the features of
        # all ranks are gathered.
        distributed.broadcast_buffers(module.backbone)
        features = []
        for train in (True, False):  # through the module: encode's channels-last and torch.compile
            x, y = extract_features(module, data.eval_dataloader(train, shard=True), module.device)
            device = module.device if distributed.is_distributed() else x.device
            features.append(
                (distributed.gather_variable(x.to(device)).cpu(), distributed.gather_variable(y.to(device)).cpu())
            )
        (train_x, train_y), (test_x, test_y) = features
        self._features = features  # for the pictures of this epoch
        # the features are this call's own: the bank is normalised in place (its memory once)
        return self.knn.fit(train_x, train_y, copy=False).score(test_x, test_y)

    def draw(self, trainer: L.Trainer, epoch: int) -> dict | None:
        """The pictures of this epoch's features into the run folder (rank 0), logged where the logger takes images."""
        from pathlib import Path

        from contrast.eval.pictures import draw_from_data

        if not trainer.is_global_zero:
            return None
        folder = Path(trainer.log_dir or trainer.default_root_dir) / "pictures"
        train, test = self._features
        title = f"epoch {epoch}, backbone features"
        paths = draw_from_data(
            folder, trainer.datamodule, train, test, method=self.pictures_map, prefix=f"epoch{epoch:04d}_", title=title
        )
        for logger in trainer.loggers:
            if hasattr(logger, "log_image"):  # wandb
                for name in ("neighbours", "map"):
                    logger.log_image(key=f"pictures/{name}", images=[str(paths[name])], step=trainer.global_step)
        return paths

    def on_fit_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not self.active(trainer):
            rank_zero_info("kNN evaluation off: no labelled images (give a labelled folder with --data.eval_root)")
            return
        for logger in trainer.loggers:
            logger.log_hyperparams({"knn_protocol": f"{self.describe()}, train split as the bank, test split scored"})
        if not self.baseline:
            return
        if trainer.ckpt_path is None:  # a fresh start: the weights are the untrained encoder's
            self.results["top1_init"] = self.evaluate(trainer, module)["top1"]
        if "top1_init" in self.results:
            rank_zero_info(f"{self.describe()} top-1 of the untrained encoder: {self.results['top1_init']:.2f}%")

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        last = trainer.max_epochs is not None and epoch >= trainer.max_epochs
        if (epoch % self.every_n_epochs and not last) or not self.active(trainer):
            return
        with torch.no_grad():
            result = self.evaluate(trainer, module)
        self.results.update(result)
        self._evaluated_at_step = trainer.global_step
        module.log("knn/top1", result["top1"], rank_zero_only=True)
        module.log("knn/top5", result["top5"], rank_zero_only=True)
        if "top1_init" in self.results:
            module.log("knn/top1_init", self.results["top1_init"], rank_zero_only=True)
        rank_zero_info(f"epoch {epoch}: {self.describe()} top-1 {result['top1']:.2f}%  top-5 {result['top5']:.2f}%")
        if self.pictures_every_n_epochs and epoch % self.pictures_every_n_epochs == 0:
            self.draw(trainer, epoch)

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        # Stopped by max_steps or early stopping mid-epoch: score the final weights too.
        if self._evaluated_at_step != trainer.global_step and trainer.global_step > 0 and self.active(trainer):
            with torch.no_grad():
                self.results.update(self.evaluate(trainer, module))
            self._evaluated_at_step = trainer.global_step

    def summary(self) -> str | None:
        """The final figure for the run's summary line (None when nothing was scored)."""
        return f"{self.describe()} top-1 {self.results['top1']:.2f}%" if "top1" in self.results else None

    def on_fit_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if "top1" in self.results:
            line = f"kNN accuracy {self.describe()[4:]}: top-1 {self.results['top1']:.2f}%"
            if "top1_init" in self.results:
                line += f" (untrained encoder: {self.results['top1_init']:.2f}%)"
            if trainer.is_global_zero:
                print(line, flush=True)


class RetrievalCallback(L.Callback):
    """Every ``every_n_epochs`` epochs (and after the last), embed the test split and log retrieval
    both ways (``retrieval/i2t/R@5``, ...). ``baseline=True`` also scores the untrained model once
    at a fresh start; the figures are kept in the checkpoint, so a resumed run reprints them."""

    def __init__(self, every_n_epochs: int = 1, baseline: bool = True, ks: tuple[int, ...] = (1, 5, 10)) -> None:
        int_at_least("every_n_epochs", every_n_epochs)
        if not ks or any(not isinstance(k, int) or k < 1 for k in ks):
            raise ConfigError("ks", f"ks must be positive ints, got {ks!r}")
        self.every_n_epochs, self.baseline, self.ks = every_n_epochs, baseline, tuple(ks)
        self.results: dict[str, float] = {}
        self.initial: dict[str, float] = {}
        self._evaluated_at_step = -1

    def state_dict(self) -> dict:
        return {"initial": dict(self.initial)}

    def load_state_dict(self, state_dict: dict) -> None:
        self.initial = dict(state_dict.get("initial", {}))

    def _check(self, trainer: L.Trainer, module) -> None:
        if not hasattr(trainer.datamodule, "eval_loaders") or not hasattr(module, "embed_texts"):
            raise ValueError("RetrievalCallback needs a two-tower model (CrossModal) on paired data (PairedData)")

    def on_fit_start(self, trainer: L.Trainer, module) -> None:
        self._check(trainer, module)
        trainer.datamodule.split(False)  # a missing or bad test split stops the run now, not after the last epoch
        if self.baseline and trainer.ckpt_path is None:
            self.initial = retrieval_scores(module, trainer.datamodule, self.ks)
        if self.initial:
            rank_zero_info(f"retrieval of the untrained model: {format_scores(self.initial, self.ks)}")

    def on_train_epoch_end(self, trainer: L.Trainer, module) -> None:
        epoch = trainer.current_epoch + 1
        last = trainer.max_epochs is not None and epoch >= trainer.max_epochs
        if epoch % self.every_n_epochs and not last:
            return
        self.results = retrieval_scores(module, trainer.datamodule, self.ks)
        self._evaluated_at_step = trainer.global_step
        for key, value in self.results.items():
            module.log(f"retrieval/{key}", value, rank_zero_only=True)
        rank_zero_info(f"epoch {epoch}: {format_scores(self.results, self.ks)}")

    def on_train_end(self, trainer: L.Trainer, module) -> None:
        # Stopped mid-epoch (max_steps), or resumed from the last step's checkpoint of a run stopped
        # during its final evaluation: score the final weights, so the summary has its figures.
        if self._evaluated_at_step != trainer.global_step and trainer.global_step > 0:
            self.results = retrieval_scores(module, trainer.datamodule, self.ks)
            self._evaluated_at_step = trainer.global_step

    def report(self) -> str:
        """The final figures next to the untrained model's."""
        lines = [f"retrieval on the test split (trained):   {format_scores(self.results, self.ks)}"]
        if self.initial:
            lines.append(f"retrieval on the test split (untrained): {format_scores(self.initial, self.ks)}")
        return "\n".join(lines)

    def summary(self) -> str | None:
        """The final R@5 both ways for the run's summary line (None when nothing was scored)."""
        if "i2t/R@5" not in self.results:
            return None
        return f"retrieval R@5 image→text {self.results['i2t/R@5']:.1f}%, text→image {self.results['t2i/R@5']:.1f}%"

    def on_fit_end(self, trainer: L.Trainer, module) -> None:
        if self.results and trainer.is_global_zero:
            print(self.report(), flush=True)
