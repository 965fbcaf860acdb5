"""A captioned collection in tar shards, a two-tower checkpoint, their embeddings and index."""

from __future__ import annotations

import pytest
import torch

from contrast.cli import main
from contrast.data import PairedData
from contrast.methods import CrossModal


def trained(root):
    """A two-tower model trained briefly on Shapes-10 captions (its embeddings tell scenes apart)."""
    from pathlib import Path

    config = Path(__file__).resolve().parents[2] / "configs/crossmodal_shapes.yaml"
    settings = ["--data.train_size", "1024", "--data.test_size", "64", "--data.batch_size", "64"]
    quiet = ["--trainer.max_epochs", "3", "--trainer.enable_progress_bar", "false", "--run_dir", str(root / "run")]
    assert main(["fit", "--config", str(config), *settings, *quiet]) == 0
    return next((root / "run").rglob("last.ckpt"))


def checkpoint(tmp_path, seed: int = 0):
    """An untrained two-tower model's checkpoint."""
    torch.manual_seed(seed)
    data = PairedData(train_size=64, test_size=16, batch_size=8)
    model = CrossModal(backbone="tiny_cnn", embed_dim=16, head_hidden=32, **data.facts())
    path = tmp_path / f"two_towers{seed}.ckpt"
    hparams = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}
    torch.save({**hparams, "datamodule_hyper_parameters": dict(data.hparams)}, path)
    return path


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    """60 captioned Shapes-10 scenes in 3 tar shards, a checkpoint, embeddings and their index."""
    root = tmp_path_factory.mktemp("search")
    pytest.importorskip("webdataset", reason="webdataset writes the shards (the bench extra)")
    from tests.data.test_shards import write_shards

    images, captions = write_shards(root / "shards", 60, per_shard=20, fmt="png")
    ckpt = trained(root)
    assert (
        main(
            [
                "embed",
                "--ckpt",
                str(ckpt),
                "--images",
                str(root / "shards"),
                "--texts",
                str(root / "shards"),
                "--out",
                str(root / "out"),
                "--shard_size",
                "25",
            ]
        )
        == 0
    )
    assert main(["index", str(root / "out"), "--max_memory", "64MB"]) == 0
    return root, ckpt, images, captions
