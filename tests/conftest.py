from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
if "CONTRAST_DATA_DIR" not in os.environ and SHARED_DATA.is_dir():
    os.environ["CONTRAST_DATA_DIR"] = str(SHARED_DATA)


def require(module: str):
    """Import an optional peer library; skip with a reason when absent, but fail in CI."""
    if IN_CI:
        return importlib.import_module(module)
    return pytest.importorskip(module, reason=f"{module} is not installed (pip install -e .[bench])")


@pytest.fixture
def data_dir() -> Path:
    """The real datasets (CONTRAST_DATA_DIR); skip with a reason when absent, fail in CI."""
    root = os.environ.get("CONTRAST_DATA_DIR")
    if root and Path(root).is_dir():
        return Path(root)
    message = "no data directory: set CONTRAST_DATA_DIR to the folder holding mnist/ and cifar10-jpeg/"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def tiny_data(train: int = 64, test: int = 64, batch: int = 32) -> list[str]:
    """Command-line overrides that run a config on a few images (for CLI tests)."""
    return ["--data.train_subset", str(train), "--data.eval_subset", str(test), "--data.batch_size", str(batch)]
