"""Paired data: captions that describe their images, the feature-pair and caption-file layouts,
the pairing per epoch and its resume, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torchvision.io import write_jpeg

from contrast.data import DataNotFoundError, PairedData
from contrast.data.captions import COLOUR_WORDS, POSITION_WORDS, SHAPE_WORDS, SIZE_WORDS, scene_key
from contrast.data.pair_datasets import collate_pairs
from contrast.data.pair_sources import caption_files, feature_pairs, shapes_captions
from contrast.data.shapes import CLASSES, COLOURS, POSITIONS, SIZES, generate_scenes


def _mentions(caption: str, options: tuple[str, ...], others: dict[str, tuple[str, ...]], own: str) -> bool:
    """Whether the caption names one of ``options`` and none of the other values' words."""
    padded = f" {caption} ".replace(",", " ").replace(":", " ").replace("(", " ").replace(")", " ")
    said = any(f" {word} " in padded for word in options)
    wrong = [w for name, words in others.items() if name != own for w in words if f" {w} " in padded]
    return said and not any(w for w in wrong if not any(w in o for o in options))


def test_shapes_captions_name_the_attributes_of_their_image():
    split = shapes_captions(60, captions_per_image=4, seed=0)
    _, attributes = generate_scenes(60, seed=0)
    assert len(split.captions) == 240 and split.text_image.tolist() == [i for i in range(60) for _ in range(4)]
    for m, caption in enumerate(split.captions):
        shape, colour, size, position = attributes[int(split.text_image[m])].tolist()
        assert _mentions(caption, COLOUR_WORDS[list(COLOURS)[colour]], COLOUR_WORDS, list(COLOURS)[colour]), caption
        assert _mentions(caption, SIZE_WORDS[SIZES[size]], SIZE_WORDS, SIZES[size]), caption
        assert _mentions(caption, POSITION_WORDS[POSITIONS[position]], POSITION_WORDS, POSITIONS[position]), caption
        assert any(word in caption for word in SHAPE_WORDS[CLASSES[shape]]), caption
    # several phrasings per image
    assert all(len(set(split.captions[4 * i : 4 * i + 4])) > 1 for i in range(60))
    assert torch.equal(split.image_keys, scene_key(attributes)) and torch.equal(split.labels, attributes[:, 0])
    assert torch.equal(split.attributes, attributes)


