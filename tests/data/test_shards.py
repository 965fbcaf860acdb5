"""Image–text pairs as users have them: img2dataset-layout tar shards written by webdataset's own
``TarWriter`` and read back by contrast through a cached member index (the same images and captions
as webdataset's own pipeline gives), open_clip's CSV layout, the splits, and bad input named by
shard and key. (Exact resume on shards after SIGKILL: ``test_sigkill_on_shards_resumes_exactly``.)"""

from __future__ import annotations

import io
import json
import os
import tarfile
import warnings
from pathlib import Path

import pytest
import torch

wds = pytest.importorskip("webdataset", reason="webdataset writes the reference shards (the bench extra)")

from PIL import Image  # noqa: E402

from contrast.data import PairedData  # noqa: E402
from contrast.data.shapes import generate_scenes  # noqa: E402
from contrast.data.shards import expand, member_index, shard_pairs  # noqa: E402


def _png(image: torch.Tensor) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(out, format="PNG")
    return out.getvalue()


def write_shards(folder: Path, n: int, per_shard: int, seed: int = 0, fmt: str = "png", json_caption: bool = False):
    """n Shapes-10 scenes in img2dataset's layout (``%05d.tar`` of ``%09d.<fmt>`` + ``.txt`` + ``.json``)."""
    from contrast.data.captions import describe

    folder.mkdir(parents=True, exist_ok=True)
    images, attributes = generate_scenes(n, size=32, seed=seed)
    g = torch.Generator().manual_seed(seed)
    captions = [describe(attributes[i], g) for i in range(n)]
    for shard in range((n + per_shard - 1) // per_shard):
        with wds.TarWriter(str(folder / f"{shard:05d}.tar")) as sink:
            for i in range(shard * per_shard, min(n, (shard + 1) * per_shard)):
                key = f"{shard:05d}{i - shard * per_shard:04d}"
                sample = {"__key__": key, "json": {"key": key, "caption": captions[i], "status": "success"}}
                if fmt == "png":
                    sample["png"] = _png(images[i])
                else:
                    from torchvision.io import encode_jpeg

                    sample["jpg"] = encode_jpeg(images[i], quality=95).numpy().tobytes()
                if not json_caption:
                    sample["txt"] = captions[i]
                sink.write(sample)
    return images, captions


def write_tar(path: Path, members: list[tuple[str, bytes]]) -> None:
    """A tar file of these (name, bytes) members, written by tarfile (for damaged shards)."""
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_shards_give_webdatasets_own_images_and_captions_through_a_cached_index(tmp_path):
    images, captions = write_shards(tmp_path / "train", 10, per_shard=4)
    ours_images, ours_captions = shard_pairs(str(tmp_path / "train"), image_size=32)
    reference = list(wds.WebDataset(str(tmp_path / "train/{00000..00002}.tar"), shardshuffle=False).decode("rgb8"))
    assert len(reference) == len(ours_captions) == 10
    assert ours_captions == [sample["txt"] for sample in reference] == captions
    for i, sample in enumerate(reference):
        theirs = torch.from_numpy(sample["png"].copy()).permute(2, 0, 1)  # (3, H, W) uint8, by PIL
        assert torch.equal(ours_images.image(i), theirs) and torch.equal(theirs, images[i])
    index = tmp_path / "train/00000.tar.index.json"
    assert index.is_file() and json.loads(index.read_text())["members"][0][0].startswith("000000000.")
    with tarfile.open(tmp_path / "train/00000.tar") as tar:  # the index: each member's data offset and size
        member = tar.getmember("000000001.txt")
        assert ["000000001.txt", member.offset_data, member.size] in json.loads(index.read_text())["members"]


def test_the_index_is_read_once_rebuilt_when_the_shard_changes_and_cached_elsewhere_when_read_only(
    tmp_path, monkeypatch
):
    write_shards(tmp_path / "s", 4, per_shard=4)
    shard = tmp_path / "s/00000.tar"
    first = member_index(shard)
    monkeypatch.setattr(tarfile, "open", lambda *a, **k: pytest.fail("the cached index was not used"))
    assert member_index(shard) == first
    monkeypatch.undo()
    os.utime(shard, ns=(0, 0))  # the shard changed: the index is stale
    calls = []
    real = tarfile.open
    monkeypatch.setattr(tarfile, "open", lambda *a, **k: calls.append(a) or real(*a, **k))
    assert member_index(shard) == first and len(calls) == 1
    monkeypatch.undo()
    (tmp_path / "s/00000.tar.index.json").unlink()
    monkeypatch.setenv("CONTRAST_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # a read-only shard folder
    assert member_index(shard) == first
    assert not (tmp_path / "s/00000.tar.index.json").exists()
    assert len(list((tmp_path / "cache/shard-index").glob("*.json"))) == 1


def test_paired_data_on_shards_splits_brace_patterns_and_json_captions(tmp_path):
    write_shards(tmp_path / "data/train", 12, per_shard=5, seed=0)
    write_shards(tmp_path / "data/test", 4, per_shard=5, seed=1)
    data = PairedData(dataset="webdataset", root=str(tmp_path / "data"), batch_size=4)
    assert len(data.split(True)) == 12 and len(data.split(False)) == 4
    images, texts, labels = next(iter(data.train_dataloader()))
    assert images.shape == (4, 3, 32, 32) and images.dtype == torch.uint8 and bool((labels == -1).all())
    assert expand(str(tmp_path / "data/train/{00000..00001}.tar")) == [
        tmp_path / "data/train/00000.tar",
        tmp_path / "data/train/00001.tar",
    ]
    pattern = PairedData(
        dataset="webdataset",
        root=str(tmp_path / "data/train/{00000..00001}.tar"),
        eval_root=str(tmp_path / "data/test"),
    )
    assert len(pattern.split(True)) == 10 and len(pattern.split(False)) == 4
    _, captions = write_shards(tmp_path / "json", 3, per_shard=3, json_caption=True)
    assert shard_pairs(str(tmp_path / "json"), 32, caption_key="caption")[1] == captions


def test_bad_shards_are_named_by_shard_and_key(tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad/00000.tar").write_bytes(b"this is not a tar file" * 40)
    with pytest.raises(ValueError, match=r"00000.tar: not a readable tar file"):
        shard_pairs(str(tmp_path / "bad"), 32)
    write_shards(tmp_path / "nocap", 3, per_shard=3, json_caption=True)  # captions only in the .json
    with pytest.raises(ValueError, match=r"00000.tar: sample '000000000' has no caption \(.txt, not empty\)"):
        shard_pairs(str(tmp_path / "nocap"), 32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match="no sample has both an image and a caption"):
            shard_pairs(str(tmp_path / "nocap"), 32, skip_corrupt=True)
    with pytest.raises(ValueError, match="'000000000' has no caption \\(.json key 'title'"):
        shard_pairs(str(tmp_path / "nocap"), 32, caption_key="title")
    write_shards(tmp_path / "some", 4, per_shard=4)
    with tarfile.open(tmp_path / "some/00000.tar", "a") as tar:  # an image without its caption
        data = _png(torch.zeros(3, 32, 32, dtype=torch.uint8))
        info = tarfile.TarInfo("000000099.png")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        images, captions = shard_pairs(str(tmp_path / "some"), 32, skip_corrupt=True)
    assert len(captions) == 4 and any("left out 1 samples" in str(w.message) for w in caught)
    with pytest.raises(FileNotFoundError, match="no .tar files found"):
        shard_pairs(str(tmp_path / "nowhere"), 32)
    with pytest.raises(FileNotFoundError, match="no test split"):
        PairedData(dataset="webdataset", root=str(tmp_path / "some")).split(False)


def test_open_clips_csv_layout(tmp_path):
    images, _ = generate_scenes(3, size=32, seed=0)
    (tmp_path / "img").mkdir()
    for i in range(3):
        (tmp_path / f"img/{i}.png").write_bytes(_png(images[i]))
    (tmp_path / "train.csv").write_text("filepath\ttitle\nimg/0.png\ta red disc\nimg/1.png\ta blue ring\n")
    (tmp_path / "test.csv").write_text("filepath\ttitle\nimg/2.png\ta green square\n")
    data = PairedData(dataset="csv", root=str(tmp_path), batch_size=2)
    split = data.split(True)
    assert split.captions == ["a red disc", "a blue ring"] and torch.equal(split.image(1), images[1])
    assert data.split(False).captions == ["a green square"]
    (tmp_path / "c.csv").write_text("path,text\nimg/0.png,a red disc\nimg/1.png,\n")
    custom = dict(dataset="csv", root=str(tmp_path / "c.csv"), eval_root=str(tmp_path / "c.csv"), csv_separator=",")
    with pytest.raises(ValueError, match=r"c.csv: no column 'filepath'"):
        PairedData(**custom).split(True)
    with pytest.raises(ValueError, match=r"c.csv: 1 empty captions \(line 3 first\)"):
        PairedData(**custom, csv_img_key="path", csv_caption_key="text").split(True)
    with pytest.warns(UserWarning, match="left out 1 rows with empty captions"):
        kept = PairedData(**custom, csv_img_key="path", csv_caption_key="text", skip_corrupt=True).split(True)
    assert kept.captions == ["a red disc"]


def test_an_undecodable_image_stops_naming_it_or_is_skipped_with_its_caption(tmp_path):
    write_shards(tmp_path / "train", 4, per_shard=4)
    write_shards(tmp_path / "test", 2, per_shard=2, seed=1)
    write_tar(  # a damaged image with a caption
        tmp_path / "train/00001.tar", [("000010000.png", b"\x89PNG garbage"), ("000010000.txt", b"a damaged picture")]
    )
    data = PairedData(dataset="webdataset", root=str(tmp_path), batch_size=5, tokenizer="words")
    with pytest.raises(RuntimeError, match=r"could not decode image .*00001.tar:000010000.png"):
        next(iter(data.train_dataloader()))
    data = PairedData(dataset="webdataset", root=str(tmp_path), batch_size=5, skip_corrupt=True)
    with pytest.warns(UserWarning, match="skipped \\(1 so far\\)"):
        images, texts, _ = next(iter(data.train_dataloader()))
    assert images.shape[0] == 5
