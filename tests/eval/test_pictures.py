"""Pictures: the nearest-neighbour grid shows the nearest training images by the features, the map
is drawn; both from a checkpoint by ``contrast pictures`` and every N epochs from the kNN callback.

References: cosine similarities in float64 and a stable ``argsort`` for the neighbours; an SVD
written out for the PCA map; PIL to read the PNGs back."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from contrast.checks import ConfigError
from contrast.eval import KNNCallback, pictures


def _features(n: int, d: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randint(0, 3, (n,), generator=g)


def _brute_force(train: torch.Tensor, test: torch.Tensor, k: int) -> np.ndarray:
    a = test.double() / test.double().norm(dim=1, keepdim=True)
    b = train.double() / train.double().norm(dim=1, keepdim=True)
    return np.argsort(-(a @ b.T).numpy(), axis=1, kind="stable")[:, :k]


def test_nearest_are_the_most_similar_training_features():
    train, _ = _features(300)
    test, _ = _features(40, seed=1)
    queries = pictures.query_indices(40, 8)
    assert queries.tolist() == [0, 6, 11, 17, 22, 28, 33, 39]
    found = pictures.nearest(train, test, queries, 8)
    assert found.tolist() == _brute_force(train, test[queries], 8).tolist()


def test_the_grid_shows_the_nearest_images_and_both_pngs_are_written(tmp_path, monkeypatch):
    train_x, train_y = _features(120)
    test_x, test_y = _features(30, seed=1)
    train_images = [(torch.full((3, 16, 16), float(i)), int(train_y[i])) for i in range(120)]  # image i shows i
    test_images = [(torch.full((3, 16, 16), -float(i)), int(test_y[i])) for i in range(30)]
    shown = {}
    real = pictures.neighbour_grid

    def record(path, queries, query_labels, neighbours, neighbour_labels, *args, **kwargs):
        shown["queries"] = [int(-q[0, 0, 0]) for q in queries]
        shown["neighbours"] = [[int(x[0, 0, 0]) for x in row] for row in neighbours]
        shown["labels"] = neighbour_labels.tolist()
        return real(path, queries, query_labels, neighbours, neighbour_labels, *args, **kwargs)

    monkeypatch.setattr(pictures, "neighbour_grid", record)
    paths = pictures.draw(
        tmp_path / "pics",
        (train_x, train_y),
        (test_x, test_y),
        train_images,
        test_images,
        ["a", "b", "c"],
        (0.5, 0.5, 0.5),
        (0.25, 0.25, 0.25),
        queries=5,
        k=8,
        method="pca",
    )
    expected = _brute_force(train_x, test_x[shown["queries"]], 8)
    assert shown["queries"] == pictures.query_indices(30, 5).tolist()
    assert shown["neighbours"] == expected.tolist()
    assert shown["labels"] == train_y[torch.from_numpy(expected)].tolist()
    for name in ("neighbours", "map"):
        with Image.open(paths[name]) as image:
            assert image.format == "PNG" and image.width > 100 and image.height > 100
    assert not list((tmp_path / "pics").glob("*.partial*"))


def test_the_map_methods():
    x, _ = _features(50)
    coords, used = pictures.project(x, "pca")
    centred = torch.nn.functional.normalize(x, dim=1).double()
    centred = centred - centred.mean(0)
    _, _, v = torch.linalg.svd(centred, full_matrices=False)
    reference = centred @ v[:2].T
    assert used == "PCA"
    torch.testing.assert_close(coords.double().abs(), reference.abs(), atol=1e-5, rtol=1e-4)  # up to the axes' signs
    assert pictures.project(x, "auto")[1] in ("UMAP", "t-SNE")  # scikit-learn is installed with the dev extra
    with pytest.raises(ValueError, match="map must be one of"):
        pictures.project(x, "mds")


def test_the_pictures_command_on_a_checkpoint(tmp_path, capsys):
    from contrast.cli import main
    from contrast.methods import SimCLR

    torch.manual_seed(0)
    model = SimCLR(backbone="tiny_cnn", projector_hidden=32, projector_dim=16)
    checkpoint = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}
    checkpoint["datamodule_hyper_parameters"] = {
        "dataset": "shapes10",
        "recipe_q": "quickstart",
        "eval_subset": 100,
        "train_subset": 200,
    }
    torch.save(checkpoint, tmp_path / "simclr.ckpt")
    args = ["pictures", "--ckpt", str(tmp_path / "simclr.ckpt"), "--out", str(tmp_path / "pics"), "--map", "pca"]
    assert main(args) == 0
    assert "8 nearest training images of 8 test images" in capsys.readouterr().out
    assert (tmp_path / "pics" / "neighbours.png").is_file() and (tmp_path / "pics" / "map.png").is_file()
    assert main([*args, "--k", "0"]) == 2


def test_the_pictures_command_on_a_two_image_split_reports_what_it_drew(tmp_path, capsys):
    """t-SNE cannot place 2 points (its perplexity must stay below the count): the auto map falls
    back to PCA, and the line reports the drawn counts (2 queries, 3 neighbours), not the asked ones."""
    from contrast.cli import main
    from contrast.methods import SimCLR

    torch.manual_seed(0)
    model = SimCLR(backbone="tiny_cnn", projector_hidden=32, projector_dim=16)
    checkpoint = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}
    checkpoint["datamodule_hyper_parameters"] = {
        "dataset": "shapes10", "recipe_q": "quickstart", "eval_subset": 2, "train_subset": 3,
    }  # fmt: skip
    torch.save(checkpoint, tmp_path / "simclr.ckpt")
    assert main(["pictures", "--ckpt", str(tmp_path / "simclr.ckpt"), "--out", str(tmp_path / "pics")]) == 0
    out = capsys.readouterr().out
    assert "3 nearest training images of 2 test images" in out and "(2 test features, PCA)" in out
    with pytest.raises(ValueError, match="map 'tsne' needs at least 4 points, got 2; use --map pca"):
        pictures.project(torch.randn(2, 8), "tsne")


def test_commands_on_unlabelled_data_name_their_own_options(tmp_path, capsys):
    from PIL import Image

    from contrast.cli import main
    from contrast.methods import SimCLR

    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(4):
        Image.fromarray((torch.rand(32, 32, 3) * 255).byte().numpy()).save(folder / f"{i}.png")
    model = SimCLR(backbone="tiny_cnn", projector_hidden=32, projector_dim=16)
    checkpoint = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}
    data = {"dataset": "imagefolder", "root": str(folder), "recipe_q": "quickstart"}
    checkpoint["datamodule_hyper_parameters"] = data
    torch.save(checkpoint, tmp_path / "simclr.ckpt")
    for command in (["pictures", "--out", str(tmp_path / "pics")], ["knn"], ["probe"]):
        assert main([command[0], "--ckpt", str(tmp_path / "simclr.ckpt"), *command[1:]]) != 0
        err = capsys.readouterr().err
        assert "has no labelled train and test split" in err and "--dataset and --root" in err, err
        assert "eval_root" not in err
    assert not (tmp_path / "pics").exists()


def test_the_knn_callback_draws_every_n_epochs(tmp_path):
    import lightning as L

    from contrast.data import ContrastiveData
    from contrast.methods import SimCLR

    with pytest.raises(ConfigError, match="must be a multiple of every_n_epochs"):
        KNNCallback(every_n_epochs=2, pictures_every_n_epochs=3)
    torch.manual_seed(0)
    data = ContrastiveData(batch_size=32, train_subset=64, eval_subset=40, views="batched")
    model = SimCLR(backbone="tiny_cnn", projector_hidden=32, projector_dim=16, num_classes=10)
    callback = KNNCallback(every_n_epochs=1, k=5, pictures_every_n_epochs=2, pictures_map="pca")
    trainer = L.Trainer(
        max_epochs=2,
        callbacks=[callback],
        default_root_dir=tmp_path,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(model, datamodule=data)
    drawn = sorted(p.name for p in (tmp_path / "pictures").iterdir())
    assert drawn == ["epoch0002_map.png", "epoch0002_neighbours.png"]  # epoch 2 only