def test_scenes_draw_what_the_attributes_say():
    images, attributes = generate_scenes(200, seed=3)
    palette = torch.tensor(list(COLOURS.values()))
    areas: dict[tuple[int, int], list[int]] = {}
    for image, (shape, colour, size, position) in zip(images.float() / 255, attributes.tolist()):
        background = image.flatten(1).median(dim=1).values[:, None, None]  # the shape covers less than half
        mask = (image - background).abs().sum(0) > 0.45  # the shape's pixels
        ys, xs = mask.nonzero(as_tuple=True)
        assert ((xs.float().mean() >= 16) == bool(position % 2)) and ((ys.float().mean() >= 16) == bool(position // 2))
        mean_colour = image[:, mask].mean(1)
        assert int((palette - mean_colour).norm(dim=1).argmin()) == colour
        areas.setdefault((shape, size), []).append(int(mask.sum()))
    for shape in range(10):  # every large shape covers more pixels than every small one of its kind
        assert max(areas[(shape, 0)]) < min(areas[(shape, 1)])


def test_scene_key_is_one_code_per_combination():
    codes = torch.tensor([[s, c, z, p] for s in range(10) for c in range(6) for z in range(2) for p in range(4)])
    assert scene_key(codes).unique().numel() == 480


def test_relation_scenes_draw_each_object_where_and_as_the_codes_say():
    from contrast.data.shapes import LAYOUTS, generate_relation_scenes

    images, codes = generate_relation_scenes(300, seed=5)
    assert images.shape == (300, 3, 32, 32) and codes.shape == (300, 7)
    palette = torch.tensor(list(COLOURS.values()))
    assert set(codes[:, 6].tolist()) == {0, 1, 2} and bool((codes[codes[:, 6] == 0, 3:6] == 0).all())
    twins = (codes[:, 6] > 0) & (codes[:, :3] == codes[:, 3:6]).all(1)
    assert 10 <= int(twins.sum()) <= 60  # about a tenth of the two-object scenes repeat one object
    first, mirror = codes[0::2], codes[1::2]  # mirrored pairs: the same objects in the other order
    two = first[:, 6] > 0
    assert torch.equal(mirror[two][:, :3], first[two][:, 3:6]) and torch.equal(mirror[two][:, 3:6], first[two][:, :3])
    assert torch.equal(mirror[~two], first[~two]) and torch.equal(mirror[:, 6], first[:, 6])
    for image, row in zip(images.float() / 255, codes.tolist()):
        layout = LAYOUTS[row[6]]
        background = image.flatten(1).median(dim=1).values[:, None, None]
        mask = (image - background).abs().sum(0) > 0.45  # the objects' pixels
        halves = {"single": [mask], "side by side": [mask[:, :16], mask[:, 16:]], "stacked": [mask[:16], mask[16:]]}
        regions = {"single": [image], "side by side": [image[:, :, :16], image[:, :, 16:]]}
        regions["stacked"] = [image[:, :16], image[:, 16:]]
        for part, region, colour in zip(halves[layout], regions[layout], (row[1], row[4])):
            assert part.sum() > 4, (row, "an object is drawn in its half")
            mean_colour = region[:, part].mean(1)
            assert int((palette - mean_colour).norm(dim=1).argmin()) == colour, row


def test_relation_captions_name_both_objects_their_relation_and_count():
    from contrast.data.captions import describe_relation, relation_key
    from contrast.data.shapes import generate_relation_scenes

    split = shapes_captions(200, captions_per_image=3, seed=0, relations=True)
    _, codes = generate_relation_scenes(200, seed=0)
    assert torch.equal(split.attributes, codes) and torch.equal(split.image_keys, relation_key(codes))
    relation_words = {
        1: (" left ", " right ", " side by side ", " next to "),
        2: (" above ", " below ", " top ", " under ", " bottom ", " stacked "),
    }
    for m, caption in enumerate(split.captions):
        row = codes[int(split.text_image[m])].tolist()
        padded = f" {caption.replace(',', ' ')} "
        for shape, colour, size in [row[:3]] if row[6] == 0 else [row[:3], row[3:6]]:
            assert any(w in caption for w in COLOUR_WORDS[list(COLOURS)[colour]]), caption
            assert any(w in caption for w in SIZE_WORDS[SIZES[size]]), caption
            assert any(w.split()[0] in caption for w in SHAPE_WORDS[CLASSES[shape]]), caption
        if row[6] == 0:
            assert caption.startswith(("a single", "one ", "just one")), caption
        else:
            assert any(w in padded for w in relation_words[row[6]]), caption
            assert caption.startswith(("two ", "a pair")) == (row[:3] == row[3:6]), caption
    g = torch.Generator().manual_seed(0)
    # "A left of B" or "B right of A": the object named after "left of" is B, never A
    left = (0, 0, 0, 6, 2, 1, 1)  # a small red disc, a large blue ring to its right
    said = set()
    for _ in range(60):
        caption = describe_relation(left, g)
        red = min(caption.index(w) for w in COLOUR_WORDS["red"] if w in caption)
        blue = min(caption.index(w) for w in COLOUR_WORDS["blue"] if w in caption)
        for relation, first, second in ((" left of ", red, blue), (" right of ", blue, red)):
            if relation in caption:
                assert first < caption.index(relation) < second, caption
                said.add(relation)
    assert said == {" left of ", " right of "}  # both orders are said
    codes = torch.tensor([[1, 2, 0, 4, 5, 1, 1], [4, 5, 1, 1, 2, 0, 1], [1, 2, 0, 4, 5, 1, 2]])
    assert relation_key(codes).unique().numel() == 3  # the order and the layout tell scenes apart


def test_feature_pairs_in_both_layouts(tmp_path):
    g = torch.Generator().manual_seed(0)
    image, text, labels = torch.randn(20, 6, generator=g), torch.randn(20, 4, generator=g), torch.arange(20) % 3
    torch.save({"image": image, "text": text, "labels": labels}, tmp_path / "train.pt")
    (tmp_path / "test").mkdir()
    for name, value in (("image", image[:8]), ("text", text[:8]), ("labels", labels[:8])):
        np.save(tmp_path / "test" / f"{name}.npy", value.numpy())
    train, test = feature_pairs(tmp_path, True), feature_pairs(tmp_path, False)
    assert (
        torch.equal(train.images, image)
        and torch.equal(train.text_features, text)
        and torch.equal(train.labels, labels)
    )
    assert torch.equal(test.images, image[:8]) and test.text_image.tolist() == list(range(8))
    data = PairedData(dataset="features", root=str(tmp_path), batch_size=4)
    assert (data.image_dim, data.text_dim, data.num_classes, data.vocabulary) == (6, 4, 3, None)
    images, texts, batch_labels = next(iter(data.train_dataloader()))
    assert images.shape == (4, 6) and texts.shape == (4, 4) and batch_labels.shape == (4,)


def test_feature_pairs_bad_input_names_the_file(tmp_path):
    torch.save({"image": torch.randn(5, 3), "text": torch.randn(4, 3)}, tmp_path / "train.pt")
    with pytest.raises(ValueError, match=r"train.pt\['image'\] has 5 rows but .*train.pt\['text'\] has 4"):
        feature_pairs(tmp_path, True)
    torch.save(
        {"image": torch.randn(5, 3), "text": torch.randn(5, 3), "labels": torch.arange(4)}, tmp_path / "train.pt"
    )
    with pytest.raises(ValueError, match=r"train.pt\['labels'\]: expected 5 labels"):
        feature_pairs(tmp_path, True)
    torch.save({"pictures": torch.randn(5, 3)}, tmp_path / "train.pt")
    with pytest.raises(ValueError, match="expected a dict with 'image', 'text'"):
        feature_pairs(tmp_path, True)
    (tmp_path / "train.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="train.pt: not a readable torch file"):
        feature_pairs(tmp_path, True)
    with pytest.raises(DataNotFoundError, match="feature pairs \\(test\\) not found"):
        feature_pairs(tmp_path, False)
    (tmp_path / "test").mkdir()
    np.save(tmp_path / "test" / "image.npy", np.zeros((3, 2), dtype=np.float32))
    np.save(tmp_path / "test" / "text.npy", np.zeros((2, 2), dtype=np.float32))
    with pytest.raises(ValueError, match=r"image.npy has 3 rows but .*text.npy has 2"):
        feature_pairs(tmp_path, False)


def _coco_fixture(root, split="train2017", n=6, captions=2):
    """The torchvision CocoCaptions layout: <root>/<split>/*.jpg and annotations/captions_<split>.json."""
    (root / split).mkdir(parents=True)
    (root / "annotations").mkdir(exist_ok=True)
    images, annotations = [], []
    for i in range(n):
        picture = torch.zeros(3, 40, 48, dtype=torch.uint8)
        picture[i % 3] = 200
        write_jpeg(picture, str(root / split / f"{i:012d}.jpg"))
        images.append({"id": 100 + i, "file_name": f"{i:012d}.jpg"})
        annotations += [
            {
                "image_id": 100 + i,
                "id": 10 * i + c,
                "caption": f"A {['red', 'green', 'blue'][i % 3]} picture number {i}.",
            }
            for c in range(captions)
        ]
    (root / "annotations" / f"captions_{split}.json").write_text(
        json.dumps({"images": images, "annotations": annotations})
    )


def test_coco_caption_layout(tmp_path):
    _coco_fixture(tmp_path, "train2017", n=6)
    _coco_fixture(tmp_path, "val2017", n=3)
    split = caption_files(tmp_path, True, image_size=32)
    images = torch.stack([split.images[i][0] for i in range(len(split))])  # decoded when read
    assert images.shape == (6, 3, 32, 32) and len(split.captions) == 12
    assert split.text_image.tolist() == [i for i in range(6) for _ in range(2)]
    assert int(images[1, 1].float().mean()) > 150  # image 1 is green
    data = PairedData(dataset="coco", root=str(tmp_path), batch_size=3, image_size=32, captions_per_image=2)
    assert "picture" in data.vocabulary.words and data.num_classes == 0
    images, texts, labels = next(iter(data.train_dataloader()))
    assert images.dtype == torch.uint8 and texts.dtype == torch.long and labels.tolist() == [-1, -1, -1]
    image_loader, text_loader = data.eval_loaders()
    assert len(image_loader.dataset) == 3 and len(text_loader.dataset) == 6  # 2 captions per val image kept


def test_coco_layout_with_a_missing_image_names_it(tmp_path):
    _coco_fixture(tmp_path, "train2017", n=3)
    (tmp_path / "train2017" / "000000000001.jpg").unlink()
    with pytest.raises(DataNotFoundError, match="names 1 image.*000000000001.jpg"):
        caption_files(tmp_path, True, image_size=32)


def test_flickr_caption_layout(tmp_path):
    (tmp_path / "images").mkdir()
    lines = []
    for i in range(10):
        write_jpeg(torch.full((3, 20, 20), 20 * i, dtype=torch.uint8), str(tmp_path / "images" / f"{i}.jpg"))
        lines += [f"{i}.jpg#{c}\ta photo with the number {i}" for c in range(3)]
    (tmp_path / "results_20130124.token").write_text("\n".join(lines))
    train, test = caption_files(tmp_path, True, 16), caption_files(tmp_path, False, 16)
    assert len(train) == 9 and len(test) == 1 and len(test.captions) == 3


def test_pairs_change_with_the_epoch_and_resume_mid_epoch():
    data = PairedData(train_size=64, test_size=16, batch_size=8, captions_per_image=5)
    loader = data.train_dataloader()
    loader.sampler.set_epoch(0)
    epoch0 = [batch for batch in loader]
    loader.sampler.set_epoch(1)
    epoch1 = [batch for batch in loader]
    assert not torch.equal(epoch0[0][0], epoch1[0][0])  # another order
    # the same image gets another caption in another epoch, for some images
    first = {int(k): t for b in epoch0 for k, t in zip(b[0].flatten(1).sum(1), b[1].tolist())}
    second = {int(k): t for b in epoch1 for k, t in zip(b[0].flatten(1).sum(1), b[1].tolist())}
    assert any(first[k] != second[k] for k in first if k in second)
    # resume at epoch 1 after 3 batches: the remaining batches are the uninterrupted run's
    resumed = PairedData(train_size=64, test_size=16, batch_size=8, captions_per_image=5)
    resumed.load_state_dict({"vocabulary": data.vocabulary.words, "epoch": 1, "batches": 3})
    rest = list(resumed.train_dataloader())
    assert len(rest) == len(epoch1) - 3
    for a, b in zip(rest, epoch1[3:]):
        assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_a_checkpoint_with_another_vocabulary_is_refused():
    """The vocabulary is a hyper-parameter of the model (linked from the data): resuming on captions
    with other words is refused by the one checkpoint-fits-config check, naming it."""
    from contrast.fits import checkpoint_differences
    from contrast.methods import CrossModal

    data = PairedData(train_size=32, test_size=8, batch_size=4)
    saved = CrossModal(**data.facts(), backbone="tiny_cnn")
    checkpoint = {"hyper_parameters": dict(saved.hparams, vocabulary=["<pad>", "<unk>", "zebra"])}
    differences = checkpoint_differences(checkpoint, model=saved, data=data)
    assert len(differences) == 1 and differences[0].startswith(
        "model.vocabulary: checkpoint ['<pad>', '<unk>', 'zebra']"
    )


def test_collate_pads_token_ids():
    batch = [
        (torch.zeros(3, 2, 2, dtype=torch.uint8), torch.tensor([4, 5]), 1),
        (torch.ones(3, 2, 2, dtype=torch.uint8), torch.tensor([7, 8, 9]), 0),
    ]
    images, texts, labels = collate_pairs(batch)
    assert texts.tolist() == [[4, 5, 0], [7, 8, 9]] and labels.tolist() == [1, 0] and images.shape == (2, 3, 2, 2)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"dataset": "flickr8k"}, "dataset must be one of"),
        ({"batch_size": 1}, "batch_size must be an int >= 2"),
        ({"captions_per_image": 0}, "captions_per_image must be a positive int"),
        ({"eval_captions_per_image": 6}, "eval_captions_per_image must be None or in"),
        ({"max_length": 0}, "max_length must be a positive int"),
    ],
)
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PairedData(**kwargs)


def test_an_empty_vocabulary_is_refused():
    data = PairedData(train_size=16, test_size=8, batch_size=4, min_count=10**6)
    with pytest.raises(ValueError, match="empty vocabulary"):
        _ = data.vocabulary


def test_cifar10_class_captions(data_dir):
    from contrast.data.captions import CIFAR_WORDS

    data = PairedData(
        dataset="cifar10_captions", root=str(data_dir), train_subset=200, eval_subset=100, captions_per_image=2
    )
    split = data.split(True)
    assert split.images.shape == (200, 3, 32, 32) and len(split.captions) == 400 and data.num_classes == 10
    classes = list(CIFAR_WORDS)
    for m, caption in enumerate(split.captions):
        label = int(split.labels[int(split.text_image[m])])
        assert any(word in caption for word in CIFAR_WORDS[classes[label]]), caption
