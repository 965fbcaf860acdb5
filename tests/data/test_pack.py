"""contrast pack and the packed source: bytes passed through or re-encoded as they must be, the same
pack whatever the number of workers, an interrupted pack finished without redoing shards, a pack
read back exactly, and every bad input named.

References: the source files' own bytes (pass-through), PIL's resize + JPEG round trip written in
the test (re-encoded images), torchvision's decoder."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from contrast.data import load_split
from contrast.data.pack import PackError, Settings, pack
from contrast.data.sources import PackedImages


def _photo(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth picture (JPEG-friendly), (H, W, 3) uint8."""
    g = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    channels = [
        np.sin(6 * x * g.uniform(0.5, 2) + g.uniform(0, 6)) * np.cos(5 * y * g.uniform(0.5, 2)) for _ in range(3)
    ]
    return ((np.stack(channels, -1) + 1) * 127.5).astype(np.uint8)


def _save(path, array, **kwargs) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array)
    mode = kwargs.pop("mode", None)
    (image.convert(mode) if mode else image).save(path, **kwargs)


@pytest.fixture
def collection(tmp_path):
    """An ImageFolder of the kinds of files a photo collection holds."""
    src = tmp_path / "src"
    _save(src / "cat" / "a_small.jpg", _photo(90, 120, 0), quality=92)  # passes through
    _save(src / "cat" / "b_large.jpg", _photo(300, 700, 1), quality=92)  # over the cap: resized
    _save(src / "cat" / "c_progressive.jpg", _photo(80, 60, 2), quality=90, progressive=True)
    _save(src / "dog" / "d_grey.jpg", _photo(64, 64, 3)[..., 0], quality=90)
    _save(src / "dog" / "e.png", _photo(50, 70, 4))
    _save(src / "dog" / "f_cmyk.jpg", _photo(40, 40, 5), mode="CMYK", quality=90)
    _save(src / "dog" / "g.bmp", _photo(30, 20, 6))
    (src / "dog" / "._g.jpg").write_bytes(b"\x00\x05\x16\x07")  # macOS metadata: no image
    return src


def test_images_pass_through_or_are_re_encoded_as_they_must(collection, tmp_path):
    meta = pack(collection, tmp_path / "p", settings=Settings(max_side=256), progress=False)
    assert meta["images"] == 7 and meta["classes"] == ["cat", "dog"] and meta["skipped"] == 0
    packed = PackedImages(tmp_path / "p")
    assert packed.labels.tolist() == [0, 0, 0, 1, 1, 1, 1]
    assert packed.read(0) == (collection / "cat" / "a_small.jpg").read_bytes()  # byte for byte
    heights_widths = [(int(h), int(w)) for h, w in packed.index[:, 3:5]]
    assert heights_widths == [(90, 120), (110, 256), (80, 60), (64, 64), (50, 70), (40, 40), (30, 20)]
    sources = ["cat/b_large.jpg", "cat/c_progressive.jpg", "dog/d_grey.jpg", "dog/e.png", "dog/f_cmyk.jpg", "dog/g.bmp"]
    for i, name in enumerate(sources, 1):
        data = packed.read(i)
        with Image.open(io.BytesIO(data)) as image:  # every stored image is a baseline RGB JPEG
            assert image.format == "JPEG" and image.mode == "RGB" and not image.info.get("progressive")
        assert data != (collection / name).read_bytes()  # re-encoded
    # the resized one: PIL's bicubic resize of the source, within JPEG's error
    with Image.open(collection / "cat" / "b_large.jpg") as source:
        expected = np.asarray(source.convert("RGB").resize((256, 110), Image.Resampling.BICUBIC, reducing_gap=3.0))
    image, label = packed[1]
    assert image.shape == (3, 110, 256) and label == 0
    assert np.abs(image.permute(1, 2, 0).numpy().astype(int) - expected.astype(int)).mean() < 3


def test_the_same_pack_whatever_the_number_of_workers(collection, tmp_path):
    settings = Settings(max_side=128, shard_bytes=2**16)
    pack(collection, tmp_path / "one", settings=settings, workers=0, progress=False)
    pack(collection, tmp_path / "two", settings=settings, workers=2, progress=False)
    for name in ["index.npy", *(s["name"] for s in json.loads((tmp_path / "one" / "meta.json").read_text())["shards"])]:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name


