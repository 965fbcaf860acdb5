from __future__ import annotations

import pytest
import torch

from contrast.data import ContrastiveData, DataNotFoundError, generate_shapes, load_split
from contrast.data.files import FolderImages
from contrast.data.sampler import EpochShuffle
from contrast.data.sources import TensorImages


def test_shapes_are_deterministic_balanced_and_labelled():
    images, labels = generate_shapes(1000, seed=0)
    again, labels_again = generate_shapes(1000, seed=0)
    assert torch.equal(images, again) and torch.equal(labels, labels_again)
    assert images.shape == (1000, 3, 32, 32) and images.dtype == torch.uint8
    assert torch.bincount(labels).tolist() == [100] * 10
    # Class structure: a nearest-class-mean classifier on the binarised shape beats chance by far.
    mask = (images.float().mean(1) > images.float().mean((1, 2, 3))[:, None, None]).float()
    polarity = (mask.mean((1, 2)) > 0.5).float()[:, None, None]
    mask = (mask - polarity).abs().flatten(1)  # shape pixels = 1 whatever the contrast polarity
    means = torch.stack([mask[labels == c].mean(0) for c in range(10)])
    accuracy = ((torch.cdist(mask, means).argmin(1) == labels).float().mean()).item()
    assert accuracy > 0.3  # chance is 0.1


def test_epoch_shuffle_depends_on_seed_and_epoch_and_skips_on_resume():
    sampler = EpochShuffle(10, seed=1)
    first = list(sampler)
    assert sorted(first) == list(range(10)) and list(EpochShuffle(10, seed=1)) == first
    sampler.set_epoch(2)
    second = list(sampler)
    assert sorted(i - 20 for i in second) == list(range(10)) and [i - 20 for i in second] != first
    resumed = EpochShuffle(10, seed=1)
    resumed.resume_at(2, 4)
    assert list(resumed) == second[4:]
    assert list(resumed) == second  # only the resumed pass skips; the epoch's next pass is whole
    resumed.resume_at(1, 4)
    resumed.set_epoch(2)
    assert list(resumed) == second  # a position saved for another epoch is not applied


@pytest.mark.parametrize("views", ["cpu", "batched"])
def test_two_view_batches_and_eval_batches(views):
    data = ContrastiveData(batch_size=8, train_subset=32, eval_subset=16, views=views)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    if views == "cpu":
        (q, k), labels = batch
        assert q.shape == k.shape == (8, 3, 32, 32) and q.dtype == torch.float32
    else:  # the batched path: uint8 images and each sample's counter epoch·N + i (epoch 0: the sampler's order)
        (images, counters), labels = batch
        assert images.shape == (8, 3, 32, 32) and images.dtype == torch.uint8
        assert counters.tolist() == list(data.train_dataloader().sampler)[:8]
    images, labels = next(iter(data.eval_dataloader(False)))
    assert images.dtype == torch.float32 and labels.shape == (16,)
    assert data.num_classes == 10 and data.in_channels == 3


def test_real_mnist_and_cifar10_jpeg(data_dir):
    mnist = load_split("mnist", data_dir, True)
    assert len(mnist) == 60000 and mnist[0][0].shape == (1, 28, 28)
    assert torch.bincount(mnist.labels).tolist()[:3] == [5923, 6742, 5958]
    fashion = load_split("fashion_mnist", data_dir, False)
    assert len(fashion) == 10000 and torch.bincount(fashion.labels).tolist() == [1000] * 10
    cifar = load_split("cifar10_jpeg", data_dir, False)
    assert len(cifar) == 10000 and cifar.classes[0] == "airplane" and cifar[0][0].shape == (3, 32, 32)


def test_missing_and_empty_data_directories_say_where_and_how(tmp_path):
    with pytest.raises(DataNotFoundError, match="CONTRAST_DATA_DIR=.*--data.root"):
        load_split("mnist", tmp_path, True)
    (tmp_path / "train" / "cat").mkdir(parents=True)
    with pytest.raises(DataNotFoundError, match="class sub-folders"):
        load_split("imagefolder", tmp_path, True)
    with pytest.raises(ValueError, match="unknown dataset"):
        load_split("imagenet22k", tmp_path, True)


def test_corrupt_image_is_reported_with_its_path(tmp_path):
    (tmp_path / "cat").mkdir()
    bad = tmp_path / "cat" / "broken.jpg"
    bad.write_bytes(b"not a jpeg at all")
    with pytest.raises(RuntimeError, match="broken.jpg"):
        FolderImages(tmp_path)[0]


def test_recipe_channels_must_match_the_data():
    data = ContrastiveData(dataset="shapes10", recipe_q="mnist", train_subset=16)
    with pytest.raises(ValueError, match="3-channel images but recipe 'mnist' expects 1"):
        data.setup("fit")


def test_torchvision_datasets_offline_give_a_clear_error(tmp_path):
    with pytest.raises(DataNotFoundError, match=r"(?s)cifar10.*--data.download true"):
        load_split("cifar10", tmp_path, True)


