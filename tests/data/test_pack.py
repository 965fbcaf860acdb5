"""contrast pack and the packed source: bytes passed through or re-encoded as they must be, the same
pack whatever the number of workers, an interrupted pack finished without redoing shards, a pack
read back exactly, and every bad input named.

References: the source files' own bytes (pass-through), PIL's resize + JPEG round trip written in
the test (re-encoded images), torchvision's decoder."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from contrast.data import load_split
from contrast.data.pack import PackedImages, PackError, Settings, pack


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
    import contrast.data.pack.write as packing

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
    with pytest.raises(ValueError, match="index.npy is not the index written with these shards"):
        PackedImages(tmp_path / "p")


def test_a_reordered_index_that_still_fits_its_shards_is_refused(collection, tmp_path):
    """Rows swapped: every row still points inside its shard, so only the index's hash in meta.json
    (written last) tells; before, such a pack trained on wrong labels."""
    pack(collection, tmp_path / "p", progress=False)
    index_path = tmp_path / "p" / "index.npy"
    index = np.load(index_path)
    np.save(index_path, index[::-1].copy())
    with pytest.raises(ValueError, match=r"index.npy is not the index written with these shards .*index_sha256"):
        PackedImages(tmp_path / "p")
    np.save(index_path, index)  # the original rows again: read as before
    assert len(PackedImages(tmp_path / "p")) == 7
    # A byte shifted: refused by the same check, naming the file.
    data = index_path.read_bytes()
    index_path.write_bytes(data[:200] + data[201:] + b"\0")
    with pytest.raises(ValueError, match="index.npy is not the index written"):
        PackedImages(tmp_path / "p")


@pytest.mark.parametrize("damage", ["not json", "no shards", "old format"])
def test_a_damaged_meta_json_is_named(collection, tmp_path, damage):
    pack(collection, tmp_path / "p", progress=False)
    meta_path = tmp_path / "p" / "meta.json"
    meta = json.loads(meta_path.read_text())
    if damage == "not json":
        meta_path.write_text(meta_path.read_text()[:-20])
    elif damage == "no shards":
        meta_path.write_text(json.dumps({k: v for k, v in meta.items() if k != "shards"}))
    else:
        meta_path.write_text(json.dumps(meta | {"format_version": 1}))
    expected = {"not json": "meta.json is damaged", "no shards": r"meta.json is damaged: it lacks \['shards'\]"}
    with pytest.raises(ValueError, match=expected.get(damage, "pack format 1; this version reads 2")):
        PackedImages(tmp_path / "p")


def test_a_changed_source_of_the_same_names_and_sizes_is_not_an_up_to_date_pack(tmp_path):
    """Regenerated BMPs of the same dimensions (the same names and byte sizes, other pixels)."""
    src = tmp_path / "src" / "a"
    for i in range(3):
        _save(src / f"{i}.bmp", _photo(20, 30, i))
    pack(tmp_path / "src", tmp_path / "p", progress=False)
    before = PackedImages(tmp_path / "p")[0][0]
    sizes = [f.stat().st_size for f in sorted(src.iterdir())]
    for i in range(3):
        _save(src / f"{i}.bmp", _photo(20, 30, i + 10))
    assert [f.stat().st_size for f in sorted(src.iterdir())] == sizes
    with pytest.raises(PackError, match="holds a pack of another source .*source_hash"):
        pack(tmp_path / "src", tmp_path / "p", progress=False)
    pack(tmp_path / "src", tmp_path / "q", progress=False)
    assert not torch.equal(PackedImages(tmp_path / "q")[0][0], before)


def _modes(folder: Path) -> dict[str, np.ndarray]:
    """One image of each mode a photo collection may hold, and the 8-bit RGB each should become
    (the rules of contrast.data.pixels, computed here in float64)."""
    rng = np.random.default_rng(0)
    h, w = 24, 32
    folder.mkdir(parents=True, exist_ok=True)

    def blocks(high: int, *channels: int) -> np.ndarray:  # constant 8×8 blocks: JPEG keeps them
        values = rng.integers(0, high, (h // 8, w // 8, *channels))
        return np.repeat(np.repeat(values, 8, axis=0), 8, axis=1)

    grey16 = blocks(65536).astype(np.uint16)
    Image.fromarray(grey16).save(folder / "grey16.png")
    Image.fromarray(grey16).save(folder / "grey16.tif")
    floats = (blocks(1001) / 1000).astype(np.float32)
    Image.fromarray(floats, mode="F").save(folder / "float.tif")
    rgb = blocks(256, 3).astype(np.uint8)
    alpha = blocks(256, 1).astype(np.uint8)
    Image.fromarray(np.concatenate([rgb, alpha], axis=2), mode="RGBA").save(folder / "rgba.png")
    grey = blocks(256).astype(np.uint8)
    Image.fromarray(np.stack([grey, alpha[..., 0]], axis=2), mode="LA").save(folder / "la.png")
    palette = Image.fromarray(blocks(4).astype(np.uint8), mode="P")
    colours = [255, 0, 0, 0, 255, 0, 0, 0, 255, 90, 90, 90]
    palette.putpalette(colours)
    palette.info["transparency"] = 1  # index 1 (green) transparent
    palette.save(folder / "palette.png", transparency=1)
    indices = np.asarray(palette)

    def over_white(colour, a):
        a = a.astype(np.float64) / 255
        return np.rint(colour.astype(np.float64) * a + 255 * (1 - a)).astype(np.uint8)

    grey16_8 = np.rint(grey16.astype(np.float64) * 255 / 65535).astype(np.uint8)
    table = np.asarray(colours, dtype=np.uint8).reshape(4, 3)
    palette_rgb = np.where((indices == 1)[..., None], 255, table[indices]).astype(np.uint8)
    return {
        "grey16.png": np.repeat(grey16_8[..., None], 3, axis=2),
        "grey16.tif": np.repeat(grey16_8[..., None], 3, axis=2),
        "float.tif": np.repeat(np.rint(floats.astype(np.float64) * 255).astype(np.uint8)[..., None], 3, axis=2),
        "rgba.png": over_white(rgb, alpha),
        "la.png": np.repeat(over_white(grey[..., None], alpha), 3, axis=2),
        "palette.png": palette_rgb,
    }


def test_every_image_mode_is_packed_by_its_value_range(tmp_path):
    """16-bit grey (PNG, TIFF), float TIFF, RGBA, LA and a palette with a transparent colour: the
    packed pixels are the source's by the rules above, within JPEG q90's error; an image folder
    decodes them the same way, exactly. Pillow's convert("RGB") turned 16-bit white."""
    from contrast.data.files import ImageFiles

    expected = _modes(tmp_path / "src" / "modes")
    files = sorted(expected)
    pack(tmp_path / "src", tmp_path / "p", progress=False)
    packed = PackedImages(tmp_path / "p")
    folder = ImageFiles([(tmp_path / "src" / "modes" / name, 0) for name in files])
    for i, name in enumerate(files):
        image = packed[i][0].permute(1, 2, 0).numpy().astype(int)
        error = np.abs(image - expected[name].astype(int)).mean()
        assert error < 8, (name, error)  # JPEG q90 of saturated 8×8 blocks: about 5 levels at most
        assert np.array_equal(folder[i][0].permute(1, 2, 0).numpy(), expected[name]), name
    # the white of the old conversion would be far off
    assert np.abs(255 - expected["grey16.png"].astype(int)).mean() > 60


