"""Bad pair data is refused when it is read, naming the file: NaN rows, partly negative labels; the
Kaggle Flickr8k CSV is read; captions outside ASCII keep their words; meaningless test captions are counted."""

from __future__ import annotations

import pytest
import torch
from torchvision.io import write_jpeg

from contrast.data import PairedData
from contrast.data.pair_sources import caption_files, feature_pairs
from contrast.models.text import Vocabulary, tokenize


def _features(root, n=20, labels=True):
    g = torch.Generator().manual_seed(0)
    content = {"image": torch.randn(n, 6, generator=g), "text": torch.randn(n, 4, generator=g)}
    if labels:
        content["labels"] = torch.arange(n) % 3
    for split in ("train", "test"):
        torch.save(content, root / f"{split}.pt")
    return content


@pytest.mark.parametrize("key", ["image", "text"])
def test_a_nan_in_feature_pairs_is_refused_with_its_file_key_and_row(tmp_path, key):
    """A NaN trained the clip objective to an all-NaN checkpoint (or changed test scores) with exit 0."""
    content = _features(tmp_path)
    content[key][7, 2] = float("nan")
    content[key][11, 0] = float("inf")
    torch.save(content, tmp_path / "test.pt")
    assert feature_pairs(tmp_path, True).images.shape == (20, 6)  # the training file is fine
    with pytest.raises(ValueError, match=rf"test.pt\['{key}'\]: 2 row\(s\) hold NaN or Inf values, the first is row 7"):
        feature_pairs(tmp_path, False)


def test_partly_negative_labels_are_named_not_taken_for_unlabelled_data(tmp_path):
    content = _features(tmp_path)
    content["labels"][[3, 9]] = -1
    torch.save(content, tmp_path / "train.pt")
    with pytest.raises(ValueError, match=r"train.pt\['labels'\]: 2 of 20 labels are negative \(first: row 3\)"):
        feature_pairs(tmp_path, True)


def test_the_kaggle_flickr8k_csv_is_read(tmp_path):
    (tmp_path / "images").mkdir()
    lines = ["image,caption"]
    for i in range(10):
        write_jpeg(torch.full((3, 20, 20), 20 * i, dtype=torch.uint8), str(tmp_path / "images" / f"{i}.jpg"))
        lines += [f'{i}.jpg,"a photo, with a comma, number {i}"', f"{i}.jpg,another caption of {i}"]
    (tmp_path / "captions.txt").write_text("\n".join(lines))
    train, test = caption_files(tmp_path, True, 16), caption_files(tmp_path, False, 16)
    assert (
        len(train) == 9
        and len(test) == 1
        and test.captions == ["a photo, with a comma, number 9", "another caption of 9"]
    )


def test_words_outside_ascii_are_words():
    """ "café" became "caf", "Größe" became "gr" + "e"; Greek, Chinese and emoji words vanished."""
    assert tokenize("Ein Café, Größe L: σκύλος 小狗 🐕!") == ["ein", "café", "grösse", "l", "σκύλοσ", "小狗", "🐕"]
    assert tokenize("cafe\u0301") == tokenize("café")  # decomposed and composed accents are one word
    assert tokenize("top left: a red disc (small), x_y") == ["top", "left", "a", "red", "disc", "small", "x", "y"]
    vocabulary = Vocabulary.build(["ein café", "小狗 und 🐕"])
    assert vocabulary.encode("Café 🐕", 8) == [vocabulary.index["café"], vocabulary.index["🐕"]]


def test_test_captions_without_a_known_word_are_counted(monkeypatch):
    data = PairedData(train_size=32, test_size=8, batch_size=4, captions_per_image=2)
    split = data.split(False)
    split.captions[0], split.captions[3] = "", "zebra giraffe"  # empty, and words never seen in training
    with pytest.warns(UserWarning, match="2 of 16 test captions are empty or hold only words unseen"):
        data.tokens(False)


def _karpathy(root, layout: str) -> dict:
    """A small Karpathy-style split file and its images: COCO (filepath per image) or Flickr30k (images/)."""
    splits = ["train"] * 4 + ["restval"] * 2 + ["val"] * 2 + ["test"] * 3
    entries = []
    for n, split in enumerate(splits):
        folder = ("val2014" if split != "train" else "train2014") if layout == "coco" else "images"
        (root / folder).mkdir(parents=True, exist_ok=True)
        name = f"{n:06d}.jpg"
        write_jpeg(torch.full((3, 40, 30), 10 * n, dtype=torch.uint8), str(root / folder / name))
        entry = {
            "filename": name,
            "split": split,
            "imgid": n,
            "sentences": [{"raw": f"image {n} caption {c} "} for c in range(5)],
        }
        if layout == "coco":
            entry["filepath"] = folder
        entries.append(entry)
    content = {"images": entries, "dataset": layout}
    (root / f"dataset_{layout}.json").write_text(__import__("json").dumps(content))
    return content


@pytest.mark.parametrize("layout", ["coco", "flickr30k"])
def test_karpathys_split_file_trains_on_train_and_restval_and_tests_on_test(tmp_path, layout):
    _karpathy(tmp_path, layout)
    data = PairedData(dataset="coco", root=str(tmp_path), split_file=f"dataset_{layout}.json", image_size=32)
    train, test = data.split(True), data.split(False)
    assert len(train) == 6 and len(test) == 3  # train + restval; test (val left out)
    assert train.text_image.tolist() == [i for i in range(6) for _ in range(5)]
    assert test.captions[:2] == ["image 8 caption 0", "image 8 caption 1"]
    assert int(test.image(0)[0, 0, 0]) == pytest.approx(80, abs=2)  # image 8's grey level, decoded
    with pytest.raises(FileNotFoundError, match="split_file nowhere.json: no such file"):
        PairedData(dataset="coco", root=str(tmp_path), split_file="nowhere.json").split(True)
    (tmp_path / "images").exists() and (tmp_path / "images" / "000009.jpg").unlink()
    (tmp_path / "val2014").exists() and (tmp_path / "val2014" / "000009.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="names 000009.jpg, not found"):
        PairedData(dataset="coco", root=str(tmp_path), split_file=f"dataset_{layout}.json").split(False)
