"""The τ sweep on tiny data: CSV, table and plot; a rerun skips finished τ values."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from contrast.cli import main
from contrast.sweep import parse_taus
from tests.conftest import tiny_data

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "--trainer.max_epochs",
    "1",
    "--trainer.limit_train_batches",
    "2",
    "--trainer.limit_val_batches",
    "1",
    *tiny_data(96, 64),
]


def test_sweep_writes_csv_table_and_plot_and_resumes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "sweep"
    args = ["sweep", "--config", str(ROOT / "configs/quickstart.yaml"), "--tau", "0.1,0.5", "--out", str(out), *TINY]
    assert main(args) == 0
    rows = list(csv.DictReader(open(out / "sweep.csv")))
    assert [float(r["tau"]) for r in rows] == [0.1, 0.5]
    for r in rows:
        assert 0 <= float(r["knn_top1"]) <= 100 and 0 <= float(r["linear_top1"]) <= 100
        assert 0 <= float(r["alignment"]) <= 4 and float(r["uniformity"]) <= 0 and 0 < float(r["positive_prob"]) < 1
        assert float(r["final_loss"]) > 0
    assert (out / "sweep.md").read_text().count("\n") == 4 and (out / "sweep.png").stat().st_size > 1000
    # Every run's logs and checkpoint are under --out, none in ./runs.
    assert (out / "tau_0.1/checkpoints/last.ckpt").is_file() and (out / "tau_0.5/metrics.csv").is_file()
    assert not (tmp_path / "runs").exists()
    # An interrupted sweep: τ=0.5 never finished. The rerun trains only τ=0.5.
    (out / "tau_0.5" / "result.json").unlink()
    done = (out / "tau_0.1" / "result.json").stat().st_mtime_ns
    trained = []
    import contrast.train as cli

    original = cli.lightning_cli

    def recording(argv, run=True):
        trained.append(argv[argv.index("--model.init_args.temperature") + 1])
        return original(argv, run)

    monkeypatch.setattr(cli, "lightning_cli", recording)
    assert main(args) == 0
    assert trained == ["0.5"]
    assert (out / "tau_0.1" / "result.json").stat().st_mtime_ns == done
    assert len(list(csv.DictReader(open(out / "sweep.csv")))) == 2


def test_probe_command_on_a_quickstart_checkpoint(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert (
        main(
            [
                "fit",
                "--config",
                str(ROOT / "configs/quickstart.yaml"),
                *TINY,
                "--trainer.default_root_dir",
                str(tmp_path),
            ]
        )
        == 0
    )
    ckpt = next(tmp_path.rglob("last.ckpt"))
    assert main(["probe", "--ckpt", str(ckpt)]) == 0
    assert "linear probe (L-BFGS on fixed backbone features, whole 32-px images, standardised) on shapes10: top-1" in (
        capsys.readouterr().out
    )
    # Another checkpoint (one weight changed) with the first one's --state: refused by name.
    import torch

    from contrast.checkpoint import atomic_save

    checkpoint = torch.load(ckpt, weights_only=True)
    weight = next(k for k in checkpoint["state_dict"] if k.startswith("backbone.") and k.endswith("weight"))
    checkpoint["state_dict"][weight] = checkpoint["state_dict"][weight] * 1.5
    other = tmp_path / "other.ckpt"
    atomic_save(checkpoint, other)
    sgd = ["probe", "--mode", "sgd", "--epochs", "1", "--state", str(tmp_path / "head.pt")]
    assert main([*sgd, "--ckpt", str(ckpt)]) == 0
    # the protocol printed is the one linear_sgd ran, from its own arguments
    assert "BatchNorm + linear head, 1 epochs, SGD lr 0.1 momentum 0.9 wd 0 cosine, batch 256; test: " in (
        capsys.readouterr().out
    )
    assert main([*sgd, "--ckpt", str(other)]) != 0
    assert "was written for other features or settings: features checkpoint sha256" in capsys.readouterr().err
    # A NaN weight: both probe modes refuse, naming the checkpoint and the row.
    checkpoint["state_dict"][weight][0] = float("nan")
    atomic_save(checkpoint, other)
    for mode in ("lbfgs", "sgd"):
        assert main(["probe", "--mode", mode, "--ckpt", str(other)]) != 0
        error = capsys.readouterr().err
        assert f"the train features of --ckpt {other}: 96 row(s) hold NaN or Inf values, the first is row 0" in error


@pytest.mark.parametrize("text", ["", "0.1,-0.2", "0.1,abc", "0"])
def test_bad_tau_lists(text):
    with pytest.raises(ValueError, match="--tau"):
        parse_taus(text)


METHOD_OVERRIDES = {
    "moco_v2": ["--model", "contrast.methods.MoCoV2", "--model.init_args.queue_size", "64"],
    "moco_v3": ["--model", "contrast.methods.MoCoV3", "--model.init_args.predictor_hidden", "64"],
    "nnclr": [
        "--model",
        "contrast.methods.NNCLR",
        "--model.init_args.support_size",
        "64",
        "--model.init_args.predictor_hidden",
        "64",
    ],
    "supcon": ["--model", "contrast.methods.SupCon"],
    "simclr_dclw": ["--model.init_args.loss", "dclw"],
}


@pytest.mark.parametrize("method", sorted(METHOD_OVERRIDES))
def test_the_sweep_and_the_knn_callback_work_for_every_method(method, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "sweep"
    args = ["sweep", "--config", str(ROOT / "configs/quickstart.yaml"), "--tau", "0.2", "--out", str(out), *TINY]
    args += ["--model.init_args.projector_hidden", "64", "--model.init_args.projector_dim", "32"]
    assert main(args + METHOD_OVERRIDES[method]) == 0
    (row,) = list(csv.DictReader(open(out / "sweep.csv")))
    assert 0 < float(row["knn_top1"]) <= 100 and float(row["final_loss"]) == float(row["final_loss"])  # not NaN


def test_a_finished_tau_of_other_settings_is_refused(tmp_path):
    """A rerun with other settings into the same --out skipped every finished τ and printed the old table."""
    import json

    from contrast.sweep import run_sweep

    config = tmp_path / "sweep.yaml"
    config.write_text((ROOT / "configs" / "quickstart.yaml").read_text())
    (tmp_path / "out" / "tau_0.1").mkdir(parents=True)
    old = {"tau": 0.1, "final_loss": 1.0, "settings": {"config": config.read_text(), "overrides": ["--x", "1"]}}
    (tmp_path / "out" / "tau_0.1" / "result.json").write_text(json.dumps(old))
    with pytest.raises(ValueError, match="tau_0.1 holds a finished run with other settings"):
        run_sweep(str(config), [0.1], tmp_path / "out", ["--trainer.max_epochs", "1"])
