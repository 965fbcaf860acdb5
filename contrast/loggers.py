"""The run's loggers: wandb offline where it cannot reach its service, the CSV and TensorBoard
loggers' versioned folders, the arguments a logger takes, and a resumed run's CSV history."""

from __future__ import annotations

import os
import socket
import sys
import warnings
from pathlib import Path

from contrast.checks import constructor_parameters

# Loggers whose folder is <save_dir>/<name>/<version>.
VERSIONED_LOGGERS = ("CSVLogger", "TensorBoardLogger")


def wandb_offline_unless_reachable(argv: list[str]) -> None:
    """wandb must never hang a run: offline when there is no API key or the service is unreachable."""
    text = " ".join(argv)
    for i, arg in enumerate(argv):
        if arg in ("--config", "-c") and i + 1 < len(argv) and Path(argv[i + 1]).is_file():
            text += Path(argv[i + 1]).read_text()
    if "WandbLogger" not in text or os.environ.get("WANDB_MODE"):
        return
    has_key = bool(os.environ.get("WANDB_API_KEY")) or "api.wandb.ai" in _read(Path.home() / ".netrc")
    if not has_key or not _reachable("api.wandb.ai", 443, timeout=3.0):
        os.environ["WANDB_MODE"] = "offline"
        print("wandb: no API key or no network; logging offline (sync later with `wandb sync`)", file=sys.stderr)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _reachable(host: str, port: int, timeout: float) -> bool:
    import concurrent.futures

    def connect() -> bool:
        with socket.create_connection((host, port), timeout=timeout):
            return True

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:  # the DNS lookup itself can hang: bound the whole attempt
        return pool.submit(connect).result(timeout=timeout)
    except Exception:
        return False
    finally:
        pool.shutdown(wait=False)


def loggers_of(trainer_config) -> list:
    logger = trainer_config.get("logger")
    if logger in (None, False, True):
        return []
    return list(logger) if isinstance(logger, list) else [logger]


def short_name(class_path: str) -> str:
    return str(class_path).rsplit(".", 1)[-1]


def next_version(base: Path) -> int:
    """The next free N of ``base/version_N`` (as Lightning's CSV logger numbers its runs)."""
    numbers = [version_number(p) for p in base.glob("version_*")] if base.is_dir() else []
    return max(numbers, default=-1) + 1


def logger_arguments(class_path: str) -> set[str]:
    import importlib

    module, _, name = str(class_path).rpartition(".")
    try:
        logger_class = getattr(importlib.import_module(module or "lightning.pytorch.loggers"), name)
    except (ImportError, AttributeError):
        return set()
    return set(constructor_parameters(logger_class))


def version_number(folder: Path) -> int:
    try:
        return int(folder.name.split("_", 1)[1])
    except (IndexError, ValueError):
        return -1


def keep_csv_history(trainer, before_step: int) -> None:
    """A resumed run logs into its old folder, where Lightning's CSV writer would delete metrics.csv:
    keep its rows up to the checkpoint (those after it are logged again), and its columns."""
    import csv

    from lightning.pytorch.loggers import CSVLogger

    for logger in trainer.loggers:
        if not isinstance(logger, CSVLogger) or not trainer.is_global_zero:
            continue
        path = Path(logger.log_dir) / "metrics.csv"
        if not path.is_file():
            continue
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            rows = [row for row in reader if int(float(row.get("step") or 0)) < before_step]
            columns = list(reader.fieldnames or [])
        with warnings.catch_warnings():  # "previous log files ... will be deleted": they are kept here
            warnings.simplefilter("ignore")
            writer = logger.experiment  # created now: it removes the old file
        with open(path, "w", newline="") as f:
            out = csv.DictWriter(f, fieldnames=columns)
            out.writeheader()
            out.writerows(rows)
        writer.metrics_keys = sorted(columns)
