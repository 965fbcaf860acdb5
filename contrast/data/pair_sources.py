"""Where image–text pairs come from: every source gives a :class:`PairedSplit`.

* ``shapes10_captions`` (the default, generated, no files): coloured Shapes-10 scenes with several
  captions per image naming shape, colour, size and position in different words and word orders.
  A caption is a hit for every image it describes (same four attributes), not only its own.
* ``shapes10_relations`` (generated, no files): scenes of one or two Shapes-10 objects with captions
  of their attributes, their relation and their count ("a small red disc left of a large blue ring",
  "two green wedges one above the other"): a caption of a two-object scene fits few images, and
  the words of "A left of B" and "B left of A" are the same, so it is far from saturated.
* ``features``: pre-extracted feature pairs, the form ACMR-style benchmarks ship:
  ``<root>/train.pt`` and ``<root>/test.pt`` (dicts with ``image``, ``text`` and optional ``labels``),
  or folders ``<root>/train/`` and ``<root>/test/`` holding ``image.npy``, ``text.npy``, ``labels.npy``.
* ``coco``: captions in torchvision's ``CocoCaptions`` layout: ``<root>/annotations/captions_train*.json``
  and ``captions_val*.json`` with the images in ``<root>/train*/`` and ``<root>/val*/`` (the folder
  named like the json's suffix, e.g. ``train2017``); or the Flickr layout, ``<root>/images/`` with
  ``<root>/captions.txt`` / ``results_20130124.token`` lines ``image.jpg#n<TAB>caption``, or Kaggle's
  Flickr8k ``captions.txt``, a CSV file with an ``image,caption`` header (the split:
  the last ``test_fraction`` of the images, in sorted order). With ``split_file``, Karpathy's split
  of either (``dataset_coco.json`` / ``dataset_flickr30k.json``: ``train`` + ``restval``, ``test``),
  the splits papers report R@K on. The images are decoded lazily, by the image sources' one decoder
  (:class:`~contrast.data.files.ImageFiles`).
* ``webdataset``, ``csv``: image–text pairs at scale, img2dataset's tar shards or open_clip's CSV
  files (:mod:`contrast.data.shards`), read by offset, so shuffled and resumed as any other source.
* ``packed``: packs of image–caption pairs written by ``contrast pack --captions``: ``<root>/train``
  and ``<root>/test`` (or ``val``), read image by image as image packs are.
* ``cifar10_captions``: CIFAR-10 (``<root>/cifar10-jpeg``) with captions drawn from templates and
  synonyms of the class names: a label-relevance benchmark (any caption of the right class is
  relevant for mAP; R@K still asks for the image's own captions).

A new source is one function ``(root, train, settings) -> PairedSplit`` and one line in
:data:`PAIR_SOURCES`; ``settings`` are the data module's arguments.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from contrast.data import shards
from contrast.data.captions import class_caption, describe, describe_relation, relation_key, scene_key
from contrast.data.datasets import Subset, decode_all
from contrast.data.files import DataNotFoundError, ImageFiles, data_root
from contrast.data.shapes import generate_relation_scenes, generate_scenes
from contrast.data.sources import load_split
from contrast.eval.features import check_finite
from contrast.seeds import derive_seed


@dataclass
class PairedSplit:
    """One split: N images (or image vectors), M texts (captions or vectors) each belonging to an image.

    ``text_image[m]`` is the image caption m belongs to; ``image_keys[n]`` says which images count as
    the same for retrieval (a caption is a hit for every image with its image's key): the image
    index by default, the attribute code for the Shapes-10 captions."""

    images: Tensor | ImageFiles  # (N, C, H, W) uint8, (N, Di) float, or image files read when indexed
    labels: Tensor  # (N,) class ids, -1 without labels
    text_image: Tensor  # (M,) the image of each text
    captions: list[str] | None = None  # M captions, or None when texts are vectors
    text_features: Tensor | None = None  # (M, Dt)
    image_keys: Tensor | None = None  # (N,)
    attributes: Tensor | None = None  # (N, 4) shape, colour, size, position codes (Shapes-10 captions)

    def __post_init__(self) -> None:
        n, m = len(self.images), self.text_image.shape[0]
        if self.labels.shape != (n,):
            raise ValueError(f"labels: expected {n} labels (one per image), got shape {tuple(self.labels.shape)}")
        if self.captions is not None and len(self.captions) != m:
            raise ValueError(f"captions: expected {m} captions, got {len(self.captions)}")
        if self.text_features is not None and self.text_features.shape[0] != m:
            raise ValueError(f"text features: expected {m} rows, got {self.text_features.shape[0]}")
        if m and (int(self.text_image.min()) < 0 or int(self.text_image.max()) >= n):
            raise ValueError(f"text_image: every text must belong to one of the {n} images")
        if self.image_keys is None:
            self.image_keys = torch.arange(n)
        # each image's texts, for drawing one per epoch
        order = torch.argsort(self.text_image, stable=True)
        counts = torch.bincount(self.text_image, minlength=n)
        if bool((counts == 0).any()):
            raise ValueError(f"every image needs at least one text; image {int((counts == 0).nonzero()[0])} has none")
        self.text_order, self.text_start, self.text_count = order, torch.cumsum(counts, 0) - counts, counts

    def __len__(self) -> int:
        return len(self.images)

    def image(self, i: int) -> Tensor:
        """Image i (decoded now when the images are files), or image vector i."""
        return self.images[i] if isinstance(self.images, Tensor) else self.images.image(i)

    @property
    def image_dim(self) -> int:
        """Width of the image vectors; 0 when the images are pictures."""
        return int(self.images.shape[1]) if isinstance(self.images, Tensor) and self.images.dim() == 2 else 0

    @property
    def text_dim(self) -> int:
        """Width of the text vectors; 0 when the texts are captions."""
        return 0 if self.text_features is None else int(self.text_features.shape[1])

    @property
    def in_channels(self) -> int:
        """Channels of the pictures (files are decoded as RGB)."""
        return int(self.images.shape[1]) if isinstance(self.images, Tensor) and self.images.dim() == 4 else 3

    @property
    def text_keys(self) -> Tensor:
        return self.image_keys[self.text_image]

    @property
    def text_labels(self) -> Tensor:
        return self.labels[self.text_image]


def first_captions(split: PairedSplit, k: int) -> PairedSplit:
    """The test queries: the first k captions of every image."""
    keep = torch.cat(
        [split.text_order[int(s) : int(s) + min(k, int(c))] for s, c in zip(split.text_start, split.text_count)]
    )
    keep = keep.sort().values
    return PairedSplit(
        split.images,
        split.labels,
        split.text_image[keep],
        [split.captions[int(m)] for m in keep],
        image_keys=split.image_keys,
        attributes=split.attributes,
    )


# ---------------------------------------------------------------------- the sources
def shapes_captions(n: int, captions_per_image: int, seed: int, size: int = 32, relations: bool = False) -> PairedSplit:
    """n generated scenes with ``captions_per_image`` captions each; images with the same attributes share
    a key. ``relations``: the scenes of one or two objects and their relation captions."""
    generate, caption, key = (
        (generate_relation_scenes, describe_relation, relation_key)
        if relations
        else (generate_scenes, describe, scene_key)
    )
    images, attributes = generate(n, size=size, seed=seed)
    g = torch.Generator().manual_seed(derive_seed(seed, "captions"))
    captions = [caption(attributes[i], g) for i in range(n) for _ in range(captions_per_image)]
    text_image = torch.arange(n).repeat_interleave(captions_per_image)
    return PairedSplit(
        images, attributes[:, 0].clone(), text_image, captions, image_keys=key(attributes), attributes=attributes
    )


def cifar10_captions(root, train: bool, captions_per_image: int, seed: int, subset: int | None) -> PairedSplit:
    """CIFAR-10 (``<root>/cifar10-jpeg``) with captions from templates and synonyms of its class names."""
    base = load_split("cifar10_jpeg", root, train, image_size=32)
    if subset is not None and subset < len(base):
        base = Subset(base, subset)
    decoded = decode_all(base, 0, f"cifar10 {'train' if train else 'test'}")
    classes = list(decoded.classes)
    g = torch.Generator().manual_seed(derive_seed(seed, "captions", train))
    labels = decoded.labels
    captions = [class_caption(classes[int(y)], g) for y in labels for _ in range(captions_per_image)]
    text_image = torch.arange(len(labels)).repeat_interleave(captions_per_image)
    return PairedSplit(decoded.images, labels, text_image, captions)


def _load_array(path: Path) -> Tensor:
    import numpy as np

    try:
        return torch.from_numpy(np.load(path, allow_pickle=False))
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: not a readable .npy array ({error})") from error


def feature_pairs(root, train: bool) -> PairedSplit:
    """A split of pre-extracted (image, text, label) feature rows (see the module doc for the files)."""
    base = data_root(root)
    split = "train" if train else "test"
    file, folder = base / f"{split}.pt", base / split
    if file.is_file():
        try:
            content = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 - any unreadable file gets the same message
            raise ValueError(f"{file}: not a readable torch file ({error})") from error
        if not isinstance(content, dict) or not {"image", "text"} <= set(content):
            raise ValueError(f"{file}: expected a dict with 'image', 'text' (and optional 'labels') tensors")
        image, text, labels, where = content["image"], content["text"], content.get("labels"), str(file)
        names = {"image": f"{file}['image']", "text": f"{file}['text']", "labels": f"{file}['labels']"}
    elif (folder / "image.npy").is_file() and (folder / "text.npy").is_file():
        image, text = _load_array(folder / "image.npy"), _load_array(folder / "text.npy")
        labels = _load_array(folder / "labels.npy") if (folder / "labels.npy").is_file() else None
        where = str(folder)
        names = {k: str(folder / f"{k}.npy") for k in ("image", "text", "labels")}
    else:
        raise DataNotFoundError(
            f"feature pairs ({split}) not found: looked for {file} and {folder}/image.npy + text.npy. "
            "Point at the folder with --data.root or CONTRAST_DATA_DIR"
        )
    for key, value in (("image", image), ("text", text)):
        if not isinstance(value, Tensor) or value.dim() != 2 or not value.is_floating_point() or value.shape[0] == 0:
            raise ValueError(
                f"{names[key]}: expected a non-empty 2-D float array, got {getattr(value, 'shape', value)}"
            )
    if image.shape[0] != text.shape[0]:
        raise ValueError(
            f"feature pairs in {where}: {names['image']} has {image.shape[0]} rows but {names['text']} has "
            f"{text.shape[0]}; row i of each must be one pair"
        )
    if labels is None:
        labels = torch.full((image.shape[0],), -1, dtype=torch.long)
    elif labels.dim() != 1 or labels.shape[0] != image.shape[0]:
        raise ValueError(
            f"{names['labels']}: expected {image.shape[0]} labels (one per pair), got shape {tuple(labels.shape)}"
        )
    negative = labels < 0
    if bool(negative.any()) and not bool(negative.all()):
        raise ValueError(
            f"{names['labels']}: {int(negative.sum())} of {labels.shape[0]} labels are negative (first: row "
            f"{int(negative.nonzero()[0])}); labels are class ids >= 0, or leave the file out for unlabelled pairs"
        )
    for key, value in (("image", image), ("text", text)):  # a NaN would train an all-NaN model
        check_finite(value, names[key])
    n = image.shape[0]
    return PairedSplit(image.float(), labels.long(), torch.arange(n), text_features=text.float())


def karpathy_split(base: Path, split_file: str, train: bool, image_size: int) -> PairedSplit:
    """Karpathy's split of COCO or Flickr30k (``dataset_coco.json``, ``dataset_flickr30k.json``): the
    images of ``train`` + ``restval`` for training, of ``test`` for the test split (COCO 5,000 and
    Flickr30k 1,000 images, 5 captions each), as the field reports R@K. An image is looked for at
    ``<root>/<filepath>/<filename>`` (COCO's folders), else ``<root>/images/``, ``<root>/flickr30k-images/``."""
    file = Path(split_file).expanduser()
    file = file if file.is_file() or file.is_absolute() else base / file
    if not file.is_file():
        raise DataNotFoundError(f"split_file {split_file}: no such file (looked at {file})")
    try:
        entries = json.loads(file.read_text())["images"]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"split_file {file}: not Karpathy's JSON (a dict with 'images'): {error}") from None
    wanted = ("train", "restval") if train else ("test",)
    chosen = [entry for entry in entries if entry.get("split") in wanted]
    if not chosen:
        raise ValueError(f"split_file {file}: no images in the split(s) {wanted}")
    paths, captions, text_image = [], [], []
    for n, entry in enumerate(chosen):
        places = (
            [base / entry["filepath"]] if entry.get("filepath") else [base / "images", base / "flickr30k-images", base]
        )
        path = next((p / entry["filename"] for p in places if (p / entry["filename"]).is_file()), None)
        if path is None:
            raise DataNotFoundError(f"split_file {file} names {entry['filename']}, not found in {places[0]}")
        paths.append((path, -1))
        for sentence in entry["sentences"]:
            captions.append(sentence["raw"].strip())
            text_image.append(n)
    images = ImageFiles(paths, image_size)
    return PairedSplit(images, images.labels, torch.tensor(text_image), captions)


def caption_files(
    root, train: bool, image_size: int, test_fraction: float = 0.1, split_file: str | None = None
) -> PairedSplit:
    """Captions in the COCO or Flickr layout (see the module doc); the images are read lazily, at
    ``image_size``. With ``split_file``: Karpathy's split (:func:`karpathy_split`)."""
    base = data_root(root)
    if split_file is not None:
        return karpathy_split(base, split_file, train, image_size)
    split = "train" if train else "val"
    annotations = sorted((base / "annotations").glob(f"captions_{split}*.json"))
    if annotations:
        content = json.loads(annotations[0].read_text())
        folder = base / annotations[0].stem.removeprefix("captions_")
        files = {image["id"]: image["file_name"] for image in content.get("images", [])}
        pairs = [
            (files.get(a["image_id"], f"<image id {a['image_id']}>"), a["caption"]) for a in content["annotations"]
        ]
        where = str(annotations[0])
    else:
        token = next(
            (base / name for name in ("captions.txt", "results_20130124.token") if (base / name).is_file()), None
        )
        if token is None:
            raise DataNotFoundError(
                f"caption files not found in {base}: expected annotations/captions_{split}*.json (COCO layout) or "
                "captions.txt / results_20130124.token with images/ (Flickr layout)"
            )
        folder, where = base / "images", str(token)
        lines = token.read_text(encoding="utf-8").splitlines()
        pairs = []
        if lines and lines[0].strip().lower() == "image,caption":  # Kaggle's Flickr8k: a CSV file
            import csv

            pairs = [(row[0], row[1].strip()) for row in csv.reader(lines[1:]) if len(row) >= 2]
        for line in lines if not pairs else ():
            if "\t" in line:
                name, caption = line.split("\t", 1)
                pairs.append((name.split("#", 1)[0], caption.strip()))
        names = sorted({name for name, _ in pairs})
        cut = len(names) - max(1, int(round(test_fraction * len(names))))
        keep = set(names[:cut] if train else names[cut:])
        pairs = [(name, caption) for name, caption in pairs if name in keep]
    if not pairs:
        raise ValueError(f"{where}: no captions for the {split} split")
    names = sorted({name for name, _ in pairs})
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise DataNotFoundError(
            f"{where} names {len(missing)} image(s) missing from {folder}, e.g. {folder / missing[0]}"
        )
    index = {name: i for i, name in enumerate(names)}
    images = ImageFiles([(folder / name, -1) for name in names], image_size)  # decoded when read
    text_image = torch.tensor([index[name] for name, _ in pairs])
    return PairedSplit(images, images.labels, text_image, [caption for _, caption in pairs])


def tar_shards(root, train: bool, s) -> PairedSplit:
    """img2dataset's webdataset shards (:mod:`contrast.data.shards`)."""
    spec = shards.split_spec(root, s.eval_root, train, "webdataset")
    return shards.split_of(*shards.shard_pairs(spec, s.image_size, s.caption_key, s.skip_corrupt))


def csv_table(root, train: bool, s) -> PairedSplit:
    """open_clip's CSV / TSV layout (:mod:`contrast.data.shards`)."""
    spec = shards.split_spec(root, s.eval_root, train, "csv")
    return shards.split_of(
        *shards.csv_pairs(spec, s.image_size, s.csv_img_key, s.csv_caption_key, s.csv_separator, s.skip_corrupt)
    )


def packed_pairs(root, train: bool, s) -> PairedSplit:
    """Packs of image–caption pairs (``contrast pack --captions``): ``<root>/train``, ``<root>/test`` or ``val``."""
    images = load_split("packed", root, train, image_size=s.image_size)
    if images is None:
        raise DataNotFoundError(f"--data.root {root}: no test pack (<root>/test or <root>/val) to score on")
    if images.captions is None:
        raise ValueError(f"{images.root}: a pack of images without captions; pack it with --captions txt or a CSV")
    return PairedSplit(images, images.labels, torch.arange(len(images)), images.captions)


# name -> (root, train, settings) -> PairedSplit; settings: the data module's arguments
PAIR_SOURCES = {
    "shapes10_captions": lambda root, train, s: shapes_captions(
        s.train_size if train else s.test_size, s.captions_per_image, seed=0 if train else 1, size=s.image_size
    ),
    "shapes10_relations": lambda root, train, s: shapes_captions(
        s.train_size if train else s.test_size, s.captions_per_image, 0 if train else 1, s.image_size, relations=True
    ),
    "features": lambda root, train, s: feature_pairs(root, train),
    "coco": lambda root, train, s: caption_files(root, train, s.image_size, split_file=s.split_file),
    "cifar10_captions": lambda root, train, s: cifar10_captions(
        root, train, s.captions_per_image, s.seed, s.train_subset if train else s.eval_subset
    ),
    "webdataset": tar_shards,
    "csv": csv_table,
    "packed": packed_pairs,
}
