"""Linear evaluation (LinearEval): a frozen backbone, a linear head trained on augmented views.

References: the backbone's weights and BatchNorm statistics before the run (frozen means
bit-identical after it); top-1 / top-5 recomputed here from the trained head with ``torch.topk`` on
the test images through torchvision's resize + centre crop; an uninterrupted run for resume."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torchvision.transforms import v2

from contrast.checkpoint import CheckpointError
from contrast.checks import ConfigError
from contrast.methods import LinearEval
from contrast.models import TinyCNN
from contrast.normalization import Normalization
from contrast.train import lightning_cli
from contrast.views import get_recipe

ROOT = Path(__file__).resolve().parents[2]
QUICK = [
    "--config",
    str(ROOT / "configs/linear_quickstart.yaml"),
    "--data.train_subset",
    "256",
    "--data.eval_subset",
    "200",
    "--data.batch_size",
    "32",
    "--trainer.enable_progress_bar",
    "false",
    "--trainer.logger",
    "false",
]


def _export(folder: Path, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)) -> Path:
    """An export folder (as ``contrast export`` writes) of a seeded tiny CNN."""
    torch.manual_seed(0)
    model = TinyCNN(in_channels=3)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), folder / "backbone.pt")
    arch = {"backbone": "tiny_cnn", "cifar_stem": False, "in_channels": 3, "mean": list(mean), "std": list(std)}
    (folder / "backbone.json").write_text(json.dumps(arch | {"feature_dim": model.feature_dim}))
    return folder


def _fit(tmp_path: Path, weights: Path, *extra: str):
    return lightning_cli(
        ["fit", *QUICK, "--model.init_args.weights", str(weights), "--run_dir", str(tmp_path / "run"), *extra]
    )


def test_backbone_frozen_head_trained_and_top_k_recomputed(tmp_path):
    weights = _export(tmp_path / "export")
    before = torch.load(weights / "backbone.pt", weights_only=True)
    # 2 epochs under the config's check_val_every_n_epoch 5: the last epoch evaluates all the same
    cli = _fit(tmp_path, weights, "--trainer.max_epochs", "2")
    model, data = cli.model.cpu().eval(), cli.datamodule
    after = {k.removeprefix("backbone."): v for k, v in model.state_dict().items() if k.startswith("backbone.")}
    assert before.keys() == after.keys()
    for name, value in before.items():  # weights and BatchNorm running statistics alike
        assert torch.equal(value, after[name]), name
    head = model.head[1]
    assert head.weight.abs().sum() > 0 and not torch.allclose(head.weight.std(), torch.tensor(0.01), atol=1e-4)
    # The figures: top-k of the trained head on torchvision's evaluation transform of the test images.
    recipe = get_recipe("linear_quickstart")
    transform = v2.Compose(
        [
            v2.Resize(recipe.size, antialias=True),
            v2.CenterCrop(recipe.size),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(recipe.mean, recipe.std),
        ]
    )
    test = data.eval_split(False)
    images = torch.stack([transform(test[i][0]) for i in range(len(test))])
    labels = torch.tensor([int(test[i][1]) for i in range(len(test))])
    with torch.no_grad():
        logits = model.head(model.backbone(images))
    top5 = logits.topk(5, dim=1).indices
    top1 = 100.0 * int((top5[:, 0] == labels).sum()) / len(labels)
    top5_acc = 100.0 * int((top5 == labels[:, None]).any(dim=1).sum()) / len(labels)
    assert model.scores["images"] == len(test) == 200
    assert model.scores["top1"] == pytest.approx(top1, abs=1e-9)
    assert model.scores["top5"] == pytest.approx(top5_acc, abs=1e-9)
    assert top1 > 10.0  # better than chance on 10 classes, after 16 steps of a BatchNorm + linear head
    line = model.summary()
    expected = ("augmented views", "RandomResizedCrop 32", "2 epochs", "SGD lr 0.1", "cosine", "test: whole 32-px")
    for words in expected:
        assert words in line, (words, line)
    assert line.endswith("on 200 test images after epoch 2"), line


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_gives_the_uninterrupted_head(tmp_path):
    import os
    import subprocess
    import sys

    weights = _export(tmp_path / "export")
    common = [
        *QUICK,
        "--trainer.max_epochs",
        "2",
        "--trainer.check_val_every_n_epoch",
        "5",
        "--model.init_args.weights",
        str(weights),
    ]
    straight = lightning_cli(["fit", *common, "--run_dir", str(tmp_path / "a")])
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    killed = subprocess.run(
        [
            sys.executable,
            "-m",
            "contrast.cli",
            "fit",
            *common,
            "--run_dir",
            str(tmp_path / "b"),
            "--trainer.callbacks+",
            "contrast.checkpoint.LastCheckpoint",
            "--trainer.callbacks.every_n_steps",
            "1",
            "--trainer.callbacks+",
            "tests.fit_callbacks.KillAtStep",
            "--trainer.callbacks.step",
            "11",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert killed.returncode == -9, killed.stderr[-2000:]  # SIGKILL mid-epoch 2 (8 steps an epoch)
    resumed = lightning_cli(["fit", *common, "--run_dir", str(tmp_path / "b"), "--ckpt_path", "last"])
    assert resumed.trainer.global_step == straight.trainer.global_step == 16
    for name, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name


def test_one_view_per_image_from_every_view_path(tmp_path):
    from contrast.data import ContrastiveData

    for views in ("cpu", "batched", "split"):
        data = ContrastiveData(
            recipe_q="linear_quickstart", recipe_k="none", views=views, train_subset=64, batch_size=16
        )
        data.setup("fit")
        batch = next(iter(data.train_dataloader()))
        if views == "split":  # one crop and one parameter pack per sample
            (crops, params), labels = batch
            assert len(crops) == len(params) == 1
        views_, labels = data.path.on_device(data.path.transfer(batch, lambda part: part), torch.device("cpu"))
        assert len(views_) == 1 and views_[0].shape == (16, 3, 32, 32), views
        assert labels.shape == (16,)


# ---------------------------------------------------------------------- bad input, before training
def test_a_checkpoint_without_a_backbone_is_refused(tmp_path):
    path = tmp_path / "head_only.ckpt"
    torch.save({"state_dict": {"head.weight": torch.zeros(2, 2)}, "hyper_parameters": {"backbone": "tiny_cnn"}}, path)
    with pytest.raises(CheckpointError, match="holds no backbone weights"):
        LinearEval(weights=str(path))
    with pytest.raises(FileNotFoundError, match="neither a checkpoint file, an export folder"):
        LinearEval(weights=str(tmp_path / "missing.ckpt"))


def test_named_torchvision_weights_offline_say_where_the_file_goes(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(CheckpointError, match=r"torchvision/resnet18.*torch hub cache"):
        LinearEval(weights="torchvision/resnet18")
    with pytest.raises(ConfigError, match="has no weights 'NOPE'"):
        LinearEval(weights="torchvision/resnet18:NOPE")


def test_named_torchvision_weights_load_into_the_backbone(monkeypatch):
    import torchvision

    import contrast.export

    reference = torchvision.models.resnet18(weights=None)
    # The verified hub read is tested in tests/models/test_published.py; here, what is done with its state.
    monkeypatch.setattr(contrast.export, "hub_weights", lambda url, what: reference.state_dict())
    model = LinearEval(weights="torchvision/resnet18", num_classes=5)
    assert model.feature_dim == 512 and model.hparams.backbone == "resnet18"
    for name, value in model.backbone.state_dict().items():
        assert torch.equal(value, reference.state_dict()[name]), name
    assert model.pretrained == Normalization((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def _setup_with(model: LinearEval, **data) -> None:
    defaults = dict(labelled=True, recipe_q=get_recipe("linear_quickstart"), batch_size=32)
    model._trainer = SimpleNamespace(
        datamodule=SimpleNamespace(**(defaults | data)),
        max_epochs=1,
        max_steps=-1,
        world_size=1,
        accumulate_grad_batches=1,
    )
    model.setup("fit")


def test_missing_labels_class_mismatch_and_channels_are_refused(tmp_path):
    model = LinearEval(weights=str(_export(tmp_path / "export")), num_classes=10)
    with pytest.raises(ValueError, match="needs labels: the training split of the data has none"):
        _setup_with(model, labelled=False)
    test = SimpleNamespace(classes=[str(i) for i in range(7)], labels=torch.arange(7))
    with pytest.raises(ValueError, match="training split has 10 classes but the test split 7"):
        _setup_with(model, eval_split=lambda train: test)
    with pytest.raises(ValueError, match="takes 3-channel images, but the data has 1-channel"):
        LinearEval(weights=str(tmp_path / "export"), in_channels=1)
    with pytest.raises(ConfigError, match="at least 2 classes"):
        LinearEval(weights=str(tmp_path / "export"), num_classes=0)


@pytest.mark.parametrize("linked", [True, False])
def test_a_backbone_is_fed_pixels_normalised_as_in_its_pretraining(tmp_path, linked):
    """A backbone pretrained on pixels normalised with (0.5, 0.25) evaluated on views of a recipe
    with CIFAR statistics: the views are mapped back onto the pretraining normalisation, equal in
    float64 to normalising the same pixels with the backbone's own statistics; the line says so."""
    cifar = get_recipe("linear_cifar10")
    facts = {"normalization": cifar.normalization.record()} if linked else {}
    model = LinearEval(weights=str(_export(tmp_path / "export")), num_classes=10, **facts).double()
    _setup_with(model, recipe_q=cifar)
    assert model.renormalised and "re-normalised to its pretraining mean [0.5, 0.5, 0.5], std [0.25" in str(
        model.protocol
    )
    pixels = torch.rand(4, 3, 32, 32, dtype=torch.float64)
    mean, std = (torch.tensor(v, dtype=torch.float64).view(1, 3, 1, 1) for v in (cifar.mean, cifar.std))
    views = (pixels - mean) / std  # what the data hands over
    model.eval()
    torch.testing.assert_close(model.encode(views), model.backbone((pixels - 0.5) / 0.25), rtol=1e-12, atol=1e-12)
    same = LinearEval(weights=str(tmp_path / "export"), num_classes=10)
    _setup_with(same, recipe_q=get_recipe("linear_quickstart"))  # the pretraining's own: nothing to map
    assert not same.renormalised and "re-normalised" not in str(same.protocol)


