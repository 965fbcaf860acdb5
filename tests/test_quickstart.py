"""The README's main command, end to end: pretraining beats a random encoder by a wide margin."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from contrast.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_quickstart_learns(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["fit", "--config", str(ROOT / "configs/quickstart.yaml")]) == 0
    out = capsys.readouterr().out
    match = re.search(r"top-1 ([\d.]+)% \(untrained encoder: ([\d.]+)%\)", out)
    assert match, out[-2000:]
    trained, untrained = float(match.group(1)), float(match.group(2))
    assert trained > untrained + 15, (trained, untrained)
    assert (tmp_path / "runs").is_dir()  # CSV logs by default