def test_an_interrupted_pack_is_finished_without_redoing_shards(collection, tmp_path, monkeypatch):
    import contrast.data.pack as packing

    settings = Settings(max_side=256, shard_bytes=1)  # one image per shard
    pack(collection, tmp_path / "whole", settings=settings, progress=False)
    written = []
    real = packing._write_shard

    def interrupted(dest, shard, buffer, entries):
        if shard == 3:
            raise KeyboardInterrupt
        written.append(shard)
        real(dest, shard, buffer, entries)

    monkeypatch.setattr(packing, "_write_shard", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pack(collection, tmp_path / "p", settings=settings, progress=False)
    assert not (tmp_path / "p" / "meta.json").exists()
    with pytest.raises(FileNotFoundError, match="packing was interrupted: run the same contrast pack again"):
        PackedImages(tmp_path / "p")  # a half-done pack is no pack
    before = {s: (tmp_path / "p" / f"shard_{s:05d}.bin").stat().st_mtime_ns for s in written}
    monkeypatch.setattr(packing, "_write_shard", lambda *a: (written.append(a[1]), real(*a)))
    written.clear()
    pack(collection, tmp_path / "p", settings=settings, progress=False)
    assert written == [3, 4, 5, 6]  # the finished shards 0-2 were kept
    assert all((tmp_path / "p" / f"shard_{s:05d}.bin").stat().st_mtime_ns == t for s, t in before.items())
    for name in ["index.npy", "meta.json", *(f"shard_{s:05d}.bin" for s in range(7))]:
        assert (tmp_path / "p" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name


def test_a_list_file_and_a_class_subset(collection, tmp_path):
    (tmp_path / "list.txt").write_text("src/dog/e.png,dog\nsrc/cat/a_small.jpg,cat\n# a comment\nsrc/dog/g.bmp,dog\n")
    meta = pack(tmp_path / "list.txt", tmp_path / "from_list", progress=False)
    assert meta["classes"] == ["cat", "dog"] and PackedImages(tmp_path / "from_list").labels.tolist() == [1, 0, 1]
    (tmp_path / "classes.txt").write_text("dog\n")
    meta = pack(collection, tmp_path / "dogs", classes_file=tmp_path / "classes.txt", progress=False)
    assert meta["classes"] == ["dog"] and meta["images"] == 4
    (tmp_path / "classes.txt").write_text("dog\nzebra\n")
    with pytest.raises(PackError, match="1 class\\(es\\) not in .*zebra"):
        pack(collection, tmp_path / "zebras", classes_file=tmp_path / "classes.txt", progress=False)


def test_corrupt_images_stop_with_their_name_or_are_skipped_and_counted(collection, tmp_path):
    (collection / "cat" / "h_broken.jpg").write_bytes((collection / "cat" / "a_small.jpg").read_bytes()[:300])
    with pytest.raises(PackError, match="could not read image .*h_broken.jpg"):
        pack(collection, tmp_path / "p", progress=False)
    meta = pack(collection, tmp_path / "q", skip_corrupt=True, progress=False)
    assert meta["images"] == 7 and meta["skipped"] == 1


def test_bad_destinations_and_sources_are_refused(collection, tmp_path):
    pack(collection, tmp_path / "p", progress=False)
    with pytest.raises(PackError, match="holds a pack of another source or other settings .*max_side"):
        pack(collection, tmp_path / "p", settings=Settings(max_side=128), progress=False)
    assert pack(collection, tmp_path / "p", progress=False)["images"] == 7  # the same command: done already
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(PackError, match="holds other files"):
        pack(collection, tmp_path / "other", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(PackError, match="no images"):
        pack(tmp_path / "empty", tmp_path / "nothing", progress=False)


def test_a_damaged_pack_is_refused_before_it_is_read(collection, tmp_path):
    pack(collection, tmp_path / "p", settings=Settings(shard_bytes=2**14), progress=False)
    PackedImages(tmp_path / "p")
    shard = tmp_path / "p" / "shard_00000.bin"
    data = shard.read_bytes()
    shard.write_bytes(data[:-10])  # truncated
    with pytest.raises(ValueError, match="shard_00000.bin: a truncated or missing shard"):
        PackedImages(tmp_path / "p")
    shard.write_bytes(data)
    index = np.load(tmp_path / "p" / "index.npy")
    index[0, 2] += len(data)  # an index that does not match its shards
    np.save(tmp_path / "p" / "index.npy", index)
    with pytest.raises(ValueError, match="index.npy does not match .*shard_00000.bin"):
        PackedImages(tmp_path / "p")


def test_a_packed_split_reads_like_an_image_folder(tmp_path):
    """train/ and val/ packs of the same images: the packed source gives the folder's images (all
    pass through) and labels, resized the same way."""
    for split, n in (("train", 6), ("val", 4)):
        for i in range(n):
            _save(tmp_path / "folder" / split / ["a", "b"][i % 2] / f"{i}.jpg", _photo(40 + i, 50, i), quality=95)
        pack(tmp_path / "folder" / split, tmp_path / "packs" / split, progress=False)
    for train in (True, False):
        folder = load_split("imagefolder", tmp_path / "folder", train, image_size=32)
        packed = load_split("packed", tmp_path / "packs", train, image_size=32)
        assert len(folder) == len(packed) and packed.classes == folder.classes
        for i in range(len(folder)):
            (a, la), (b, lb) = folder[i], packed[i]
            assert la == lb and torch.equal(a, b)


def test_pack_then_fit_through_the_command_line(tmp_path, monkeypatch, capsys):
    from pathlib import Path

    from contrast.cli import main

    monkeypatch.chdir(tmp_path)
    for split, n in (("train", 48), ("val", 16)):
        for i in range(n):
            _save(tmp_path / "photos" / split / ["a", "b"][i % 2] / f"{i}.jpg", _photo(40 + i % 7, 48, i), quality=90)
        assert main(["pack", f"photos/{split}", f"packs/{split}", "--max_side", "64", "--workers", "0"]) == 0
    assert "packs/val: 16 images in 1 shard(s)" in capsys.readouterr().out
    config = str(Path(__file__).resolve().parents[2] / "configs" / "quickstart.yaml")
    args = ["fit", "--config", config, "--data.dataset", "packed", "--data.root", "packs", "--data.image_size", "32"]
    args += [
        "--data.batch_size",
        "8",
        "--trainer.max_epochs",
        "1",
        "--trainer.limit_train_batches",
        "3",
        "--run_dir",
        "r",
    ]
    assert main(args) == 0
    assert "run finished: 1 epochs, 3 steps; checkpoint r/checkpoints/last.ckpt" in capsys.readouterr().out
    assert main(["pack", "photos/nothing", "packs/x"]) == 2
    assert "contrast pack: error: SRC photos/nothing: no such folder or list file" in capsys.readouterr().err


def test_a_test_pack_with_a_class_missing_keeps_the_training_numbers(tmp_path):
    for split, names in (("train", ["a", "b", "c"]), ("val", ["b", "c"])):
        for name in names:
            for i in range(2):
                _save(tmp_path / "folder" / split / name / f"{i}.jpg", _photo(30, 30, i), quality=90)
        pack(tmp_path / "folder" / split, tmp_path / "packs" / split, progress=False)
    val = load_split("packed", tmp_path / "packs", False)
    assert val.classes == ["a", "b", "c"] and val.labels.tolist() == [1, 1, 2, 2] and val[2][1] == 2


def test_views_larger_than_the_pack_s_images_are_refused_before_training(tmp_path):
    from contrast.data import ContrastiveData

    for i in range(4):
        _save(tmp_path / "photos" / "a" / f"{i}.jpg", _photo(100, 120, i), quality=90)
    pack(tmp_path / "photos", tmp_path / "packs" / "train", settings=Settings(max_side=64), progress=False)
    data = ContrastiveData(dataset="packed", root=str(tmp_path / "packs"), views="split", recipe_q="simclr_imagenet")
    with pytest.raises(ValueError, match="cuts 224-px views, but the images of .* are at most 64 px"):
        data.setup("fit")