def test_a_head_of_another_width_in_a_checkpoint_is_refused(tmp_path):
    model = LinearEval(weights=str(_export(tmp_path / "export")), num_classes=10)
    state = {k: v for k, v in model.state_dict().items()}
    state["head.weight"] = torch.zeros(10, model.feature_dim + 3)
    with pytest.raises(CheckpointError, match=rf"head takes features of width {model.feature_dim + 3}"):
        model.on_load_checkpoint({"state_dict": state})


def test_nesterov_momentum_follows_its_formula_and_needs_sgd(tmp_path):
    """SimCLR's linear evaluation uses SGD with Nesterov momentum: two steps of the head against the
    explicit update in float64 (v ← μv + g; p ← p − lr·(g + μv)), the schedule held at its peak."""
    weights = _export(tmp_path / "export")
    model = LinearEval(str(weights), num_classes=3, lr=0.5, sgd_momentum=0.9, nesterov=True).double()
    model.trainer = SimpleNamespace(estimated_stepping_batches=1000, max_epochs=1)
    optimizer = model.configure_optimizers()["optimizer"]
    model.trainer = None
    assert all(group["nesterov"] for group in optimizer.param_groups)
    p, v = model.head.weight.detach().clone(), torch.zeros_like(model.head.weight)
    torch.manual_seed(0)
    for _ in range(2):
        g = torch.randn_like(p)
        optimizer.zero_grad()
        model.head.weight.grad = g.clone()
        optimizer.step()
        v = 0.9 * v + g
        p = p - 0.5 * (g + 0.9 * v)
    torch.testing.assert_close(model.head.weight.detach(), p, rtol=1e-12, atol=1e-12)
    for bad in (dict(optimizer="adamw"), dict(optimizer="lars"), dict(sgd_momentum=0.0), dict(nesterov="yes")):
        with pytest.raises(ConfigError, match="nesterov"):
            LinearEval(str(weights), **({"nesterov": True} | bad))
