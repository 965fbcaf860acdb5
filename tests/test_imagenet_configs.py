"""The ImageNet recipes: each config builds the model its header describes on a packed split, and
one of them trains through the command line; each header names its paper and published figure."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.data.test_pack import _photo, _save

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ["simclr_imagenet", "moco_v2_imagenet", "moco_v3_imagenet", "simclr_imagenet100", "moco_v2_imagenet100"]
# what each paper's (or solo-learn's) text sets: method, backbone, optimizer, lr per 256, weight decay, τ
EXPECTED = {
    "simclr_imagenet": ("SimCLR", "resnet50", "lars", 0.3, 1e-6, 0.1),
    "moco_v2_imagenet": ("MoCoV2", "resnet50", "sgd", 0.03, 1e-4, 0.2),
    "moco_v3_imagenet": ("MoCoV3", "resnet50", "lars", 0.3, 1e-6, 1.0),
    "simclr_imagenet100": ("SimCLR", "resnet18", "lars", 0.3, 1e-4, 0.2),
    "moco_v2_imagenet100": ("MoCoV2", "resnet18", "sgd", 0.3, 1e-4, 0.2),
}
ON_A_CPU = [
    *("--trainer.accelerator cpu --trainer.devices 1 --trainer.strategy auto --trainer.sync_batchnorm false".split()),
    *("--trainer.precision 32 --data.decode cpu --data.num_workers 0 --data.batch_size 4".split()),
]


@pytest.fixture(scope="module")
def packs(tmp_path_factory):
    """train/ and val/ packs of photos larger than the 224-px views, 2 classes."""
    from contrast.data.pack import Settings, pack

    root = tmp_path_factory.mktemp("imagenet_like")
    for split, n in (("train", 8), ("val", 4)):
        for i in range(n):
            _save(root / "photos" / split / "ab"[i % 2] / f"{i}.jpg", _photo(230 + 3 * i, 250, i), quality=90)
        pack(root / "photos" / split, root / "packs" / split, settings=Settings(max_side=256), progress=False)
    return root / "packs"


@pytest.mark.parametrize("name", CONFIGS)
def test_each_imagenet_config_builds_its_paper_s_model(name, packs):
    from contrast.train import lightning_cli

    config = ROOT / "configs" / f"{name}.yaml"
    header = config.read_text().split("seed_everything")[0]
    assert re.search(r"Published.*\d\d\.\d+% top-1", header.replace("\n#", "")), header
    cli = lightning_cli(["--config", str(config), "--data.root", str(packs), *ON_A_CPU], run=False)
    model, data, hp = cli.model, cli.datamodule, cli.model.hparams
    method, backbone, optimizer, lr, weight_decay, temperature = EXPECTED[name]
    assert (type(model).__name__, hp.backbone, hp.optimizer) == (method, backbone, optimizer)
    assert (hp.lr, hp.lr_batch_size, hp.weight_decay, hp.temperature) == (lr, 256, weight_decay, temperature)
    assert data.dataset == "packed" and data.views == "split"
    assert hp.num_classes == 2  # the pack's classes, linked from the data


def test_an_imagenet_config_trains_with_its_lr_scaled_to_the_batch(packs, tmp_path, capsys):
    from contrast.cli import main

    config = str(ROOT / "configs" / "simclr_imagenet100.yaml")
    args = ["fit", "--config", config, "--data.root", str(packs), *ON_A_CPU, "--trainer.max_steps", "2"]
    assert main([*args, "--trainer.limit_val_batches", "0", "--run_dir", str(tmp_path / "r")]) == 0
    assert "run finished: 1 epochs, 2 steps" in capsys.readouterr().out
    import torch

    saved = torch.load(tmp_path / "r" / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    assert saved["lr_schedulers"][0]["base_lrs"][0] == pytest.approx(0.3 * 4 / 256)  # lr × global batch / 256


def test_the_linear_imagenet_config_is_moco_s_protocol_and_trains(packs, tmp_path, capsys):
    import json

    import torch

    from contrast.cli import main
    from contrast.models import build_backbone
    from contrast.train import lightning_cli
    from contrast.views.recipes import IMAGENET_MEAN, IMAGENET_STD

    export = tmp_path / "resnet50"  # an export folder of a ResNet-50 (random weights, ImageNet normalisation)
    export.mkdir()
    torch.save(build_backbone("resnet50").state_dict(), export / "backbone.pt")
    arch = {"backbone": "resnet50", "cifar_stem": False, "in_channels": 3}
    (export / "backbone.json").write_text(json.dumps(arch | {"mean": IMAGENET_MEAN, "std": IMAGENET_STD}))
    config = str(ROOT / "configs" / "linear_imagenet.yaml")
    header = Path(config).read_text().split("seed_everything")[0]
    assert "MoCo" in header and re.search(r"Published.*\d\d\.\d+% top-1", header.replace("\n#", ""))
    args = ["--config", config, "--data.root", str(packs), "--model.init_args.weights", str(export), *ON_A_CPU]
    cli = lightning_cli(args, run=False)
    hp, data = cli.model.hparams, cli.datamodule
    assert type(cli.model).__name__ == "LinearEval" and cli.trainer.max_epochs == 100
    assert (hp.optimizer, hp.lr, hp.lr_batch_size, hp.weight_decay, hp.sgd_momentum) == ("sgd", 30.0, 256, 0.0, 0.9)
    assert (data.recipe_q.name, len(data.recipes), data.dataset) == ("linear_imagenet", 1, "packed")
    run = ["fit", *args, "--trainer.max_steps", "2", "--trainer.check_val_every_n_epoch", "1"]
    assert main([*run, "--run_dir", str(tmp_path / "r")]) == 0
    line = capsys.readouterr().out
    for words in (
        "linear evaluation (augmented views (linear_imagenet: RandomResizedCrop 224",
        "resize 256, centre crop 224",
        "SGD lr 0.46875",
        "on 4 test images",
    ):  # lr 30 × 4 / 256
        assert words in line, (words, line)


def test_the_multi_crop_layer_gives_swav_s_views(packs):
    """configs/multicrop.yaml on an ImageNet config: 2 × 224 px of scale 0.14–1 and 6 × 96 px of scale 0.05–0.14."""
    from contrast.train import lightning_cli

    configs = [
        arg for name in ("simclr_imagenet100", "multicrop") for arg in ("--config", str(ROOT / f"configs/{name}.yaml"))
    ]
    cli = lightning_cli([*configs, "--data.root", str(packs), *ON_A_CPU], run=False)
    recipes = cli.datamodule.recipes
    assert [(r.size, r.crop_scale) for r in recipes] == [(224, (0.14, 1.0))] * 2 + [(96, (0.05, 0.14))] * 6
    assert cli.model.multi_crop and cli.datamodule.views == "split"
