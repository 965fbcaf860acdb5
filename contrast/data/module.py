"""The LightningDataModule: training batches of views, plain labelled splits for evaluation.

Where the views are made is a view path (``views``: "cpu", "batched" or "split", the registry
:data:`contrast.data.view_paths.VIEW_PATHS`), built from the list of views, one recipe per view; the
module delegates to it. Whatever the path, after the transfer to the training device a training
batch is ``((v_1, …, v_n), labels)`` (:class:`contrast.data.view_paths.ViewPath` states the contract),
and every sample's views come from (seed, epoch, index) alone.
"""

from __future__ import annotations

import warnings

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from contrast import distributed
from contrast.checks import int_at_least
from contrast.data.datasets import EvalDataset, Subset, decode_all
from contrast.data.sampler import loop_position, resume_position, training_sampler
from contrast.data.sources import TensorImages, load_split
from contrast.data.view_paths import view_path
from contrast.views.recipes import view_recipes


class ContrastiveData(L.LightningDataModule):
    """Two-view training data and labelled evaluation splits for one dataset.

    Args:
        dataset: a name of the image-source registry ``contrast.data.sources.IMAGE_SOURCES``
            (shapes10, the default, is generated in code: no download).
        root: folder holding the data; default ``$CONTRAST_DATA_DIR``, else ``./data``.
        recipe_q, recipe_k: augmentation recipes (names in ``contrast.views.RECIPES``);
            ``recipe_k`` defaults to ``recipe_q``; ``"none"``: one view per sample, ``((q,), label)``
            (linear evaluation).
        recipe_small, num_small: multi-crop (Caron et al. 2020): ``num_small`` further views of
            ``recipe_small`` (e.g. 6 × ``multicrop_imagenet_small``, 96 px), ``((q, k, s_1, …, s_n), label)``;
            on the split path all are cut from one decode of the image. For the methods that take
            more than two views (SimCLR with nt_xent, SupCon).
        views: the view path, a name of ``contrast.data.view_paths.VIEW_PATHS``: "cpu" (torchvision
            v2 per sample in the DataLoader workers), "batched" (every view on the training device), or
            "split" (geometry from the whole image in the workers, colour on the device).
        batch_size: per-device training batch size; eval_batch_size: for feature extraction.
        num_workers: DataLoader worker processes.
        train_subset / eval_subset: use only n samples, spread evenly over the split (quick runs, tests).
        image_size: resize ImageFolder images to this side (needed by the batched path).
        download: let torchvision download CIFAR / STL-10 when online.
        seed: seeds the shuffling and the augmentation.
        cache: "none" (ImageFolder images are decoded every time they are read), "memory" (decode
            every image once, in parallel over ``num_workers``, into one uint8 tensor), or "device"
            (as "memory", and the training images live on the training device: the loader yields
            only indices and each batch is gathered and augmented there; needs ``views="batched"``).
            In-memory datasets (Shapes-10, MNIST, CIFAR) are always held as one tensor.
        eval_root: a labelled ImageFolder tree (``train/`` and ``test/`` or ``val/`` of class
            sub-folders) for kNN and the probe, when the training images are unlabelled.
        skip_corrupt: replace an image that cannot be decoded by the next one, with a counted
            warning, instead of stopping with an error that names it.
        decode: "cpu" (the workers decode) or "device" (``views="split"`` on a pack: the workers
            hand over the JPEG bytes and the drawn boxes; ``torchvision.io.decode_jpeg`` decodes the
            batch on the training device, where the views are cut).

    Pretraining needs no labels: ``dataset="imagefolder"`` with ``root`` a flat folder of images
    (or one without ``train/``) trains on them; without labels there is no online probe, and
    kNN / validation run only on a labelled ``eval_root``.
    """

    def __init__(
        self,
        dataset: str = "shapes10",
        root: str | None = None,
        recipe_q: str = "quickstart",
        recipe_k: str | None = None,
        views: str = "cpu",
        batch_size: int = 256,
        eval_batch_size: int = 512,
        num_workers: int = 0,
        train_subset: int | None = None,
        eval_subset: int | None = None,
        image_size: int | None = None,
        download: bool = False,
        seed: int = 0,
        cache: str = "none",
        eval_root: str | None = None,
        skip_corrupt: bool = False,
        decode: str = "cpu",
        recipe_small: str | None = None,
        num_small: int = 0,
    ) -> None:
        super().__init__()
        for name, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            int_at_least(name, value, 2, why="contrastive losses need negatives")
        int_at_least("num_workers", num_workers, 0)
        for name, value in (("train_subset", train_subset), ("eval_subset", eval_subset)):
            int_at_least(name, value, 2, optional=True)
        # each view's recipe: (q, k), (q,), (q, k, s_1, …, s_n); checked there, bad arguments named
        self.recipes = view_recipes(recipe_q, recipe_k, recipe_small, num_small)
        self.path = view_path(views, self.recipes, seed, decode=decode, cache=cache)
        self.save_hyperparameters()
        self.dataset, self.root, self.views, self.download = dataset, root, views, download
        self.recipe_q, self.recipe_k = self.recipes[0], self.recipes[min(1, len(self.recipes) - 1)]
        self.batch_size, self.eval_batch_size, self.num_workers = batch_size, eval_batch_size, num_workers
        self.train_subset, self.eval_subset, self.image_size, self.seed = train_subset, eval_subset, image_size, seed
        self.cache, self.eval_root, self.skip_corrupt, self.decode = cache, eval_root, skip_corrupt, decode
        self._splits: dict = {}  # train -> split, ("eval", train) -> evaluation split
        self._resume: tuple[int, int] | None = None  # (epoch, batches done) from a checkpoint

    # ------------------------------------------------------------------ data
    def split(self, train: bool) -> Dataset | None:
        """The training split, or the test split (None for an image folder without one)."""
        if train not in self._splits:
            # stored files of any size are resized to image_size, unless the path cuts views from whole images
            size = None if train and self.path.whole_images else self.image_size
            base = load_split(
                self.dataset, self.root, train, download=self.download, image_size=size, skip_corrupt=self.skip_corrupt
            )
            self._splits[train] = None if base is None else self._prepare(base, train, self.dataset)
        return self._splits[train]

    def _prepare(self, base: Dataset, train: bool, name: str) -> Dataset:
        limit = self.train_subset if train else self.eval_subset
        if limit is not None and limit < len(base):
            base = Subset(base, limit)
        if len(base) == 0:
            raise ValueError(f"dataset {name!r} ({'train' if train else 'test'}) is empty")
        if self.cache != "none" and not isinstance(base, TensorImages):
            base = decode_all(base, self.num_workers, f"{name} {'train' if train else 'test'}")
        return base

    @property
    def labelled(self) -> bool:
        """Whether the training images have labels (an unlabelled folder has none: no probe)."""
        return bool((self.split(True).labels >= 0).all())

    def eval_split(self, train: bool) -> Dataset | None:
        """Labelled images for kNN and the probe: the dataset's own splits when it has labels,
        else ``eval_root``'s; None when there are none."""
        key = ("eval", train)
        if key not in self._splits:
            if self.eval_root is not None:
                size = self.image_size or self.recipe_q.size
                base = load_split("imagefolder", self.eval_root, train, image_size=size)
                if base is None or not base.labelled:
                    raise ValueError(
                        f"eval_root {self.eval_root!r} must be a labelled ImageFolder tree with train/ and test/ "
                        "(or val/) sub-folders of class folders"
                    )
                self._splits[key] = self._prepare(base, train, f"eval_root {self.eval_root}")
            else:
                self._splits[key] = self.split(train) if self.labelled else None
        return self._splits[key]

    @property
    def has_labelled_eval(self) -> bool:
        return self.eval_split(True) is not None and self.eval_split(False) is not None

    @property
    def num_classes(self) -> int:
        """Classes of the training labels (0 without labels: the method then has no probe)."""
        if not self.labelled:
            return 0
        base = self.split(True)
        classes = getattr(base, "classes", None)
        return len(classes) if classes else int(base.labels.max()) + 1

    @property
    def in_channels(self) -> int:
        return self.recipe_q.channels

    def facts(self) -> dict:
        """What the model needs to know of the data, by its argument names (the one channel: the
        command line links them into the model, ``SimCLR(**data.facts(), ...)`` in Python)."""
        return {
            "in_channels": self.image_channels(),
            "num_classes": self.num_classes,
            "normalization": self.recipe_q.normalization.record(),  # every view's (view_recipes checks)
        }

    def image_channels(self) -> int:
        """Channels of the dataset's images (1 for MNIST), whatever the recipe says."""
        return int(self.split(True)[0][0].shape[0])

    def setup(self, stage: str | None = None) -> None:
        self.path.check(self.split(True))
        channels = self.image_channels()
        if channels != self.recipe_q.channels:
            raise ValueError(
                f"dataset {self.dataset!r} has {channels}-channel images but recipe {self.recipe_q.name!r} "
                f"expects {self.recipe_q.channels}; choose a recipe for {channels}-channel images"
            )

    def _loader(self, dataset: Dataset, batch_size: int, sampler=None, drop_last: bool = False) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            drop_last=drop_last,
            num_workers=self.num_workers,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        base = self.split(True)
        # drop_last: every step has the full number of negatives (and the MoCo queue stays aligned).
        sampler = training_sampler(len(base), self.batch_size, self.seed, self._resume, "images")
        self._resume = None  # a mid-epoch checkpoint's place is used once
        workers = self.path.workers(self.num_workers)
        return DataLoader(
            self.path.dataset(base),
            batch_size=self.batch_size,
            sampler=sampler,
            drop_last=True,
            collate_fn=self.path.collate,
            num_workers=workers,
            # pinned: the transfer of a batch does not wait for the previous step
            pin_memory=torch.cuda.is_available(),
            persistent_workers=workers > 0,
        )

    # ------------------------------------------------------------------ the place in the epoch, in checkpoints
    def state_dict(self) -> dict[str, int]:
        """(epoch, batches of it trained on) when a checkpoint is written (see ``loop_position``)."""
        return loop_position(self.trainer, self.batch_size)

    def load_state_dict(self, state: dict[str, int]) -> None:
        if "epoch" in state:
            self._resume = resume_position(state, self.batch_size)
            # Lightning warns that a mid-epoch resume is inexact unless the loader is stateful; here
            # the sampler is positioned from this state instead.
            warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch")

    def eval_dataloader(self, train: bool, shard: bool = False) -> DataLoader:
        """Labelled, un-augmented images (train or test split) for kNN and linear evaluation.
        ``shard=True`` gives this rank every world-th image (no padding, no duplicates)."""
        split = self.eval_split(train)
        if split is None:
            raise ValueError(
                f"dataset {self.dataset!r} has no labelled {'train' if train else 'test'} split for evaluation; "
                "give one with --data.eval_root"
            )
        dataset: Dataset = EvalDataset(split, self.recipe_q)
        if shard and distributed.is_distributed():
            dataset = torch.utils.data.Subset(
                dataset, range(distributed.rank(), len(dataset), distributed.world_size())
            )
        return self._loader(dataset, self.eval_batch_size)

    def val_dataloader(self) -> DataLoader | list:
        # The validation step scores the online probe, which needs labelled training images.
        if not self.labelled or self.eval_split(False) is None:
            return []
        return self.eval_dataloader(False)

    # ------------------------------------------------------------------ the view path's device side
    def _training(self) -> bool:
        return self.trainer is not None and self.trainer.training

    def transfer_batch_to_device(self, batch, device, dataloader_idx: int):
        def move(part):
            return super(ContrastiveData, self).transfer_batch_to_device(part, device, dataloader_idx)

        return self.path.transfer(batch, move) if self._training() else move(batch)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        return self.path.on_device(batch, self.trainer.strategy.root_device) if self._training() else batch
