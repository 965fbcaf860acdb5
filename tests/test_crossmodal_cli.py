"""The cross-modal side from the command line: fit on the embedded default ends with R@K both
ways next to the untrained model's, ``contrast retrieve`` scores the checkpoint, ``--ckpt_path
last`` resumes, the ACMR config runs on feature pairs, the τ sweep of the clip objective (with a
learned row), and bad input stops with one line naming what is wrong."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
import torch

from contrast.cli import main

ROOT = Path(__file__).resolve().parents[1]
SHAPES = [
    "--config",
    str(ROOT / "configs/crossmodal_shapes.yaml"),
    "--data.train_size",
    "384",
    "--data.test_size",
    "64",
    "--data.batch_size",
    "32",
    "--trainer.max_epochs",
    "2",
    "--trainer.enable_progress_bar",
    "false",
]
R_AT_K = re.compile(r"image→text R@1 [\d.]+ R@5 [\d.]+ R@10 [\d.]+ MedR [\d.]+ mAP [\d.]+; text→image R@1 [\d.]+ R@5")


def test_fit_prints_retrieval_both_ways_then_retrieve_and_resume(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["fit", *SHAPES]) == 0
    out = capsys.readouterr().out
    trained = next(line for line in out.splitlines() if line.startswith("retrieval on the test split (trained)"))
    untrained = next(line for line in out.splitlines() if line.startswith("retrieval on the test split (untrained)"))
    assert R_AT_K.search(trained) and R_AT_K.search(untrained)
    assert "retrieval R@5 image→text" in out.splitlines()[-1]  # the summary line
    checkpoint = tmp_path / "runs/lightning_logs/version_0/checkpoints/last.ckpt"
    assert checkpoint.is_file()
    metrics = tmp_path / "runs/lightning_logs/version_0/metrics.csv"
    logged = list(csv.DictReader(open(metrics)))

    assert main(["retrieve", "--ckpt", str(checkpoint), "--json", "scores.json"]) == 0
    printed = capsys.readouterr().out
    assert "64 images, 128 texts" in printed and "image→text R@1" in printed and "text→image R@1" in printed
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert {"i2t/R@1", "i2t/R@5", "i2t/R@10", "i2t/MedR", "t2i/R@5", "i2t/mAP", "t2i/mAP@R"} <= set(scores)
    assert scores["image_retrieval_recall@5"] == scores["t2i/R@5"] / 100  # CLIP_benchmark's name and scale
    assert scores["text_retrieval_recall@10"] == scores["i2t/R@10"] / 100
    assert f"R@5 {scores['i2t/R@5']:.1f}" in trained  # the same figures as the end of the fit

    # resume: one more epoch from the checkpoint, in the same run folder
    assert (
        main(
            [
                "fit",
                *SHAPES[:-4],
                "--trainer.max_epochs",
                "3",
                "--trainer.enable_progress_bar",
                "false",
                "--ckpt_path",
                "last",
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert "resuming from" in captured.err and "3 epochs" in captured.out.splitlines()[-1]
    assert "retrieval on the test split (untrained)" in captured.out  # the baseline, kept in the checkpoint
    # the resumed run appends to the run's metrics.csv: the first two epochs' rows are still there
    after = list(csv.DictReader(open(metrics)))
    assert after[: len(logged)] == logged and {r["epoch"] for r in after} == {"0", "1", "2"}


def test_a_pretrained_hf_text_tower_from_the_command_line_and_retrieve_without_its_folder(
    tmp_path, monkeypatch, capsys
):
    pytest.importorskip("transformers", reason="the hf extra: pip install 'contrast[hf]'")
    from tests.models.test_hf import _bert

    monkeypatch.chdir(tmp_path)
    _bert(tmp_path / "bert")
    tower = ["--data.tokenizer", "hf/bert", "--model.init_args.text_encoder", "hf/bert"]
    assert (
        main(["fit", *SHAPES[:-4], "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false", *tower]) == 0
    )
    trained = next(line for line in capsys.readouterr().out.splitlines() if "test split (trained)" in line)
    (tmp_path / "bert").rename(tmp_path / "moved")  # the checkpoint holds the tokenizer and the model's configuration
    assert main(["retrieve", "--ckpt", "runs/lightning_logs/version_0/checkpoints/last.ckpt"]) == 0
    printed = capsys.readouterr().out
    i2t = re.search(r"image→text R@1 [\d.]+ R@5 [\d.]+", printed).group(0)
    assert i2t in trained  # the same figures as the end of the fit


def test_acmr_config_on_feature_pairs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    g = torch.Generator().manual_seed(0)
    centres_i, centres_t = torch.randn(4, 12, generator=g), torch.randn(4, 6, generator=g)
    for split, n in (("train", 400), ("test", 100)):
        labels = torch.arange(n) % 4
        image = centres_i[labels] + 0.8 * torch.randn(n, 12, generator=g)
        text = centres_t[labels] + 0.8 * torch.randn(n, 6, generator=g)
        torch.save({"image": image, "text": text, "labels": labels}, tmp_path / f"{split}.pt")
    args = ["fit", "--config", str(ROOT / "configs/acmr_features.yaml"), "--data.root", str(tmp_path)]
    args += ["--data.batch_size", "50", "--trainer.max_epochs", "5", "--trainer.enable_progress_bar", "false"]
    assert main(args) == 0
    out = capsys.readouterr().out
    maps = [float(x) for x in re.findall(r"mAP ([\d.]+)", out.split("(trained):")[1].splitlines()[0])]
    untrained = [float(x) for x in re.findall(r"mAP ([\d.]+)", out.split("(untrained):")[1].splitlines()[0])]
    assert len(maps) == 2 and all(m > u + 20 for m, u in zip(maps, untrained)), out[-600:]


def test_sweep_of_the_clip_temperature_with_a_learned_row(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "sweep"
    args = [
        "sweep",
        "--config",
        str(ROOT / "configs/crossmodal_shapes.yaml"),
        "--tau",
        "0.05,0.2,learned",
        "--out",
        str(out),
    ]
    args += SHAPES[2:-4] + ["--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false"]
    assert main(args) == 0
    rows = list(csv.DictReader(open(out / "sweep.csv")))
    assert [r["tau"] for r in rows] == ["0.05", "0.2", "learned"]
    assert float(rows[0]["final_tau"]) == pytest.approx(0.05) and float(rows[1]["final_tau"]) == pytest.approx(0.2)
    assert float(rows[2]["final_tau"]) != pytest.approx(0.07)  # learned: moved from its initial value
    for r in rows:
        assert 0 <= float(r["i2t/R@1"]) <= 100 and 0 <= float(r["t2i/R@10"]) <= 100
    assert "| learned |" in (out / "sweep.md").read_text() and (out / "sweep.png").stat().st_size > 1000


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--model.init_args.embed_dim", "0"], "--model.init_args.embed_dim: embed_dim must be a positive int"),
        (["--model.init_args.objectives", "{cca: 1.0}"], "objectives must map some of"),
        (["--data.captions_per_image", "0"], "--data.captions_per_image: captions_per_image must be a positive int"),
        (["--model.init_args.backbone", "none"], "backbone 'none' takes image feature vectors"),
        (
            ["--model.init_args.objectives", "{acmr: 1.0}", "--data.dataset", "coco", "--data.root", "."],
            "caption files not found",
        ),
    ],
)
def test_bad_input_stops_with_one_line(extra, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["fit", *SHAPES, *extra]) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert not (tmp_path / "runs/lightning_logs/version_0/checkpoints/last.ckpt").exists()


def test_mismatched_feature_files_name_the_files(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    torch.save(
        {"image": torch.randn(10, 4), "text": torch.randn(9, 3), "labels": torch.arange(10) % 2}, tmp_path / "train.pt"
    )
    torch.save(
        {"image": torch.randn(10, 4), "text": torch.randn(10, 3), "labels": torch.arange(10) % 2}, tmp_path / "test.pt"
    )
    args = [
        "fit",
        "--config",
        str(ROOT / "configs/acmr_features.yaml"),
        "--data.root",
        str(tmp_path),
        "--data.batch_size",
        "4",
    ]
    assert main(args) == 2
    assert "has 10 rows but" in capsys.readouterr().err


def test_retrieve_refuses_an_image_checkpoint(tmp_path, monkeypatch, capsys):
    from contrast.methods import SimCLR

    monkeypatch.chdir(tmp_path)
    model = SimCLR(backbone="tiny_cnn", projector_hidden=16, projector_dim=8)
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}, tmp_path / "simclr.ckpt")
    assert main(["retrieve", "--ckpt", str(tmp_path / "simclr.ckpt")]) == 2
    assert "not a CrossModal checkpoint" in capsys.readouterr().err


@pytest.mark.slow
def test_the_embedded_default_meets_its_target(tmp_path, monkeypatch, capsys):
    """configs/crossmodal_relations.yaml as the README runs it: far from saturated, R@1 between 30% and
    80% both ways, R@5 far above the untrained model's (printed beside it)."""
    monkeypatch.chdir(tmp_path)
    config = str(ROOT / "configs/crossmodal_relations.yaml")
    assert main(["fit", "--config", config, "--trainer.enable_progress_bar", "false"]) == 0
    out = capsys.readouterr().out
    trained = out.split("(trained):")[1].splitlines()[0]
    untrained = out.split("(untrained):")[1].splitlines()[0]
    r1 = [float(x) for x in re.findall(r"R@1 ([\d.]+)", trained)]
    r5 = [float(x) for x in re.findall(r"R@5 ([\d.]+)", trained)]
    r5_untrained = [float(x) for x in re.findall(r"R@5 ([\d.]+)", untrained)]
    assert len(r1) == 2 and all(30.0 <= r <= 80.0 for r in r1), trained
    assert all(t > u + 40 for t, u in zip(r5, r5_untrained)), (trained, untrained)


