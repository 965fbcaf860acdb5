"""kNN accuracy of an image method's backbone features during training."""

from __future__ import annotations

import lightning as L

from contrast.checks import ConfigError, int_at_least, one_of
from contrast.eval.callbacks.base import EvaluationCallback
from contrast.eval.features import extract_features
from contrast.eval.knn import KNNEvaluator


class KNNCallback(EvaluationCallback):
    """Extract backbone features of the data module's labelled train and test splits and log
    weighted-kNN ``knn/top1`` and ``knn/top5`` (the schedule and the baseline:
    :class:`EvaluationCallback`; ``baseline=True`` scores the untrained encoder, ``knn/top1_init``).
    Features are extracted under ``no_grad`` (bf16 autocast on CUDA). Under DDP every rank extracts
    its shard and the features are gathered. The protocol (weighting, k, τ, backbone features, train
    split as the bank, test split scored) is printed with every figure and logged as hyper-parameters.

    ``pictures_every_n_epochs`` (0: never; a multiple of ``every_n_epochs``) also draws, from the
    same features, the nearest-neighbour grid and the 2-D map (:mod:`contrast.eval.pictures`) into
    ``<run folder>/pictures/epochNNNN_{neighbours,map}.png``, logged as images where the logger
    takes them (wandb).
    """

    name = "knn"
    logged = ("top1", "top5")
    off = "kNN evaluation off: no labelled images (give a labelled folder with --data.eval_root)"

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
        super().__init__(every_n_epochs, baseline)
        int_at_least("pictures_every_n_epochs", pictures_every_n_epochs, 0)
        if pictures_every_n_epochs % every_n_epochs:
            raise ConfigError(
                "pictures_every_n_epochs",
                f"pictures_every_n_epochs ({pictures_every_n_epochs}) must be a multiple of every_n_epochs "
                f"({every_n_epochs}): the pictures are drawn from the kNN evaluation's features",
            )

        from contrast.eval.pictures import MAPS

        self.pictures_map = one_of("pictures_map", pictures_map, MAPS)
        self.pictures_every_n_epochs = pictures_every_n_epochs
        self.knn = KNNEvaluator(k=k, temperature=temperature, backend=backend)  # validates the arguments

    def describe(self) -> str:
        return self.knn.describe()

    def words(self, figures: dict[str, float]) -> str:
        return f"{self.describe()} top-1 {figures['top1']:.2f}%" + (
            f"  top-5 {figures['top5']:.2f}%" if "top5" in figures else ""
        )

    def active(self, trainer: L.Trainer) -> bool:
        """Whether there is labelled data to score on (pretraining on unlabelled images has none)."""
        data = trainer.datamodule
        if data is None or not hasattr(data, "eval_dataloader"):
            raise ValueError("KNNCallback needs a ContrastiveData data module (with eval_dataloader)")
        return getattr(data, "has_labelled_eval", True)

    def start(self, trainer: L.Trainer) -> None:
        for logger in trainer.loggers:
            logger.log_hyperparams({"knn_protocol": f"{self.describe()}, train split as the bank, test split scored"})

    def evaluate(self, trainer: L.Trainer, module: L.LightningModule) -> dict[str, float]:
        from contrast import distributed

        data = trainer.datamodule
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

    def after(self, trainer: L.Trainer, epoch: int) -> None:
        if self.pictures_every_n_epochs and epoch % self.pictures_every_n_epochs == 0:
            self.draw(trainer, epoch)

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

    def summary(self) -> str | None:
        return f"{self.describe()} top-1 {self.results['top1']:.2f}%" if "top1" in self.results else None

    def report(self) -> str:
        line = f"kNN accuracy {self.describe()[4:]}: top-1 {self.results['top1']:.2f}%"
        if "top1" in self.initial:
            line += f" (untrained encoder: {self.initial['top1']:.2f}%)"
        return line