def test_a_jpeg_with_damaged_scan_data_is_not_packed_silently(tmp_path):
    src = tmp_path / "src" / "a"
    _save(src / "good.jpg", _photo(64, 64, 0), quality=90)
    _save(src / "bad.jpg", _photo(64, 64, 1), quality=90)
    data = bytearray((src / "bad.jpg").read_bytes())
    data[len(data) // 2 : len(data) // 2 + 8] = b"\xff\xd0\x00\x13\xff\xd7\xaa\xbb"
    (src / "bad.jpg").write_bytes(bytes(data))
    with pytest.raises(PackError, match=r"bad.jpg: damaged JPEG data \(Corrupt JPEG data"):
        pack(tmp_path / "src", tmp_path / "p", progress=False)
    # The failed pack does not block its own retry with --skip_corrupt (DEST holds only its progress file).
    meta = pack(tmp_path / "src", tmp_path / "p", skip_corrupt=True, progress=False)
    assert meta["images"] == 1 and meta["skipped"] == 1


def test_list_files_and_class_lists_that_are_not_what_they_say(tmp_path):
    src = tmp_path / "src"
    _save(src / "a" / "x.jpg", _photo(20, 20, 0), quality=90)
    _save(src / "a" / "y.jpg", _photo(20, 20, 1), quality=90)
    cases = {
        "a/x.jpg,0\na/y.jpg\n": "line 2 has no label but line 1 has one",
        "a/x.jpg,-1\n": "line 1: label -1; a label is a class id >= 0",
        "a/x.jpg,0,extra\n": "line 1: 3 columns",
        "a,0\n": "line 1: .*a is a folder",
    }
    for text, message in cases.items():
        (src / "list.txt").write_text(text)
        with pytest.raises(PackError, match=message):
            pack(src / "list.txt", tmp_path / "p", progress=False)
    with pytest.raises(PackError, match="x.jpg is an image; give the folder"):
        pack(src / "a" / "x.jpg", tmp_path / "p", progress=False)
    (src / "list.bin").write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(PackError, match="list.bin is not a text file"):
        pack(src / "list.bin", tmp_path / "p", progress=False)
    (tmp_path / "classes.txt").write_text("a\na\n")
    with pytest.raises(PackError, match=r"class name\(s\) listed twice: \['a'\]"):
        pack(src, tmp_path / "p", classes_file=tmp_path / "classes.txt", progress=False)


def test_a_damaged_image_inside_a_shard_is_named(collection, tmp_path):
    pack(collection, tmp_path / "p", progress=False)
    packed = PackedImages(tmp_path / "p")
    shard, offset, size = (int(v) for v in packed.index[2, :3])
    path = tmp_path / "p" / f"shard_{shard:05d}.bin"
    data = bytearray(path.read_bytes())
    data[offset : offset + 40] = bytes(40)  # its header gone
    path.write_bytes(bytes(data))
    with pytest.raises(RuntimeError, match=rf"shard_0000{shard}.bin: image 2 \(at byte {offset}\) cannot be decoded"):
        PackedImages(tmp_path / "p")[2]


@pytest.mark.parametrize("workers", [0, 2])
def test_a_damaged_image_stops_training_with_one_line(tmp_path, monkeypatch, capsys, workers):
    """Not the 81-line traceback of a DataLoader worker: the shard, the image and what was wrong."""
    from contrast.cli import main

    src = tmp_path / "src"
    for c in ("a", "b"):
        for i in range(8):
            _save(src / c / f"{i}.jpg", _photo(32, 32, i), quality=90)
    pack(src, tmp_path / "p", progress=False)
    packed = PackedImages(tmp_path / "p")
    shard, offset = (int(v) for v in packed.index[3, :2])
    data = bytearray(packed.shards[shard].read_bytes())
    data[offset : offset + 40] = bytes(40)
    packed.shards[shard].write_bytes(bytes(data))
    monkeypatch.chdir(tmp_path)
    config = str(Path(__file__).resolve().parents[2] / "configs" / "quickstart.yaml")
    args = ["fit", "--config", config, "--data.dataset", "packed", "--data.root", str(tmp_path / "p")]
    args += ["--data.batch_size", "4", "--data.num_workers", str(workers), "--trainer.max_epochs", "1"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-2].startswith(f"contrast fit: error: {packed.shards[shard]}: image 3 (at byte {offset}) cannot be ")
    assert "Not a JPEG file" in err[-2] and ".cpp" not in err[-2] and "Traceback" not in "\n".join(err)


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


def test_batched_views_on_a_pack_of_varied_sizes_name_the_split_path_first(collection, tmp_path):
    from contrast.data import ContrastiveData

    pack(collection, tmp_path / "p", progress=False)
    data = ContrastiveData(
        dataset="packed", root=str(tmp_path / "p"), recipe_q="quickstart", views="batched", batch_size=2
    )
    with pytest.raises(ValueError, match=r"batched views need one size: use --data.views split \(each image cut"):
        data.setup("fit")


def test_a_full_disk_during_pack_names_the_file(collection, tmp_path, monkeypatch, capsys):
    import errno

    import contrast.checkpoint as checkpoint
    from contrast.cli import main

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.os, "fsync", full)
    assert main(["pack", str(collection), str(tmp_path / "p"), "--workers", "0"]) == 1
    err = capsys.readouterr().err
    assert f"No space left on device while writing {tmp_path / 'p' / 'shard_00000.bin'}" in err, err
    assert not list((tmp_path / "p").glob("shard_*.bin"))  # no half-written shard left as a finished one


