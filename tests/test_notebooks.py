"""The notebooks run top to bottom (on the embedded Shapes-10 data, on a CPU, in a few minutes each)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import require

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_every_notebook_is_collected():
    assert [p.stem for p in NOTEBOOKS] == [
        "01_quickstart",
        "02_infonce_two_forms",
        "03_temperature_ablation",
        "04_cross_modal_retrieval",
    ]


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path, tmp_path):
    nbformat = require("nbformat")
    nbclient = require("nbclient")
    notebook = nbformat.read(path, as_version=4)
    # Run in a scratch folder (Lightning and the sweep write there); the notebooks find the configs
    # through the installed package.
    client = nbclient.NotebookClient(
        notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError with the failing cell's traceback
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_are_committed_executed_with_small_pictures(path):
    """A reader sees the results on the repository page: every code cell ran (in order), there is at
    least one picture, no error, and the file stays small."""
    nbformat = require("nbformat")
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1)), "run it top to bottom, then commit"
    outputs = [output for cell in code for output in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "no picture in the outputs"
    assert path.stat().st_size < 1_000_000, f"{path.name} is {path.stat().st_size} bytes; keep the pictures small"
