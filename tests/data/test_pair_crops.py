"""Image–text pairs on the split path (``PairedData(recipe="clip")``): each training image's crop box is
drawn from (seed, epoch, index) and the stored size (a JPEG's header, a pack's index) before one decode.
Checked against :class:`contrast.views.SplitViews` cutting the whole image decoded by torchvision: the same
pixels where no reduced decode applies, within a few levels where the decode is reduced (and that it is);
the crops a function of the counter only, of 90-100% of the image, the test split untouched; bad recipes
and damaged images named. The shards are real tar files in img2dataset's layout."""

from __future__ import annotations

import warnings

import pytest
import torch

wds = pytest.importorskip("webdataset", reason="webdataset writes the shards (the bench extra)")

from PIL import JpegImagePlugin  # noqa: E402
from torchvision.io import ImageReadMode, decode_jpeg, encode_jpeg  # noqa: E402
from torchvision.transforms.v2 import functional as TF  # noqa: E402

from contrast.checks import ConfigError  # noqa: E402
from contrast.cli import main  # noqa: E402
from contrast.data import PairedData  # noqa: E402
from contrast.data.shapes import generate_scenes  # noqa: E402
from contrast.views import SplitViews  # noqa: E402
from contrast.views.recipes import CLIP  # noqa: E402
from tests.data.test_shards import write_tar  # noqa: E402

CAPTIONS = [f"scene number {i}" for i in range(12)]


def _jpegs(n: int, height: int, width: int, seed: int = 0) -> list[bytes]:
    """n Shapes-10 scenes stretched to height × width, as JPEG bytes."""
    images, _ = generate_scenes(n, size=32, seed=seed)
    return [
        encode_jpeg(TF.resize(image, [height, width], antialias=True), quality=95).numpy().tobytes() for image in images
    ]


