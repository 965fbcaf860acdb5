"""The order of training samples: shuffled per epoch, sharded over ranks, resumable mid-epoch."""

from __future__ import annotations

import torch
from torch.utils.data import DistributedSampler, Sampler

from contrast import distributed
from contrast.seeds import derive_seed


class EpochShuffle(DistributedSampler):
    """Shuffles with a permutation that depends only on (seed, epoch), and yields ``epoch·N + i``
    so that the dataset can seed each sample's augmentation from the index alone.

    Under DDP each rank takes a strided share of the permutation (``order[rank::world]``, the
    permutation first cut to a multiple of the world size), so step j's batches of all ranks
    together are exactly the single-process batch j of size world × batch_size. It subclasses
    ``DistributedSampler`` so that Lightning uses it as it is instead of wrapping it.

    ``resume_at(epoch, samples)`` makes the next pass over that epoch start after the first
    ``samples`` samples (over all ranks): a run resumed from a mid-epoch checkpoint sees exactly
    the samples the uninterrupted run would have.
    """

    def __init__(self, size: int, seed: int, shuffle: bool = True) -> None:
        Sampler.__init__(self)
        self.size, self.seed, self.shuffle, self.epoch = size, seed, shuffle, 0
        self.num_replicas, self.rank = distributed.world_size(), distributed.rank()
        self.total = size - size % self.num_replicas
        self._resume: tuple[int, int] | None = None

    def set_epoch(self, epoch: int) -> None:  # called by Lightning at the start of every epoch
        self.epoch = epoch

    def resume_at(self, epoch: int, samples: int) -> None:
        self.epoch, self._resume = epoch, (epoch, samples)

    def __len__(self) -> int:
        return self.total // self.num_replicas

    def __iter__(self):
        order = torch.arange(self.size)
        if self.shuffle:
            generator = torch.Generator().manual_seed(derive_seed(self.seed, "shuffle", self.epoch))
            order = torch.randperm(self.size, generator=generator)
        start = 0
        if self._resume is not None:
            epoch, samples = self._resume
            self._resume = None  # once: the next epoch starts from its beginning
            start = samples if epoch == self.epoch else 0
        order = order[: self.total][start:]
        return iter((order[self.rank :: self.num_replicas] + self.epoch * self.size).tolist())


def training_sampler(size: int, batch_size: int, seed: int, resume: tuple[int, int] | None, what: str) -> EpochShuffle:
    """The training sampler of a data module: refuses a set smaller than one batch, and starts a
    resumed epoch after the ``resume = (epoch, samples trained over all ranks)`` of a mid-epoch
    checkpoint (:func:`resume_position`)."""
    if size < batch_size:
        raise ValueError(
            f"the training set has {size} {what}, fewer than batch_size={batch_size}; lower --data.batch_size"
        )
    sampler = EpochShuffle(size, seed)
    if resume is not None:
        epoch, samples = resume
        # Batches of full size only (the loaders drop the last partial one): a checkpoint written
        # after the epoch's last step resumes at the next epoch's start. Said here, not left to the
        # set_epoch() that follows: DataLoader workers draw their first indices when the loader's
        # iterator is made, which Lightning does before it sets the next epoch.
        per_epoch = sampler.total // sampler.num_replicas // batch_size * batch_size * sampler.num_replicas
        sampler.resume_at(*((epoch + 1, 0) if samples >= per_epoch else (epoch, samples)))
    return sampler


def loop_position(trainer, batch_size: int) -> dict[str, int]:
    """(epoch, batches of it trained on, samples of it trained on over all ranks) while training,
    for a data module's ``state_dict``: Lightning restores it before the training loader is built,
    which then starts where the run stopped. In global samples, so that a run resumed on another
    number of ranks starts at the same place."""
    if trainer is None or not trainer.training:
        return {}
    batches = int(trainer.fit_loop.epoch_loop.batch_progress.current.processed)
    samples = batches * batch_size * int(getattr(trainer, "world_size", 1) or 1)
    return {"epoch": int(trainer.current_epoch), "batches": batches, "samples": samples}


def resume_position(state: dict[str, int], batch_size: int) -> tuple[int, int]:
    """(epoch, samples over all ranks) of a saved :func:`loop_position`; checkpoints written before it
    held samples counted batches of this run's world size."""
    samples = state.get("samples", state["batches"] * batch_size * distributed.world_size())
    return int(state["epoch"]), int(samples)
