"""The Lightning CLI behind ``contrast fit`` / ``validate``: where a run lives, how it resumes.

A run has one home, its run folder:

* ``--run_dir DIR``: logs, ``config.yaml`` and ``checkpoints/last.ckpt`` go to DIR itself;
* otherwise ``<default_root_dir>/lightning_logs/version_N`` (``default_root_dir`` is ``runs``
  unless ``--trainer.default_root_dir`` says otherwise), a new N for every fresh run.

``--ckpt_path last`` resumes the run of that home: with ``--run_dir``, ``DIR/checkpoints/last.ckpt``;
otherwise the newest ``last.ckpt`` among ``<default_root_dir>/lightning_logs/version_*``
(``--trainer.logger.init_args.version N`` picks one), and the resumed run keeps logging into the
same folder. It fails with a clear error when there is nothing to resume, and it refuses a
checkpoint whose model or data settings differ from the config's (listing the differences)
unless ``--allow_mismatch true``.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from functools import partial
from pathlib import Path

from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.cli import LightningCLI

from contrast.checkpoint import AtomicCheckpointIO, CheckpointError, LastCheckpoint, read_checkpoint
from contrast.checks import ConfigError
from contrast.eval import EvaluationCallback
from contrast.fits import DATA_FACTS, checkpoint_differences
from contrast.loggers import (
    VERSIONED_LOGGERS,
    keep_csv_history,
    logger_arguments,
    loggers_of,
    next_version,
    short_name,
    version_number,
    wandb_offline_unless_reachable,
)
from contrast.run_lock import RunLock

DEFAULT_ROOT = "runs"


def _run_seed(ckpt_path: str | os.PathLike):
    """The ``seed_everything`` of the run a last.ckpt belongs to (its folder's config.yaml), or None."""
    import yaml

    saved = Path(ckpt_path).parent.parent / "config.yaml"
    if Path(ckpt_path).parent.name != "checkpoints" or not saved.is_file():
        return None
    try:
        return (yaml.safe_load(saved.read_text()) or {}).get("seed_everything")
    except yaml.YAMLError:
        return None


def _fact(data, name: str):
    return data.facts().get(name)


class ContrastCLI(LightningCLI):
    """LightningCLI with a run folder, exact resume, checks on the checkpoint, atomic writes.
    ``run_lock``: a :class:`RunLock` that the run folder is locked with while the run lasts."""

    def __init__(self, *args, run_lock: RunLock | None = None, **kwargs) -> None:
        self.run_lock = run_lock
        super().__init__(*args, **kwargs)

    def add_arguments_to_parser(self, parser) -> None:
        # The one channel from the data to the model: each fact the data module gives (``facts()``)
        # becomes the model's argument of that name, where the model takes one.
        for name in DATA_FACTS:
            parser.link_arguments(
                "data", f"model.init_args.{name}", compute_fn=partial(_fact, name=name), apply_on="instantiate"
            )
        # `data:` without a class_path is ContrastiveData's arguments (images); paired data for two
        # towers is `data: {class_path: contrast.data.PairedData, init_args: ...}`.
        parser.set_defaults({"data": {"class_path": "contrast.data.ContrastiveData"}})
        parser.add_argument(
            "--run_dir", type=str | None, default=None, help="the run folder: logs and checkpoints/last.ckpt go here"
        )
        parser.add_argument(
            "--collective_timeout",
            type=float,
            default=600.0,
            help="seconds a rank waits for the others in a collective (gather, all-reduce) before the run stops "
            "with an error; torch's default is 30 minutes of a silent stall",
        )
        parser.add_argument(
            "--allow_mismatch",
            type=bool,
            default=False,
            help="resume from a checkpoint whose model or data settings differ from the config's",
        )

    def _parse_ckpt_path(self) -> None:
        # Lightning would replace the config's model by the checkpoint's hyper-parameters, so that a
        # ResNet-18 checkpoint silently turns a tiny-CNN config into a ResNet-18 run. The checkpoint
        # is compared with the config instead (before_fit).
        return

    # ------------------------------------------------------------------ the run folder
    def _config(self):
        return self.config[self.subcommand] if self.subcommand else self.config

    def before_instantiate_classes(self) -> None:
        config = self._config()
        trainer = config.trainer
        strategy = trainer.get("strategy")
        if isinstance(strategy, str) and "spawn" in strategy:
            # spawned workers return their weights through a temporary file that is no training
            # checkpoint: the run would train, save, and then fail
            raise ConfigError(
                "strategy",
                f"--trainer.strategy {strategy} is not supported: use ddp (Lightning starts one process per "
                "device, or launch with torchrun)",
            )
        root = Path(trainer.get("default_root_dir") or DEFAULT_ROOT)
        run_dir = config.get("run_dir")
        loggers = loggers_of(trainer)
        versioned = [lg for lg in loggers if short_name(lg.class_path) in VERSIONED_LOGGERS]
        others = [lg for lg in loggers if lg not in versioned]
        fits = self.subcommand in ("fit", None) and self.run_lock is not None
        if run_dir is not None and fits:
            fresh = not Path(run_dir).is_dir() or all(p.name == RunLock.NAME for p in Path(run_dir).iterdir())
            self.run_lock.acquire(run_dir)  # first: a folder in use says so, whatever it holds
            if fresh:  # the lock is all the logger finds there: Lightning's "previous log files" are none
                warnings.filterwarnings("ignore", message=r"Experiment logs directory .* exists and is not empty")
        if run_dir is not None:
            trainer.default_root_dir = run_dir
            for logger in versioned:
                logger.init_args.save_dir, logger.init_args.name, logger.init_args.version = run_dir, "", ""
        else:
            trainer.default_root_dir = str(root)
            for logger in versioned:
                if str(logger.init_args.get("save_dir")) == DEFAULT_ROOT:
                    logger.init_args.save_dir = str(root)
        self._resolve_resume(config, run_dir, loggers, versioned, root)
        folder = Path(run_dir) if run_dir is not None else None
        if folder is None and not versioned:
            # No logger numbers the runs (wandb, or none): number them the same way here, so that a
            # run never writes into the folder of another (the resumed one's when resuming).
            ckpt_path = config.get("ckpt_path")
            if ckpt_path is not None and Path(ckpt_path).parent.name == "checkpoints" and self._resumes_a_run:
                folder = Path(ckpt_path).parent.parent
            else:
                folder = root / "lightning_logs" / f"version_{next_version(root / 'lightning_logs')}"
            trainer.default_root_dir = str(folder)
        for logger in others:  # the run folder does not depend on the logger
            if folder is not None and "save_dir" in logger_arguments(logger.class_path):
                logger.init_args.save_dir = str(folder)
        if folder is None and self._resumes_a_run:  # a versioned run resumed: its folder is known now
            folder = Path(config.ckpt_path).parent.parent
        if folder is not None and fits:
            self.run_lock.acquire(folder)  # a second run into the same folder stops here

    def _explicit_dirpath(self, config) -> str | None:
        for callback in config.trainer.get("callbacks") or []:
            if short_name(getattr(callback, "class_path", "")) == "LastCheckpoint":
                dirpath = callback.init_args.get("dirpath")
                if dirpath:
                    return dirpath
        return None

    def _resolve_resume(self, config, run_dir, loggers, versioned, root: Path) -> None:
        """Turn ``ckpt_path="last"`` into the path of the run's last.ckpt; check an explicit path."""
        ckpt_path = config.get("ckpt_path")
        dirpath = self._explicit_dirpath(config)
        if run_dir is not None:
            last = Path(dirpath or Path(run_dir) / "checkpoints") / LastCheckpoint.FILENAME
            if ckpt_path is None and self.subcommand in ("fit", None) and last.is_file():
                raise CheckpointError(
                    f"--run_dir {run_dir} already holds {last} from an earlier run: resume it with "
                    "--ckpt_path last, or choose another --run_dir"
                )
            if ckpt_path == "last":
                if not last.is_file():
                    raise CheckpointError(f"--ckpt_path last: nothing to resume, {last} does not exist")
                config.ckpt_path = str(last)
            return
        if ckpt_path != "last":
            if ckpt_path is not None:  # a clear error now rather than deep inside Lightning
                read_checkpoint(ckpt_path, mmap=True)
            return
        if dirpath:
            candidates = [Path(dirpath) / LastCheckpoint.FILENAME]
            where = str(candidates[0])
        elif versioned:
            args = versioned[0].init_args
            base = Path(args.get("save_dir") or root) / (args.get("name") or "")
            version = args.get("version")
            if version is not None and version != "":
                pattern = version if isinstance(version, str) else f"version_{version}"
            else:
                pattern = "version_*"
            candidates = list(base.glob(f"{pattern}/checkpoints/{LastCheckpoint.FILENAME}"))
            where = str(base / pattern / "checkpoints" / LastCheckpoint.FILENAME)
        else:  # runs numbered here, as the versioned loggers number theirs
            candidates = list((root / "lightning_logs").glob(f"version_*/checkpoints/{LastCheckpoint.FILENAME}"))
            where = str(root / "lightning_logs" / "version_*" / "checkpoints" / LastCheckpoint.FILENAME)
        candidates = [c for c in candidates if c.is_file()]
        if not candidates:
            raise CheckpointError(
                f"--ckpt_path last: nothing to resume, no {where}. Start without --ckpt_path, or point at the run "
                "with --run_dir, --trainer.default_root_dir or an explicit checkpoint path"
            )
        last = max(candidates, key=lambda p: (p.stat().st_mtime, version_number(p.parent.parent)))
        if versioned and not dirpath:
            folder = last.parent.parent.name
            number = version_number(last.parent.parent)
            for logger in versioned:  # keep logging into the resumed run's folder
                logger.init_args.version = number if folder == f"version_{number}" else folder
        config.ckpt_path = str(last)
        self._resumes_a_run = not dirpath

    _resumes_a_run = False

    # ------------------------------------------------------------------ the checkpoint fits the config
    def before_fit(self) -> None:
        config = self._config()
        ckpt_path = config.get("ckpt_path")
        if ckpt_path is None:
            return
        checkpoint = read_checkpoint(ckpt_path, mmap=True)
        if "hyper_parameters" not in checkpoint or "loops" not in checkpoint:
            raise CheckpointError(
                f"{ckpt_path} holds weights but no training state (hyper-parameters, loops); "
                "resume from a last.ckpt written by contrast fit"
            )
        differences = checkpoint_differences(
            checkpoint,
            model=self.model,
            data=self.datamodule,
            seed=(_run_seed(ckpt_path), config.get("seed_everything")),
        )
        if differences and not config.get("allow_mismatch"):
            lines = "\n  ".join(differences)
            raise CheckpointError(
                f"{ckpt_path} does not fit the config:\n  {lines}\n"
                "Resume with the config the run was started with, or pass --allow_mismatch true"
            )
        self.resumed_from = Path(ckpt_path)
        keep_csv_history(self.trainer, int(checkpoint.get("global_step", 0)))
        print(
            f"resuming from {ckpt_path}: epoch {checkpoint.get('epoch', 0)}, global step "
            f"{checkpoint.get('global_step', 0)}" + (" (settings differ, allowed)" if differences else ""),
            file=sys.stderr,
            flush=True,
        )

    def instantiate_trainer(self, **kwargs):
        plugins = kwargs.get("plugins") or []
        plugins = plugins if isinstance(plugins, list) else [plugins]
        if not any(hasattr(p, "save_checkpoint") for p in plugins):
            kwargs["plugins"] = [*plugins, AtomicCheckpointIO()]
        # Every run keeps a last.ckpt (so that --ckpt_path last works), unless checkpointing is off
        # or the config brings its own checkpoint callback.
        trainer_init = (self.config_init[self.subcommand] if self.subcommand else self.config_init)["trainer"]
        callbacks = list(trainer_init.get("callbacks") or [])
        if trainer_init.get("enable_checkpointing") is not False and not any(
            isinstance(cb, Checkpoint) for cb in callbacks
        ):
            kwargs["callbacks"] = [*callbacks, LastCheckpoint()]
        if trainer_init.get("strategy") in ("ddp", "ddp_find_unused_parameters_true"):
            from datetime import timedelta

            from lightning.pytorch.strategies import DDPStrategy

            find_unused = trainer_init.get("strategy") != "ddp"
            timeout = timedelta(seconds=float(self._config().get("collective_timeout") or 600.0))
            kwargs["strategy"] = DDPStrategy(timeout=timeout, find_unused_parameters=find_unused)
        return validate_after_the_last_epoch(super().instantiate_trainer(**kwargs))


def validate_after_the_last_epoch(trainer):
    """Validation (the online probe, linear evaluation's test figure) after the last epoch too, not
    only every ``check_val_every_n_epoch``: a run shorter than that, or of a length that is no
    multiple of it, ends with the figure of its final weights, not with none or an older one."""
    loop = trainer.fit_loop.epoch_loop
    every_n = loop._should_check_val_epoch

    def every_n_or_last() -> bool:
        last = trainer.max_epochs not in (None, -1) and trainer.current_epoch + 1 >= trainer.max_epochs
        return every_n() or (last and trainer.enable_validation)

    loop._should_check_val_epoch = every_n_or_last
    return trainer


@contextlib.contextmanager
def _argv(argv: list[str]):
    """LightningCLI reads its arguments as a command line; hand them over that way (passing them as
    ``args`` while the process has a command line of its own prints a warning on every run)."""
    saved = sys.argv
    sys.argv = [saved[0] if saved else "contrast", *argv]
    try:
        yield
    finally:
        sys.argv = saved


def lightning_cli(argv: list[str], run: bool = True) -> ContrastCLI:
    """Build (and with ``run=True`` run) the Lightning CLI for ``argv`` = [subcommand, options...]."""
    import lightning as L

    from contrast.methods.base import TrainingBase

    wandb_offline_unless_reachable(argv)
    quiet = {"exit_on_error": False}
    lock = RunLock()
    with _argv(argv), lock:
        return ContrastCLI(
            TrainingBase,
            L.LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            run=run,
            run_lock=lock,
            save_config_kwargs={"overwrite": True},
            parser_kwargs={**quiet, "fit": quiet, "validate": quiet, "test": quiet},
            trainer_defaults={
                "default_root_dir": DEFAULT_ROOT,
                "logger": {
                    "class_path": "lightning.pytorch.loggers.CSVLogger",
                    "init_args": {"save_dir": DEFAULT_ROOT},
                },
            },
        )


def summary(cli: ContrastCLI) -> str:
    """One line at the end of a run: where its checkpoint is, how far it went, its last kNN."""
    trainer = cli.trainer
    checkpoint = next(
        (cb.last_path for cb in trainer.callbacks if isinstance(cb, LastCheckpoint) and cb.last_path), None
    )
    if checkpoint is None:  # resumed a finished run: nothing was left to train
        checkpoint = getattr(cli, "resumed_from", None)
    line = f"run finished: {trainer.current_epoch} epochs, {trainer.global_step} steps"
    line += f"; checkpoint {checkpoint}" if checkpoint else "; no checkpoint written"
    line += f"; logs in {trainer.log_dir}"
    for callback in trainer.callbacks:
        figure = callback.summary() if isinstance(callback, EvaluationCallback) else None
        line += f"; {figure}" if figure else ""
    figure = cli.model.summary() if callable(getattr(cli.model, "summary", None)) else None  # LinearEval's
    return line + (f"; {figure}" if figure else "")