def _shards(folder, jpegs: list[bytes], per_shard: int = 5):
    folder.mkdir(parents=True, exist_ok=True)
    for shard in range((len(jpegs) + per_shard - 1) // per_shard):
        with wds.TarWriter(str(folder / f"{shard:05d}.tar")) as sink:
            for i in range(shard * per_shard, min(len(jpegs), (shard + 1) * per_shard)):
                sink.write({"__key__": f"{shard:05d}{i:04d}", "jpg": jpegs[i], "txt": CAPTIONS[i % len(CAPTIONS)]})


def _reference(jpeg: bytes, index: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    """The crop of sample ``index`` cut by SplitViews from torchvision's decode of the whole image."""
    image = decode_jpeg(torch.frombuffer(bytearray(jpeg), dtype=torch.uint8), mode=ImageReadMode.RGB)
    return SplitViews((CLIP.with_(size=size),), seed=seed)(image, index)[0][0]


@pytest.fixture
def small(tmp_path):
    """12 training pairs of 40 × 48 px JPEGs (a 90% box is under twice 32 px: a full decode), 4 test pairs."""
    train, test = _jpegs(12, 40, 48), _jpegs(4, 40, 48, seed=1)
    _shards(tmp_path / "train", train)
    _shards(tmp_path / "test", test)
    return tmp_path, train


def test_small_images_are_the_split_views_of_their_decode_exactly(small):
    root, jpegs = small
    data = PairedData(dataset="webdataset", root=str(root), batch_size=4, image_size=32, recipe="clip")
    dataset = data.train_dataloader().dataset
    for index in (0, 5, 11, 12 + 3, 5 * 12 + 7):  # epochs 0, 1 and 5
        image = dataset[index][0]
        assert image.dtype == torch.uint8 and image.shape == (3, 32, 32)
        assert torch.equal(image, _reference(jpegs[index % 12], index)), index
    images, texts, labels = next(iter(data.train_dataloader()))
    assert images.shape == (4, 3, 32, 32) and images.dtype == torch.uint8


def test_the_crops_depend_on_seed_epoch_and_index_only_and_keep_most_of_the_image(small):
    root, jpegs = small
    first = PairedData(dataset="webdataset", root=str(root), batch_size=4, recipe="clip").train_dataloader().dataset
    again = PairedData(dataset="webdataset", root=str(root), batch_size=6, recipe="clip").train_dataloader().dataset
    other = PairedData(dataset="webdataset", root=str(root), batch_size=4, recipe="clip", seed=1)
    other = other.train_dataloader().dataset
    assert all(torch.equal(first[i][0], again[i][0]) for i in (3, 17, 40))  # another batch size, the same crops
    assert any(not torch.equal(first[i][0], first[i + 12][0]) for i in range(12))  # a new epoch, new boxes
    assert any(not torch.equal(first[i][0], other[i][0]) for i in range(12))  # another seed
    cutter = SplitViews((CLIP.with_(size=32),), seed=0)
    for index in range(200):
        (box,) = cutter.sample(40, 48, index)
        top, left, height, width = box.boxes[0].tolist()
        assert 0.9 * 40 * 48 - 48 <= height * width <= 40 * 48 and not bool(box.flip[0])  # whole pixels
    plain = PairedData(dataset="webdataset", root=str(root), batch_size=4)
    cropped = PairedData(dataset="webdataset", root=str(root), batch_size=4, recipe="clip")
    assert torch.equal(next(iter(plain.eval_loaders()[0])), next(iter(cropped.eval_loaders()[0])))  # test: as is


def test_large_images_are_decoded_at_a_reduced_size_and_stay_close(tmp_path, monkeypatch):
    jpegs = _jpegs(6, 256, 192)
    _shards(tmp_path / "train", jpegs)
    _shards(tmp_path / "test", jpegs[:2])
    drafts = []
    draft = JpegImagePlugin.JpegImageFile.draft
    monkeypatch.setattr(
        JpegImagePlugin.JpegImageFile, "draft", lambda self, mode, size: drafts.append(size) or draft(self, mode, size)
    )
    data = PairedData(dataset="webdataset", root=str(tmp_path), batch_size=2, image_size=32, recipe="clip")
    dataset = data.train_dataloader().dataset
    for index in range(6):
        got, expected = dataset[index][0].float(), _reference(jpegs[index], index).float()
        assert (got - expected).abs().mean() < 2.0 and (got - expected).abs().max() < 40, index
    assert drafts and all(size == (48, 64) for size in drafts)  # a 1/4 DCT decode: boxes of 173+ px, crops of 32


def test_a_pack_of_pairs_crops_from_the_sizes_in_its_index(tmp_path):
    jpegs = _jpegs(8, 40, 48)
    for split, chosen in (("train", jpegs[:6]), ("test", jpegs[6:])):
        (tmp_path / "src" / split).mkdir(parents=True)
        for i, data in enumerate(chosen):
            (tmp_path / f"src/{split}/{i:03d}.jpg").write_bytes(data)
            (tmp_path / f"src/{split}/{i:03d}.txt").write_text(CAPTIONS[i])
        assert (
            main(["pack", str(tmp_path / f"src/{split}"), str(tmp_path / f"packed/{split}"), "--captions", "txt"]) == 0
        )
    data = PairedData(dataset="packed", root=str(tmp_path / "packed"), batch_size=2, image_size=32, recipe="clip")
    split = data.split(True)
    assert split.images.image_size is None and split.images.jpeg(0)[1:] == (40, 48)  # read whole; size: the index
    dataset = data.train_dataloader().dataset
    for index in (0, 4, 9):
        assert torch.equal(dataset[index][0], _reference(jpegs[index % 6], index)), index


def test_bad_recipes_and_damaged_images_are_named(small):
    root, _ = small
    with pytest.raises(ConfigError, match="recipe 'simclr_cifar10' has colour jitter, grayscale, flips"):
        PairedData(recipe="simclr_cifar10")
    with pytest.raises(ConfigError, match="recipe 'linear_cifar10' has flips.*pairs take a crop only"):
        PairedData(recipe="linear_cifar10")
    with pytest.raises(ConfigError, match="recipe must be one of"):
        PairedData(recipe="clip_big")
    truncated = _jpegs(1, 40, 48)[0][:300]  # a JPEG whose data is cut off after its header
    write_tar(root / "train/00009.tar", [("000090000.jpg", truncated), ("000090000.txt", b"a damaged picture")])
    data = PairedData(dataset="webdataset", root=str(root), batch_size=13, recipe="clip")
    with pytest.raises(RuntimeError, match=r"could not decode image .*00009.tar:000090000.jpg"):
        next(iter(data.train_dataloader()))
    data = PairedData(dataset="webdataset", root=str(root), batch_size=13, recipe="clip", skip_corrupt=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        images, _, _ = next(iter(data.train_dataloader()))
    assert images.shape[0] == 13 and any("skipped (1 so far)" in str(w.message) for w in caught)