def _training_batches(data: ContrastiveData, steps: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The first ``steps`` (q, k, labels) training batches, as the trainer would see them."""

    class _Trainer:  # what on_after_batch_transfer reads
        training, global_step, accumulate_grad_batches = True, 0, 1
        strategy = type("Strategy", (), {"root_device": torch.device("cpu")})()

    data.trainer = _Trainer()
    data.setup("fit")
    out = []
    for step, batch in zip(range(steps), data.train_dataloader()):
        data.trainer.global_step = step
        (q, k), labels = data.on_after_batch_transfer(batch, 0)
        out.append((q, k, labels))
    return out


def test_memory_and_device_caches_give_exactly_the_uncached_batches(tmp_path):
    # An ImageFolder tree (read lazily without a cache) with two classes of different images.
    from torchvision.io import write_png

    g = torch.Generator().manual_seed(0)
    for c in ("a", "b"):
        (tmp_path / "train" / c).mkdir(parents=True)
        for i in range(12):
            write_png(
                torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8, generator=g),
                str(tmp_path / "train" / c / f"{i}.png"),
            )
    kwargs = dict(dataset="imagefolder", root=str(tmp_path), recipe_q="simclr_cifar10", views="batched", batch_size=8)
    reference = _training_batches(ContrastiveData(**kwargs), 3)
    for cache in ("memory", "device"):
        data = ContrastiveData(cache=cache, **kwargs)
        assert isinstance(data.split(True), TensorImages)
        batches = _training_batches(data, 3)
        for (q, k, y), (q0, k0, y0) in zip(batches, reference):
            assert torch.equal(q, q0) and torch.equal(k, k0) and torch.equal(y, y0), cache
    # The device cache's loader yields indices only.
    data = ContrastiveData(cache="device", **kwargs)
    data.setup("fit")
    counters = next(iter(data.train_dataloader()))  # epoch 0: the counters are the indices
    assert counters.dtype == torch.int64 and counters.shape == (8,) and int(counters.max()) < 24


def test_cache_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError, match="cache must be one of"):
        ContrastiveData(cache="gpu")
    with pytest.raises(ValueError, match='needs views="batched"'):
        ContrastiveData(cache="device", views="cpu")
    from torchvision.io import write_png

    (tmp_path / "train" / "a").mkdir(parents=True)
    for i, size in enumerate((32, 40)):
        write_png(torch.zeros(3, size, size, dtype=torch.uint8), str(tmp_path / "train" / "a" / f"{i}.png"))
    data = ContrastiveData(dataset="imagefolder", root=str(tmp_path), batch_size=2, cache="memory")
    with pytest.raises(ValueError, match="image_size"):
        data.split(True)


def _write_images(folder, n, value=100):
    from torchvision.io import write_jpeg

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        write_jpeg(torch.full((3, 8, 8), value, dtype=torch.uint8), str(folder / f"{i}.jpg"))


def test_test_labels_follow_the_training_class_list_and_hidden_files_are_no_images(tmp_path):
    """A class missing from test/ used to shift every later label (cat scored as bird); a stray
    .ipynb_checkpoints/ became a class, and macOS ._*.jpg files were read as images."""
    for name in ("bird", "cat", "dog"):
        _write_images(tmp_path / "train" / name, 2)
    for name in ("cat", "dog"):
        _write_images(tmp_path / "test" / name, 3)
    _write_images(tmp_path / "train" / ".ipynb_checkpoints", 1)
    (tmp_path / "train" / "cat" / "._0.jpg").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    train, test = load_split("imagefolder", tmp_path, True), load_split("imagefolder", tmp_path, False)
    assert train.classes == ["bird", "cat", "dog"] and len(train) == 6
    assert test.classes == train.classes
    assert test.labels.tolist() == [1, 1, 1, 2, 2, 2]  # by name: cat is 1, dog is 2, in both splits
    _write_images(tmp_path / "test" / "zebra", 1)
    with pytest.raises(ValueError, match=r"class folder\(s\) \['zebra'\] are not among the training split's 3"):
        load_split("imagefolder", tmp_path, False)


def test_a_checkpoint_of_two_ranks_resumes_on_one_process_at_the_same_sample():
    """The position was saved in per-rank batches: 2 ranks' 3 batches resumed on 1 process as its 3
    batches, retraining half of what was done. Saved in global samples, it starts at batch 6."""
    data = ContrastiveData(dataset="shapes10", views="batched", batch_size=8, train_subset=128)
    uninterrupted = [images for (images, _), _ in data.train_dataloader()]
    resumed = ContrastiveData(dataset="shapes10", views="batched", batch_size=8, train_subset=128)
    resumed.load_state_dict({"epoch": 0, "batches": 3, "samples": 3 * 8 * 2})  # 3 steps of 2 ranks × 8
    rest = [images for (images, _), _ in resumed.train_dataloader()]
    assert len(rest) == len(uninterrupted) - 6
    assert all(torch.equal(a, b) for a, b in zip(rest, uninterrupted[6:]))