# ---------------------------------------------------------------------- packs of image–caption pairs
def _captioned(folder: Path, n: int = 6) -> list[str]:
    """n JPEGs with a caption .txt beside each (img2dataset's layout); their captions."""
    captions = [f"picture number {i}, a “smooth” pattern" for i in range(n)]
    for i, caption in enumerate(captions):
        _save(folder / f"{i:03d}.jpg", _photo(40 + i, 50, i), quality=90)
        (folder / f"{i:03d}.txt").write_text(caption + "\n", encoding="utf-8")
    return captions


def test_a_pair_pack_keeps_each_image_s_caption_through_a_resume(tmp_path, monkeypatch):
    import contrast.data.pack.write as packing

    captions = _captioned(tmp_path / "src")
    settings = Settings(shard_bytes=1)  # one image per shard
    pack(tmp_path / "src", tmp_path / "whole", settings=settings, progress=False, captions="txt")
    packed = PackedImages(tmp_path / "whole")
    assert packed.captions == captions
    for i in range(6):  # each image the file its caption sits beside
        assert packed.read(i) == (tmp_path / f"src/{i:03d}.jpg").read_bytes()
    real = packing._write_shard

    def interrupted(dest, shard, buffer, entries):
        if shard == 4:
            raise KeyboardInterrupt
        real(dest, shard, buffer, entries)

    monkeypatch.setattr(packing, "_write_shard", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pack(tmp_path / "src", tmp_path / "p", settings=settings, progress=False, captions="txt")
    monkeypatch.setattr(packing, "_write_shard", real)
    pack(tmp_path / "src", tmp_path / "p", settings=settings, progress=False, captions="txt")
    for name in ("captions.jsonl", "index.npy", "meta.json"):
        assert (tmp_path / "p" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name
    (tmp_path / "src/002.txt").write_text("another caption")  # other captions: another pack
    with pytest.raises(PackError, match="differs in captions_hash"):
        pack(tmp_path / "src", tmp_path / "p", settings=settings, progress=False, captions="txt")
    (tmp_path / "whole/captions.jsonl").write_text("".join(f'"x{i}"\n' for i in range(6)))
    with pytest.raises(ValueError, match="captions.jsonl is missing or not the one written"):
        PackedImages(tmp_path / "whole")


def test_pair_pack_captions_from_a_csv_and_bad_captions_named(tmp_path):
    captions = _captioned(tmp_path / "src", 4)
    rows = "".join(f"src/{i:03d}.jpg\t{c}\n" for i, c in reversed(list(enumerate(captions))))  # any order
    (tmp_path / "pairs.tsv").write_text("filepath\ttitle\n" + rows, encoding="utf-8")
    for i in range(4):
        (tmp_path / f"src/{i:03d}.txt").unlink()
    pack(tmp_path / "src", tmp_path / "p", progress=False, captions=str(tmp_path / "pairs.tsv"))
    assert PackedImages(tmp_path / "p").captions == captions
    with pytest.raises(PackError, match=r"image .*000\.jpg has no caption file 000\.txt"):
        pack(tmp_path / "src", tmp_path / "q", progress=False, captions="txt")
    with pytest.raises(PackError, match=r"pairs.tsv: no column 'caption'"):
        pack(
            tmp_path / "src",
            tmp_path / "q",
            progress=False,
            captions=str(tmp_path / "pairs.tsv"),
            csv_caption_key="caption",
        )
    (tmp_path / "pairs.tsv").write_text("filepath\ttitle\n" + rows.replace(captions[1], " "), encoding="utf-8")
    with pytest.raises(PackError, match=r"1 empty caption\(s\), e.g. of image .*001\.jpg"):
        pack(tmp_path / "src", tmp_path / "q", progress=False, captions=str(tmp_path / "pairs.tsv"))
    meta = pack(
        tmp_path / "src", tmp_path / "q", progress=False, captions=str(tmp_path / "pairs.tsv"), skip_corrupt=True
    )
    assert meta["images"] == 3 and meta["empty_captions_skipped"] == 1
    assert PackedImages(tmp_path / "q").captions == [captions[0], captions[2], captions[3]]
    (tmp_path / "pairs.tsv").write_text("filepath\ttitle\n" + rows.splitlines(True)[0], encoding="utf-8")
    with pytest.raises(PackError, match=r"image .*000\.jpg has no row"):
        pack(tmp_path / "src", tmp_path / "r", progress=False, captions=str(tmp_path / "pairs.tsv"))


def test_paired_data_trains_on_pair_packs_and_embed_reads_their_captions(tmp_path):
    from contrast.data import PairedData
    from contrast.data.pair_sources import PAIR_SOURCES

    captions = _captioned(tmp_path / "src/train", 6)
    test_captions = _captioned(tmp_path / "src/test", 3)
    for split in ("train", "test"):
        pack(tmp_path / f"src/{split}", tmp_path / f"packs/{split}", progress=False, captions="txt")
    data = PairedData(dataset="packed", root=str(tmp_path / "packs"), image_size=32, batch_size=2)
    train, test = data.split(True), data.split(False)
    assert train.captions == captions and test.captions == test_captions
    from torchvision.io import decode_image
    from torchvision.transforms.v2 import functional as TF

    for i in range(6):  # torchvision's decoder and resize on the source file
        image = TF.center_crop(
            TF.resize(decode_image(str(tmp_path / f"src/train/{i:03d}.jpg")), 32, antialias=True), 32
        )
        assert torch.equal(train.image(i), image)
    images, texts, labels = next(iter(data.train_dataloader()))
    assert images.shape == (2, 3, 32, 32) and texts.shape[0] == 2
    pack(tmp_path / "src/train", tmp_path / "plain", progress=False)
    with pytest.raises(ValueError, match="a pack of images without captions"):
        PAIR_SOURCES["packed"](str(tmp_path / "plain"), True, data.hparams)

    from contrast.search.collection import images_of, texts_of

    assert [r["caption"] for r in images_of(str(tmp_path / "packs/train"), 32).records] == captions
    assert [r["caption"] for r in texts_of(str(tmp_path / "packs/train")).records] == captions
    with pytest.raises(ValueError, match="a pack of images without captions"):
        texts_of(str(tmp_path / "plain"))
