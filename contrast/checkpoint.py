"""Checkpoints: written atomically, read with ``weights_only=True`` and clear errors, written often.

* :func:`atomic_save` writes to a temporary file beside the target and renames it over the target,
  so an interruption leaves the old file or the new one, never a truncated one; a full disk is
  reported as such, with the path.
* :func:`read_checkpoint` loads a file and says plainly what is wrong with it when it is not a
  training checkpoint (empty, truncated, some other file).
* :class:`LastCheckpoint` is the callback every config uses: ``<run>/checkpoints/last.ckpt`` at
  the end of every epoch, every ``every_n_steps`` steps or ``every_minutes`` minutes if asked, and
  after the current step when the run receives SIGINT (Ctrl-C) or SIGTERM (a scheduler's
  pre-emption), after which the run stops with :class:`Interrupted`.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import signal
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from contrast.checks import ConfigError, int_at_least

# Below this much free space a failed write is reported as a full disk (torch's zip writer
# reports ENOSPC as "unexpected pos ...").
_LOW_SPACE = 256 * 2**20


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class CheckpointError(ValueError):
    """A file given as a checkpoint is missing, empty, or not a training checkpoint."""


class Interrupted(Exception):
    """A run stopped by SIGINT or SIGTERM after writing its checkpoint."""

    def __init__(self, signum: int, path: Path | None, step: int) -> None:
        self.signum, self.path, self.step = signum, path, step
        name = signal.Signals(signum).name
        where = f"checkpoint written to {path}" if path is not None else "no checkpoint written"
        super().__init__(f"stopped by {name} after step {step}; {where}")


def atomic_write(path: str | os.PathLike, write) -> None:
    """``write(f)`` into a temporary file in the same folder, fsync, then rename over ``path``: an
    interruption leaves either the old file or the new one, never a truncated one; a full disk is
    reported as such, with the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; the file is an output like any other
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(error, (OSError, RuntimeError)) and _disk_full(error, path.parent):
            free = shutil.disk_usage(path.parent).free
            raise OSError(
                errno.ENOSPC, f"No space left on device while writing {path} ({free / 2**20:.0f} MiB free there)"
            ) from error
        raise


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` through :func:`atomic_write`."""
    atomic_write(path, lambda f: torch.save(obj, f))


def _disk_full(error: BaseException, folder: Path) -> bool:
    while error is not None:
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            return True
        error = error.__cause__ or error.__context__
    try:
        return shutil.disk_usage(folder).free < _LOW_SPACE
    except OSError:
        return False


def read_checkpoint(path: str | os.PathLike, *, mmap: bool = False) -> dict[str, Any]:
    """Load a checkpoint written by ``contrast fit`` (``weights_only=True``, on the CPU).

    Raises :class:`CheckpointError` naming the file when it is missing, empty, not a PyTorch
    file, or a PyTorch file that is not a training checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes): not a checkpoint; was its write interrupted?")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"{path} ({size:,} bytes) is not a readable PyTorch checkpoint (not a torch.save archive)"
        )
    check_archive(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as error:
        first_line = str(error).splitlines()[0] if str(error) else ""
        raise CheckpointError(
            f"{path} ({size:,} bytes) is not a readable PyTorch checkpoint ({type(error).__name__}: {first_line[:200]})"
        ) from error
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(
            f"{path} is a PyTorch file but not a training checkpoint (no 'state_dict'); "
            "give a last.ckpt written by contrast fit"
        )
    return checkpoint


def sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes (hex): what a file is, wherever it was copied or moved to."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_archive(path: str | os.PathLike) -> None:
    """Refuse a torch.save archive whose bytes do not match its entries' CRC-32 (a flipped bit, a
    bad copy): torch.load would load such a file and hand back silently wrong weights."""
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError) as error:
        raise CheckpointError(f"{path} is not a readable PyTorch archive ({error})") from error
    if damaged is not None:
        raise CheckpointError(
            f"{path} is damaged: its entry {damaged!r} fails its CRC check (a flipped bit or an incomplete "
            "copy); use another copy of the file"
        )


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint IO that writes atomically and loads with ``weights_only=True``."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        atomic_save(checkpoint, path)

    def load_checkpoint(self, path, map_location=None, weights_only: bool | None = None) -> dict[str, Any]:
        return read_checkpoint(path)


class LastCheckpoint(Checkpoint):
    """Keeps ``last.ckpt`` of a run up to date, independently of validation.

    Written at the end of every training epoch; also every ``every_n_steps`` optimizer steps and
    every ``every_minutes`` minutes of training when set (for long epochs). On SIGINT or SIGTERM
    the current step finishes, the checkpoint is written, and the run stops with
    :class:`Interrupted` (a second Ctrl-C stops at once). Resuming from any of these checkpoints
    continues exactly where the run stopped (``contrast fit ... --ckpt_path last``).

    Args:
        every_n_steps: also write every this many optimizer steps (None: only at epoch ends).
        every_minutes: also write when this many minutes have passed since the last write.
        dirpath: folder of ``last.ckpt``; default ``<log dir>/checkpoints`` (the run folder).
        on_signal: handle SIGINT / SIGTERM as above (False: the signals behave as without it).
        sync_every: under DDP, how often (in steps) the ranks agree on a signal or on the clock;
            a collective every step would make each step wait for the device.
    """

    FILENAME = "last.ckpt"

    def __init__(
        self,
        every_n_steps: int | None = None,
        every_minutes: float | None = None,
        dirpath: str | None = None,
        on_signal: bool = True,
        sync_every: int = 10,
    ) -> None:
        int_at_least("every_n_steps", every_n_steps, optional=True)
        if every_minutes is not None and not (isinstance(every_minutes, (int, float)) and every_minutes > 0):
            raise ConfigError("every_minutes", f"every_minutes must be None or a number > 0, got {every_minutes!r}")
        int_at_least("sync_every", sync_every)  # a bool is refused too, as for every_n_steps
        self.every_n_steps, self.every_minutes, self.on_signal = every_n_steps, every_minutes, on_signal
        self.dirpath = Path(dirpath) if dirpath is not None else None
        self.sync_every = sync_every
        self.last_path: Path | None = None
        self._signal: int | None = None
        self._previous_handlers: dict[int, Any] = {}
        self._last_write = time.monotonic()

    # ------------------------------------------------------------------ where
    def path(self, trainer: L.Trainer) -> Path:
        if self.dirpath is not None:
            return self.dirpath / self.FILENAME
        folder = Path(trainer.log_dir or trainer.default_root_dir) / "checkpoints"
        return folder / self.FILENAME

    def save(self, trainer: L.Trainer) -> Path:
        path = self.path(trainer)
        # Every rank calls it; rank 0 writes (atomically, with AtomicCheckpointIO).
        trainer.save_checkpoint(path, weights_only=False)
        self.last_path, self._last_write = path, time.monotonic()
        return path

    # ------------------------------------------------------------------ when
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last_write = time.monotonic()
        self._signal = None
        if self.on_signal:
            for signum in (signal.SIGINT, signal.SIGTERM):
                try:
                    self._previous_handlers[signum] = signal.signal(signum, self._handle)
                except ValueError:  # not the main thread: leave the signals alone
                    break

    def _handle(self, signum: int, frame) -> None:
        if self._signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        self._signal = signum
        print(
            f"\n{signal.Signals(signum).name} received: writing a checkpoint after this step, then stopping"
            + (" (Ctrl-C again stops at once)" if signum == signal.SIGINT else ""),
            file=sys.stderr,
            flush=True,
        )

    def _restore_handlers(self) -> None:
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous_handlers = {}

    def _decide(self, trainer: L.Trainer, step_due: bool) -> tuple[bool, bool]:
        """(write now, stop now) for this step; the same on every rank."""
        time_due = self.every_minutes is not None and time.monotonic() - self._last_write >= 60 * self.every_minutes
        stop = self._signal is not None
        if trainer.world_size > 1:
            if trainer.global_step % self.sync_every:
                return step_due, False
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
            time_due = bool(trainer.strategy.broadcast(time_due, src=0))
        return step_due or time_due or stop, stop

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        # Only at an optimizer step: between the micro-batches of a gradient accumulation the
        # partial gradients are in no checkpoint, so a resumed run would not be exact.
        accumulate = int(getattr(trainer, "accumulate_grad_batches", 1) or 1)
        last = batch_idx + 1 == getattr(trainer, "num_training_batches", None)
        if accumulate > 1 and (batch_idx + 1) % accumulate and not last:
            return
        step_due = self.every_n_steps is not None and trainer.global_step % self.every_n_steps == 0
        write, stop = self._decide(trainer, step_due)
        if write:
            self.save(trainer)
        if stop:
            self._stop(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.save(trainer)
        if self._signal is not None:
            self._stop(trainer)

    def _stop(self, trainer: L.Trainer) -> None:
        signum = self._signal if self._signal is not None else signal.SIGTERM
        self._restore_handlers()
        raise Interrupted(signum, self.last_path, trainer.global_step)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore_handlers()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._restore_handlers()
