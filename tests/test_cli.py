"""The `contrast` command end to end: every config, export / load_backbone, knn, bad values."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from contrast.cli import main
from tests.conftest import tiny_data

ROOT = Path(__file__).resolve().parents[1]
FAST = [
    "--trainer.fast_dev_run",
    "2",
    "--trainer.accelerator",
    "cpu",
    "--trainer.precision",
    "32",
    "--data.num_workers",
    "0",
    *tiny_data(),
]


def test_quickstart_config_fast_dev_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["fit", "--config", str(ROOT / "configs/quickstart.yaml"), *FAST]) == 0


@pytest.mark.parametrize(
    "config",
    [
        "simclr_cifar10",
        "moco_v2_cifar10",
        "moco_v3_cifar10",
        "simclr_cifar10_lightly",
        "moco_v2_cifar10_lightly",
        "supcon_cifar10",
        "nnclr_cifar10",
    ],
)
def test_cifar10_configs_run_a_few_steps_on_the_real_data(config, data_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["fit", "--config", str(ROOT / f"configs/{config}.yaml"), *FAST, "--data.root", str(data_dir)]) == 0


def test_bad_configuration_value_gives_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = ["fit", "--config", str(ROOT / "configs/quickstart.yaml"), *FAST, "--model.init_args.optimizer", "adam"]
    assert main(args) == 2
    assert "--model.init_args.optimizer: optimizer must be one of" in capsys.readouterr().err


def test_missing_data_directory_says_where_it_looked(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert (
        main(
            [
                "fit",
                "--config",
                str(ROOT / "configs/quickstart.yaml"),
                *FAST,
                "--data.dataset",
                "mnist",
                "--data.root",
                str(tmp_path / "nowhere"),
                "--data.recipe_q",
                "mnist",
            ]
        )
        == 2
    )
    assert "CONTRAST_DATA_DIR" in capsys.readouterr().err


def test_fit_export_load_backbone_and_knn(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = [
        "fit",
        "--config",
        str(ROOT / "configs/quickstart.yaml"),
        "--trainer.max_epochs",
        "1",
        "--trainer.limit_train_batches",
        "3",
        "--trainer.limit_val_batches",
        "1",
        *tiny_data(256, 128),
        "--trainer.default_root_dir",
        str(tmp_path),
    ]
    assert main(args) == 0
    checkpoints = sorted(tmp_path.rglob("last.ckpt"))
    assert checkpoints, list(tmp_path.rglob("*"))
    ckpt = checkpoints[0]
    assert not list(ckpt.parent.glob(".*.tmp"))  # atomic writes leave no temporary files
    assert main(["export", "--ckpt", str(ckpt), "--out", str(tmp_path / "exported")]) == 0
    import contrast

    backbone = contrast.load_backbone(tmp_path / "exported").eval()
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    for name, value in backbone.state_dict().items():
        assert torch.equal(value, state[f"backbone.{name}"]), name
    assert main(["knn", "--ckpt", str(ckpt), "--k", "20"]) == 0
    assert "top-1" in capsys.readouterr().out


def test_console_entry_point_prints_help():
    out = subprocess.run([sys.executable, "-m", "contrast.cli", "--help"], capture_output=True, text=True, check=True)
    for command in ("fit", "validate", "test", "export", "knn", "probe", "sweep"):
        assert command in out.stdout, command
    assert "contrast fit --config" in out.stdout


def test_validate_command_on_a_checkpoint(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    config = [
        "--config",
        str(ROOT / "configs/quickstart.yaml"),
        *tiny_data(),
        "--trainer.default_root_dir",
        str(tmp_path),
    ]
    assert main(["fit", *config, "--trainer.max_steps", "2", "--trainer.limit_val_batches", "1"]) == 0
    ckpt = next(tmp_path.rglob("last.ckpt"))
    assert main(["validate", *config, "--ckpt_path", str(ckpt)]) == 0
    assert "val/probe_top1" in capsys.readouterr().out


def test_ctrl_c_of_a_command_is_one_line_not_a_traceback(tmp_path, monkeypatch, capsys):
    """Ctrl-C of contrast pack: exit 130 and a line saying what was kept, no KeyboardInterrupt traceback."""
    import numpy as np
    from PIL import Image

    import contrast.data.pack.write as packing
    from contrast.cli import main

    (tmp_path / "src" / "a").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "src" / "a" / "x.png")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(packing, "encode", interrupted)
    assert main(["pack", str(tmp_path / "src"), str(tmp_path / "dest"), "--workers", "0"]) == 130
    err = capsys.readouterr().err
    assert "contrast pack: interrupted; the finished shards are kept: the same command finishes the pack" in err
    assert "Traceback" not in err


def test_zeroshot_command_on_a_two_tower_checkpoint(tmp_path, capsys):
    """class names of the data x prompt templates of a CLIP_benchmark-format file; one line of figures."""
    import json

    from tests.integrations.test_clip_benchmark import _checkpoint

    templates = tmp_path / "templates.json"
    templates.write_text(json.dumps({"shapes": ["a {c}.", "a small {c}."]}))
    ckpt = _checkpoint(tmp_path)
    run = ["zeroshot", "--ckpt", str(ckpt), "--dataset", "shapes10", "--templates", str(templates)]
    assert main([*run, "--templates_key", "shapes"]) == 0
    line = capsys.readouterr().out
    assert "zero-shot on shapes10 test split (1000 images, 10 classes; 2 shapes prompt templates" in line
    assert "top-1 " in line and "mean per-class recall " in line
    assert main([*run, "--templates_key", "nope"]) != 0
    assert "has no templates for 'nope'" in capsys.readouterr().err
