"""The CPU rehearsal of benchmarks/gpu_session.py: the whole session at a toy scale (Shapes-10, the
tiny CNN, a few steps a stage), so that the script a GPU session runs once cannot rot between them;
and the fast recipe it trains builds the model its header describes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_gpu_session_rehearses_on_a_cpu(tmp_path):
    out = tmp_path / "session"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/gpu_session.py"), "--toy", "--out", str(out), "--budget", "400"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(line) for line in (out / "figures.jsonl").read_text().splitlines()]
    by_stage = {}
    for line in lines:
        by_stage.setdefault(line["stage"], []).append(line)
    assert by_stage["session"][0]["device"] == "CPU (rehearsal)" and by_stage["session"][-1]["finished"]
    assert by_stage["tests"][0]["returncode"] == 0  # tests/test_cuda.py: skipped on a CPU, with its reason
    profile = by_stage["profile"][0]
    assert profile["ms_per_step"] > 0 and profile["top"]
    speed = by_stage["speed"][0]
    assert speed["rung"] == "eager" and speed["samples_per_s"] > 0, speed
    knn = [line for line in by_stage["tta"] if "knn_top1" in line]
    assert knn and all(0 <= line["knn_top1"] <= 100 for line in knn) and knn[0]["epoch"] == 1
    assert [line["returncode"] for line in by_stage["tta"] if "returncode" in line] == [0]
    moco = [line for line in by_stage["moco"] if "returncode" in line]
    assert [line["run"] for line in moco] == ["moco_v2, shuffle_bn true", "moco_v2, shuffle_bn false"]
    assert all(line["returncode"] == 0 for line in moco)
    decode = by_stage["decode"][0]
    assert decode["device"] == "cpu" and decode["batch"] == 16, decode
    assert all(decode[k] > 0 for k in ("decode_images_per_s", "cut_samples_per_s", "views_samples_per_s"))
    loader = {line["run"]: line for line in by_stage["loader"] if "per_core" in line}
    assert set(loader) == {"torchvision", "ours, decode cpu", "ours, decode device"}, by_stage["loader"]
    assert all(line["workers"] == 1 and line["per_core"] > 0 for line in loader.values())
    ratios = [line["run"] for line in by_stage["loader"] if "ratio" in line]
    assert ratios == ["ours, decode cpu", "ours, decode device"]
    rows = (out / "rows.md").read_text()
    assert "| speed | SimCLR ResNet-18, eager |" in rows and "| tta |" in rows and rows.count("| moco |") == 2
    assert rows.count("| decode |") == 3 and rows.count("| loader |") == 3
    entry = (out / "RESULTS.md").read_text()  # through benchmarks/common.py, as every benchmark's
    assert "## GPU session (benchmarks/gpu_session.py), CPU rehearsal" in entry and "- machine: " in entry
    assert "| stage | what | figure | notes |" in entry and "| speed | SimCLR ResNet-18, eager |" in entry


def test_a_stage_past_its_share_is_stopped_and_said(tmp_path):
    """With no time left for them, the stages are recorded as skipped, not run (and nothing hangs)."""
    out = tmp_path / "session"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/gpu_session.py"), "--toy", "--out", str(out), "--budget", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(line) for line in (out / "figures.jsonl").read_text().splitlines()]
    skipped = [line["stage"] for line in lines if "skipped" in line]
    assert skipped == ["tests", "speed", "tta", "moco", "decode", "loader"]


def test_the_fast_recipe_builds_the_model_its_header_describes():
    from contrast.train import lightning_cli

    config = ROOT / "configs/simclr_cifar10_fast.yaml"
    cli = lightning_cli(
        ["--config", str(config), "--trainer.accelerator", "cpu", "--trainer.precision", "32"], run=False
    )
    hp, data = cli.model.hparams, cli.datamodule
    assert (type(cli.model).__name__, hp.backbone, hp.cifar_stem, hp.temperature) == ("SimCLR", "resnet18", True, 0.2)
    assert (hp.optimizer, hp.lr, hp.lr_batch_size, data.batch_size, cli.trainer.max_epochs) == (
        "sgd",
        0.06,
        128,
        512,
        150,
    )
    assert (data.views, data.cache) == ("batched", "device")


@pytest.mark.slow
def test_the_session_runs_the_stages_it_is_given(tmp_path):
    out = tmp_path / "session"
    command = [sys.executable, str(ROOT / "benchmarks/gpu_session.py"), "--toy", "--out", str(out)]
    proc = subprocess.run([*command, "--stages", "decode"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    stages = {json.loads(line)["stage"] for line in (out / "figures.jsonl").read_text().splitlines()}
    assert stages == {"session", "decode"}
    proc = subprocess.run([*command, "--stages", "decode,nope"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "--stages: unknown stage(s) ['nope']" in proc.stderr