@pytest.mark.slow
def test_acmr_beats_cca_on_cifar10_class_captions(data_dir, tmp_path):
    """The benchmark's claim on a small budget: on the same SimCLR features, the ACMR objective's mAP
    (both directions, label relevance) is above CCA's."""
    import subprocess
    import sys

    command = [sys.executable, str(ROOT / "benchmarks/bench_crossmodal.py"), "--pretrain-subset", "5000"]
    command += ["--pretrain-epochs", "3", "--epochs", "5", "--no-clip", "--no-append"]
    command += ["--features-out", str(tmp_path / "features"), "--out", str(tmp_path / "runs")]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ACMR mAP above CCA's in both directions: yes" in result.stdout, result.stdout[-2000:]


def test_the_sweep_knows_a_two_tower_config_by_its_model():
    from contrast.sweep import is_crossmodal

    assert is_crossmodal(ROOT / "configs/crossmodal_shapes.yaml")
    assert not is_crossmodal(ROOT / "configs/quickstart.yaml")
    assert is_crossmodal(ROOT / "configs/quickstart.yaml", ["--model", "contrast.methods.CrossModal"])
    assert not is_crossmodal(ROOT / "configs/crossmodal_shapes.yaml", ["--model", "contrast.methods.SimCLR"])


def test_a_missing_test_split_is_reported_before_training(tmp_path, monkeypatch, capsys):
    """With baseline: false it was reported only after the last epoch, whose checkpoint was then not written."""
    from contrast.cli import main

    monkeypatch.chdir(tmp_path)
    g = torch.Generator().manual_seed(0)
    (tmp_path / "pairs").mkdir()
    torch.save({"image": torch.randn(40, 6, generator=g), "text": torch.randn(40, 4, generator=g)}, "pairs/train.pt")
    args = [
        "fit", "--config", str(ROOT / "configs/acmr_features.yaml"), "--data.init_args.root", "pairs",
        "--model.init_args.objectives", "{clip: 1.0}", "--run_dir", "r", "--trainer.max_epochs", "2",
        "--data.init_args.batch_size", "8",
    ]  # fmt: skip
    callbacks = "[{class_path: contrast.eval.RetrievalCallback, init_args: {baseline: false, every_n_epochs: 2}}]"
    assert main([*args, "--trainer.callbacks", callbacks]) == 2
    assert "feature pairs (test) not found" in capsys.readouterr().err
    assert not (tmp_path / "r" / "checkpoints").exists()  # stopped before training (it wrote epoch 1's, then failed)


def test_a_run_stopped_during_its_final_evaluation_resumes_to_a_summary_with_its_figures(tmp_path, monkeypatch, capsys):
    """The last checkpoint is the final step's (written every 12 steps); the run stopped at the last
    epoch's end. Resumed, nothing is left to train, and the final weights are scored for the summary."""
    monkeypatch.chdir(tmp_path)
    every = ["--trainer.callbacks+", "contrast.checkpoint.LastCheckpoint", "--trainer.callbacks.every_n_steps", "12"]
    stop = ["--trainer.callbacks+", "tests.fit_callbacks.FailAtEpochEnd", "--trainer.callbacks.epoch", "1"]
    with pytest.raises(RuntimeError, match="stopped at the epoch's end"):
        main(["fit", *SHAPES, *every, *stop])
    capsys.readouterr()
    assert main(["fit", *SHAPES, *every, "--ckpt_path", "last"]) == 0
    summary = capsys.readouterr().out.splitlines()[-1]
    assert summary.startswith("run finished: 2 epochs, 24 steps") and "retrieval R@5 image→text" in summary
