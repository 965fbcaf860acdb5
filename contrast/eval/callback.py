"""kNN evaluation during training, as a Lightning callback."""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info

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
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        k: int = 200,
        temperature: float = 0.1,
        backend: str = "auto",
        baseline: bool = False,
    ) -> None:
        if not isinstance(every_n_epochs, int) or every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be a positive int, got {every_n_epochs!r}")
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
        for train in (True, False):
            x, y = extract_features(module.backbone, data.eval_dataloader(train, shard=True), module.device)
            device = module.device if distributed.is_distributed() else x.device
            features.append(
                (distributed.gather_variable(x.to(device)).cpu(), distributed.gather_variable(y.to(device)).cpu())
            )
        (train_x, train_y), (test_x, test_y) = features
        return self.knn.fit(train_x, train_y).score(test_x, test_y)

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

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        # Stopped by max_steps or early stopping mid-epoch: score the final weights too.
        if self._evaluated_at_step != trainer.global_step and trainer.global_step > 0 and self.active(trainer):
            with torch.no_grad():
                self.results.update(self.evaluate(trainer, module))
            self._evaluated_at_step = trainer.global_step

    def on_fit_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if "top1" in self.results:
            line = f"kNN accuracy {self.describe()[4:]}: top-1 {self.results['top1']:.2f}%"
            if "top1_init" in self.results:
                line += f" (untrained encoder: {self.results['top1_init']:.2f}%)"
            if trainer.is_global_zero:
                print(line, flush=True)
