"""The protocol of a view path: how the training images of a batch become their views."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch.utils.data import Dataset

from contrast.views.recipes import Views

Move = Callable[[Any], Any]  # moves a batch (or part of one) to the training device


class ViewPath:
    """Where and how a sample's views are made, built from the list of views (one recipe per view).

    The contract every path keeps: **after the transfer to the training device** (:meth:`transfer`
    then :meth:`on_device`) **a training batch is** ``((v_1, …, v_n), labels)``: one normalised
    float32 tensor (B, C, s_i, s_i) per recipe of ``views``, in its order (q, k, then any small
    multi-crop views), and the labels (B,) (-1 where an image has none), on the training device.
    Every random number of sample i's views in an epoch comes from (seed, epoch·N + i) alone, so the
    views do not depend on the batch, step, rank, worker count or world size, and a resumed run
    draws exactly the views an uninterrupted run would have.

    What leaves the loader differs by path and each path states it in its docstring. A path owns
    what differs: the dataset its workers run (:meth:`dataset`), the collate (:attr:`collate`), the
    host→device transfer (:meth:`transfer`) and the device-side step (:meth:`on_device`). A new path
    is one file with a subclass and one line in :data:`contrast.data.view_paths.VIEW_PATHS`.

    Args:
        views: the recipe of each view, ``contrast.views.recipes.view_recipes``'s tuple.
        seed: the run's seed; every view's random numbers derive from it.
        decode: where JPEG bytes are decoded: "cpu" (the workers) or "device" (an option of the
            paths that list it in :attr:`decodes`).
        cache: "none", "memory" (the images decoded once into one tensor) or "device" (held on the
            training device; a path that lists it in :attr:`caches`).
    """

    name: ClassVar[str]
    decodes: ClassVar[tuple[str, ...]] = ("cpu",)
    caches: ClassVar[tuple[str, ...]] = ("none", "memory")
    whole_images: ClassVar[bool] = False  # the workers cut views from whole images: no resize to image_size
    collate: Callable | None = None  # the DataLoader's collate_fn (None: torch's default)

    def __init__(self, views: Views, seed: int, *, decode: str = "cpu", cache: str = "none") -> None:
        # the options are checked once, by contrast.data.view_paths.view_path, against every path's offer
        self.views, self.seed, self.decode, self.cache = views, seed, decode, cache

    def check(self, images: Dataset) -> None:
        """Refuse training images this path cannot take, with a message naming the option to change
        (called at set-up, before training)."""

    def dataset(self, images: Dataset) -> Dataset:
        """The dataset the loader's workers run over the sampler's counters ``epoch·N + i``."""
        raise NotImplementedError

    def workers(self, num_workers: int) -> int:
        """Worker processes for the training loader (a path that needs none says 0)."""
        return num_workers

    def transfer(self, batch, move: Move):
        """The host→device hook: what of the loader's batch goes to the device (default: all of it)."""
        return move(batch)

    def on_device(self, batch, device: torch.device):
        """The device-side step: the transferred batch as ``((v_1, …, v_n), labels)`` (default: already so)."""
        return batch

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(r.name for r in self.views)})"
