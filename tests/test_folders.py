"""Image folders as users have them, through ``contrast fit`` / ``knn`` / ``export``: unlabelled,
BMP / TIFF, corrupt files, mixed sizes, one image, the wrong number of channels; exported weights
load into plain torchvision."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from tests.test_runs import QUICK, contrast


def _images(folder, n, size=(32, 32), suffix=".png", seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    for i in range(n):
        pixels = torch.randint(0, 256, (size[1], size[0], 3), generator=g, dtype=torch.uint8).numpy()
        Image.fromarray(pixels).save(folder / f"{i:03d}{suffix}")


def _folder_args(root, *extra):
    return [
        *QUICK,
        "--data.dataset",
        "imagefolder",
        "--data.root",
        str(root),
        "--trainer.max_epochs",
        "1",
        "--data.train_subset",
        "null",
        "--data.eval_subset",
        "null",
        *extra,
    ]


def test_a_flat_unlabelled_folder_trains_without_probe_or_knn(tmp_path):
    _images(tmp_path / "photos", 40, suffix=".png")
    _images(tmp_path / "photos", 24, suffix=".bmp", seed=1)  # PIL decodes BMP
    _images(tmp_path / "photos", 1, suffix=".tif", seed=2)
    run = contrast("fit", *_folder_args(tmp_path / "photos"), cwd=tmp_path)
    assert "kNN evaluation off: no labelled images" in run.stderr + run.stdout
    assert "run finished: 1 epochs, 2 steps" in run.stdout and "kNN" not in run.stdout.splitlines()[-1]
    state = torch.load(tmp_path / "runs/lightning_logs/version_0/checkpoints/last.ckpt", weights_only=True)
    assert not any(k.startswith("probe.") for k in state["state_dict"])  # no labels: no probe


def test_an_unlabelled_folder_with_a_labelled_eval_root_scores_knn(tmp_path):
    _images(tmp_path / "photos", 64)
    for split, n in (("train", 10), ("test", 5)):
        for c in ("cat", "dog"):
            _images(tmp_path / "labelled" / split / c, n, seed=hash((split, c)) % 100)
    run = contrast(
        "fit", *_folder_args(tmp_path / "photos", "--data.eval_root", str(tmp_path / "labelled")), cwd=tmp_path
    )
    assert "kNN (weighted, k=200, τ=0.1, backbone features) top-1" in run.stdout.splitlines()[-1]


@pytest.mark.slow  # command-line runs of 17-21 s: kept out of the 10-minute default run
def test_corrupt_images_stop_with_their_name_or_are_skipped_and_counted(tmp_path):
    _images(tmp_path / "photos", 64)
    (tmp_path / "photos" / "broken.png").write_bytes(b"\x89PNG not really")
    failed = contrast("fit", *_folder_args(tmp_path / "photos"), "--data.views", "cpu", cwd=tmp_path, check=None)
    assert failed.returncode != 0 and "broken.png" in failed.stderr and "--data.skip_corrupt true" in failed.stderr
    skipped = contrast(
        "fit", *_folder_args(tmp_path / "photos", "--data.skip_corrupt", "true"), "--data.views", "cpu", cwd=tmp_path
    )
    assert "skipping corrupt image" in skipped.stderr and "broken.png (1 skipped so far)" in skipped.stderr


@pytest.mark.slow  # three runs of the command line (about 20 s)
def test_mixed_sizes_and_a_folder_with_one_image_are_clear_errors(tmp_path):
    _images(tmp_path / "mixed", 40)
    _images(tmp_path / "mixed", 1, size=(48, 40), suffix=".jpg")
    result = contrast("fit", *_folder_args(tmp_path / "mixed"), cwd=tmp_path, check=2)
    assert "use --data.views split" in result.stderr and "--data.image_size" in result.stderr
    assert "2 different sizes" in result.stderr
    contrast(
        "fit", *_folder_args(tmp_path / "mixed", "--data.image_size", "32"), "--trainer.max_steps", "1", cwd=tmp_path
    )
    _images(tmp_path / "one", 1)
    result = contrast("fit", *_folder_args(tmp_path / "one"), cwd=tmp_path, check=2)
    assert "the training set has 1 images, fewer than batch_size=32" in result.stderr


@pytest.mark.slow  # command-line runs of 17-21 s: kept out of the 10-minute default run
def test_knn_with_data_of_the_wrong_channel_count_says_so(tmp_path):
    contrast("fit", *QUICK, "--trainer.max_steps", "1", "--run_dir", "r", cwd=tmp_path)
    _images(tmp_path / "gray" / "train" / "a", 4)  # decoded as 3 channels; build a 1-channel checkpoint instead
    state = torch.load(tmp_path / "r/checkpoints/last.ckpt", weights_only=True)
    state["hyper_parameters"]["in_channels"] = 1
    conv = state["state_dict"]["backbone.features.0.weight"]
    state["state_dict"]["backbone.features.0.weight"] = conv[:, :1].contiguous()
    torch.save(state, tmp_path / "gray.ckpt")
    result = contrast("knn", "--ckpt", "gray.ckpt", cwd=tmp_path, check=2)
    assert "its backbone takes 1-channel images, but dataset 'shapes10' has 3-channel images" in result.stderr


@pytest.mark.slow  # a ResNet-18 trained, exported and loaded back (about 16 s each)
@pytest.mark.parametrize("cifar_stem", [True, False])
def test_exported_resnet_loads_into_plain_torchvision(tmp_path, cifar_stem):
    import torchvision  # noqa: F401 - used by the exported build lines

    import contrast as package

    contrast(
        "fit",
        *QUICK,
        "--trainer.max_steps",
        "1",
        "--model.init_args.backbone",
        "resnet18",
        "--model.init_args.cifar_stem",
        str(cifar_stem).lower(),
        "--data.train_subset",
        "64",
        "--data.batch_size",
        "32",
        "--run_dir",
        "r",
        cwd=tmp_path,
    )
    contrast("export", "--ckpt", "r/checkpoints/last.ckpt", "--out", "exported", cwd=tmp_path)
    meta = json.loads((tmp_path / "exported/backbone.json").read_text())
    assert ("model.maxpool = torch.nn.Identity()" in meta["build"]) == cifar_stem
    scope = {"torch": torch, "torchvision": torchvision, "contrast": package}
    exec("\n".join(meta["build"]).replace('"backbone.pt"', repr(str(tmp_path / "exported/backbone.pt"))), scope)
    plain = scope["model"].eval()
    ours = package.load_backbone(tmp_path / "exported").eval()
    images = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(plain(images), ours(images), rtol=0, atol=0)
    assert plain(images).shape == (2, meta["feature_dim"])
