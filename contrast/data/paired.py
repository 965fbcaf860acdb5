"""Paired data for two-tower training: (image, caption or feature vector, label) triples.

Sources (``PairedData(dataset=...)``):

* ``shapes10_captions`` (the default, generated, no files): coloured Shapes-10 scenes with several
  captions per image naming shape, colour, size and position in different words and word orders.
  A caption is a hit for every image it describes (same four attributes), not only its own.
* ``features``: pre-extracted feature pairs, the form ACMR-style benchmarks ship:
  ``<root>/train.pt`` and ``<root>/test.pt`` (dicts with ``image``, ``text`` and optional ``labels``),
  or folders ``<root>/train/`` and ``<root>/test/`` holding ``image.npy``, ``text.npy``, ``labels.npy``.
* ``coco``: captions in torchvision's ``CocoCaptions`` layout: ``<root>/annotations/captions_train*.json``
  and ``captions_val*.json`` with the images in ``<root>/train*/`` and ``<root>/val*/`` (the folder
  named like the json's suffix, e.g. ``train2017``); or the Flickr layout, ``<root>/images/`` with
  ``<root>/captions.txt`` / ``results_20130124.token`` lines ``image.jpg#n<TAB>caption`` (the split:
  the last ``test_fraction`` of the images, in sorted order).
* ``cifar10_captions``: CIFAR-10 (``<root>/cifar10-jpeg``) with captions drawn from templates and
  synonyms of the class names: a label-relevance benchmark (any caption of the right class is
  relevant for mAP; R@K still asks for the image's own captions).

Training batches are ``(images, texts, labels)``: images (B, C, H, W) uint8 or (B, Di) features;
texts (B, L) word ids padded with 0 or (B, Dt) features; labels (B,) class ids (-1: none). Each epoch
pairs every image with one of its captions, chosen from (seed, epoch, index), so a resumed run
draws the pairs the uninterrupted one would have.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from contrast.data.sampler import loop_position, training_sampler
from contrast.data.shapes import CLASSES, COLOURS, POSITIONS, SIZES, generate_scenes
from contrast.data.sources import DataNotFoundError, data_root, load_split
from contrast.models.text import Vocabulary
from contrast.seeds import derive_seed

DATASETS = ("shapes10_captions", "features", "coco", "cifar10_captions")


@dataclass
class PairedSplit:
    """One split: N images (or image vectors), M texts (captions or vectors) each belonging to an image.

    ``text_image[m]`` is the image caption m belongs to; ``image_keys[n]`` says which images count as
    the same for retrieval (a caption is a hit for every image with its image's key): the image
    index by default, the attribute code for the Shapes-10 captions."""

    images: Tensor  # (N, C, H, W) uint8 or (N, Di) float
    labels: Tensor  # (N,) class ids, -1 without labels
    text_image: Tensor  # (M,) the image of each text
    captions: list[str] | None = None  # M captions, or None when texts are vectors
    text_features: Tensor | None = None  # (M, Dt)
    image_keys: Tensor | None = None  # (N,)
    attributes: Tensor | None = None  # (N, 4) shape, colour, size, position codes (Shapes-10 captions)

    def __post_init__(self) -> None:
        n, m = self.images.shape[0], self.text_image.shape[0]
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
        return self.images.shape[0]

    @property
    def text_keys(self) -> Tensor:
        return self.image_keys[self.text_image]

    @property
    def text_labels(self) -> Tensor:
        return self.labels[self.text_image]


# ---------------------------------------------------------------------- Shapes-10 with captions
SHAPE_WORDS = {
    "disc": ("disc", "filled circle", "dot"),
    "square": ("square", "filled square", "block"),
    "diamond": ("diamond", "rhombus"),
    "triangle": ("triangle", "wedge"),
    "plus": ("plus", "plus sign"),
    "cross": ("cross", "x", "saltire"),
    "ring": ("ring", "hoop", "circle outline"),
    "frame": ("frame", "square outline", "hollow square"),
    "horizontal_ellipse": ("wide ellipse", "horizontal oval", "flat oval"),
    "vertical_ellipse": ("tall ellipse", "vertical oval", "upright oval"),
}
COLOUR_WORDS = {
    "red": ("red", "crimson", "scarlet"),
    "green": ("green", "emerald"),
    "blue": ("blue", "azure", "cobalt"),
    "yellow": ("yellow", "golden", "lemon"),
    "white": ("white", "pale", "snowy"),
    "purple": ("purple", "violet", "lilac"),
}
SIZE_WORDS = {"small": ("small", "tiny", "little"), "large": ("large", "big", "huge")}
POSITION_WORDS = {
    "top left": ("top left", "upper left"),
    "top right": ("top right", "upper right"),
    "bottom left": ("bottom left", "lower left"),
    "bottom right": ("bottom right", "lower right"),
}
TEMPLATES = (
    "a {size} {colour} {shape} in the {position}",
    "{position}: a {colour} {shape}, {size}",
    "there is a {size} {shape} coloured {colour} at the {position} of the picture",
    "{colour} {shape} ({size}) {position} corner",
    "in the {position} corner you can see a {size} {colour} {shape}",
    "the picture shows a {colour} {shape} of {size} size, {position}",
)


def scene_key(attributes: Tensor) -> Tensor:
    """(n,) one code per attribute combination of (n, 4) (shape, colour, size, position) codes."""
    sizes = (len(CLASSES), len(COLOURS), len(SIZES), len(POSITIONS))
    key = torch.zeros(attributes.shape[0], dtype=torch.long)
    for column, size in enumerate(sizes):
        key = key * size + attributes[:, column]
    return key


def describe(attributes: Tensor | tuple[int, ...], generator: torch.Generator) -> str:
    """One caption of a scene with (shape, colour, size, position) codes, in random words and template."""
    shape, colour, size, position = (int(a) for a in attributes)

    def pick(options):
        return options[int(torch.randint(len(options), (1,), generator=generator))]

    return pick(TEMPLATES).format(
        shape=pick(SHAPE_WORDS[CLASSES[shape]]),
        colour=pick(COLOUR_WORDS[list(COLOURS)[colour]]),
        size=pick(SIZE_WORDS[SIZES[size]]),
        position=pick(POSITION_WORDS[POSITIONS[position]]),
    )


def shapes_captions(n: int, captions_per_image: int, seed: int, size: int = 32) -> PairedSplit:
    images, attributes = generate_scenes(n, size=size, seed=seed)
    g = torch.Generator().manual_seed(derive_seed(seed, "captions"))
    captions = [describe(attributes[i], g) for i in range(n) for _ in range(captions_per_image)]
    text_image = torch.arange(n).repeat_interleave(captions_per_image)
    return PairedSplit(
        images, attributes[:, 0].clone(), text_image, captions, image_keys=scene_key(attributes), attributes=attributes
    )


# ---------------------------------------------------------------------- CIFAR-10 with class captions
CIFAR_WORDS = {
    "airplane": ("airplane", "plane", "aircraft", "jet"),
    "automobile": ("car", "automobile", "sedan"),
    "bird": ("bird", "sparrow", "songbird"),
    "cat": ("cat", "kitten", "house cat"),
    "deer": ("deer", "stag", "doe"),
    "dog": ("dog", "puppy", "hound"),
    "frog": ("frog", "toad"),
    "horse": ("horse", "pony", "stallion"),
    "ship": ("ship", "boat", "vessel"),
    "truck": ("truck", "lorry", "pickup truck"),
}
CIFAR_TEMPLATES = (
    "a photo of a {}",
    "a blurry photo of the {}",
    "a small picture of a {}",
    "a low resolution image of a {}",
    "a close-up photo of the {}",
    "there is a {} in this picture",
    "a {} seen from afar",
)


def class_caption(class_name: str, generator: torch.Generator) -> str:
    words = CIFAR_WORDS.get(class_name, (class_name.replace("_", " "),))
    template = CIFAR_TEMPLATES[int(torch.randint(len(CIFAR_TEMPLATES), (1,), generator=generator))]
    return template.format(words[int(torch.randint(len(words), (1,), generator=generator))])


def cifar10_captions(root, train: bool, captions_per_image: int, seed: int, subset: int | None) -> PairedSplit:
    from contrast.data.datasets import Subset, decode_all

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


# ---------------------------------------------------------------------- feature pairs
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
    n = image.shape[0]
    return PairedSplit(image.float(), labels.long(), torch.arange(n), text_features=text.float())


# ---------------------------------------------------------------------- caption files (COCO / Flickr)
def _read_image(path: Path, size: int) -> Tensor:
    from torchvision.io import ImageReadMode, decode_image
    from torchvision.transforms.v2 import functional as TF

    try:
        image = decode_image(str(path), mode=ImageReadMode.RGB)
    except Exception as error:  # torchvision raises several types for corrupt files
        raise ValueError(f"could not decode image {path}: {error}") from error
    return TF.center_crop(TF.resize(image, size, antialias=True), size)


def caption_files(root, train: bool, image_size: int, test_fraction: float = 0.1) -> PairedSplit:
    base = data_root(root)
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
        pairs = []
        for line in token.read_text().splitlines():
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
    images = torch.stack([_read_image(folder / name, image_size) for name in names])
    text_image = torch.tensor([index[name] for name, _ in pairs])
    return PairedSplit(images, torch.full((len(names),), -1), text_image, [caption for _, caption in pairs])


# ---------------------------------------------------------------------- datasets for the loaders
class PairDataset(Dataset):
    """Index ``epoch·N + i`` (from :class:`EpochShuffle`) -> (image i, one of its texts, label)."""

    def __init__(self, split: PairedSplit, tokens: list[list[int]] | None, seed: int) -> None:
        self.split, self.tokens, self.seed = split, tokens, seed

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int):
        split = self.split
        i = index % len(split)
        choice = derive_seed(self.seed, "pair", index) % int(split.text_count[i])
        m = int(split.text_order[int(split.text_start[i]) + choice])
        text = torch.tensor(self.tokens[m]) if self.tokens is not None else split.text_features[m]
        return split.images[i], text, int(split.labels[i])


class TextDataset(Dataset):
    def __init__(self, split: PairedSplit, tokens: list[list[int]] | None) -> None:
        self.split, self.tokens = split, tokens

    def __len__(self) -> int:
        return self.split.text_image.shape[0]

    def __getitem__(self, m: int):
        return torch.tensor(self.tokens[m]) if self.tokens is not None else self.split.text_features[m]


def pad(texts: list[Tensor]) -> Tensor:
    """Stack texts: (B, L) ids padded with 0 to the longest, or (B, Dt) vectors."""
    if texts[0].dtype != torch.long:
        return torch.stack(texts)
    out = torch.zeros(len(texts), max(len(t) for t in texts), dtype=torch.long)
    for i, t in enumerate(texts):
        out[i, : len(t)] = t
    return out


def collate_pairs(batch):
    images, texts, labels = zip(*batch)
    return torch.stack(images), pad(list(texts)), torch.tensor(labels)


# ---------------------------------------------------------------------- the data module
class PairedData(L.LightningDataModule):
    """Image–text (or feature–feature) pairs for :class:`contrast.methods.CrossModal`.

    Args:
        dataset: shapes10_captions (generated, the default), features, coco, cifar10_captions.
        root: data folder; default ``$CONTRAST_DATA_DIR``, else ``./data``.
        batch_size: pairs per device and step; eval_batch_size: for embedding the test split.
        num_workers: DataLoader workers. seed: the pairing of images with captions each epoch.
        train_size, test_size: images of the generated Shapes-10 splits.
        captions_per_image: captions generated per image (Shapes-10, CIFAR-10 templates).
        eval_captions_per_image: of those, how many per test image are queries (all when None).
        max_length: words kept per caption. min_count: a word enters the vocabulary when seen this often.
        image_size: side of the images (COCO / Flickr are resized and centre-cropped to it).
        train_subset, eval_subset: use only n images (CIFAR-10), for quick runs.
    """

    def __init__(
        self,
        dataset: str = "shapes10_captions",
        root: str | None = None,
        batch_size: int = 128,
        eval_batch_size: int = 512,
        num_workers: int = 0,
        seed: int = 0,
        train_size: int = 8000,
        test_size: int = 1000,
        captions_per_image: int = 5,
        eval_captions_per_image: int | None = 2,
        max_length: int = 32,
        min_count: int = 1,
        image_size: int = 32,
        train_subset: int | None = None,
        eval_subset: int | None = None,
    ) -> None:
        super().__init__()
        if dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
        for name, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 2:
                raise ValueError(f"{name} must be an int >= 2 (contrastive losses need negatives), got {value!r}")
        positive = (
            ("train_size", train_size),
            ("test_size", test_size),
            ("captions_per_image", captions_per_image),
            ("max_length", max_length),
            ("min_count", min_count),
            ("image_size", image_size),
        )
        for name, value in positive:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if eval_captions_per_image is not None and not 1 <= eval_captions_per_image <= captions_per_image:
            raise ValueError(
                f"eval_captions_per_image must be None or in [1, captions_per_image={captions_per_image}], "
                f"got {eval_captions_per_image!r}"
            )
        self.save_hyperparameters()
        self.dataset, self.root, self.seed = dataset, root, seed
        self.batch_size, self.eval_batch_size, self.num_workers = batch_size, eval_batch_size, num_workers
        self._splits: dict[bool, PairedSplit] = {}
        self._tokens: dict[bool, list[list[int]] | None] = {}
        self._vocabulary: Vocabulary | None = None
        self._resume: tuple[int, int] | None = None

    # ------------------------------------------------------------------ splits
    def split(self, train: bool) -> PairedSplit:
        if train not in self._splits:
            hp = self.hparams
            if self.dataset == "shapes10_captions":
                n = hp.train_size if train else hp.test_size
                split = shapes_captions(n, hp.captions_per_image, seed=0 if train else 1, size=hp.image_size)
            elif self.dataset == "features":
                split = feature_pairs(self.root, train)
            elif self.dataset == "coco":
                split = caption_files(self.root, train, hp.image_size)
            else:
                subset = hp.train_subset if train else hp.eval_subset
                split = cifar10_captions(self.root, train, hp.captions_per_image, self.seed, subset)
            if not train and hp.eval_captions_per_image is not None and split.captions is not None:
                split = _first_captions(split, hp.eval_captions_per_image)
            self._splits[train] = split
        return self._splits[train]

    @property
    def vocabulary(self) -> Vocabulary | None:
        """The words of the training captions (None when the texts are feature vectors)."""
        if self._vocabulary is None and self.split(True).captions is not None:
            self._vocabulary = Vocabulary.build(self.split(True).captions, min_count=self.hparams.min_count)
        return self._vocabulary

    def tokens(self, train: bool) -> list[list[int]] | None:
        if train not in self._tokens:
            split = self.split(train)
            vocabulary = self.vocabulary
            self._tokens[train] = (
                None
                if split.captions is None
                else [vocabulary.encode(c, self.hparams.max_length) for c in split.captions]
            )
        return self._tokens[train]

    @property
    def image_dim(self) -> int:
        """Width of the image vectors, 0 when the images are pictures."""
        images = self.split(True).images
        return int(images.shape[1]) if images.dim() == 2 else 0

    @property
    def text_dim(self) -> int:
        """Width of the text vectors, 0 when the texts are captions."""
        features = self.split(True).text_features
        return 0 if features is None else int(features.shape[1])

    @property
    def in_channels(self) -> int:
        images = self.split(True).images
        return int(images.shape[1]) if images.dim() == 4 else 3

    @property
    def num_classes(self) -> int:
        labels = self.split(True).labels
        return int(labels.max()) + 1 if bool((labels >= 0).all()) else 0

    @property
    def labelled(self) -> bool:
        return self.num_classes > 0

    def towers(self) -> dict:
        """What the model's towers are built from: the vocabulary and the input widths."""
        vocabulary = self.vocabulary
        return {
            "vocabulary": None if vocabulary is None else vocabulary.words,
            "image_dim": self.image_dim,
            "text_dim": self.text_dim,
            "num_classes": self.num_classes,
        }

    # ------------------------------------------------------------------ loaders
    def train_dataloader(self) -> DataLoader:
        split = self.split(True)
        sampler = training_sampler(len(split), self.batch_size, self.seed, self._resume, "pairs")
        self._resume = None
        return DataLoader(
            PairDataset(split, self.tokens(True), self.seed),
            batch_size=self.batch_size,
            sampler=sampler,
            drop_last=True,
            num_workers=self.num_workers,
            collate_fn=collate_pairs,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=self.num_workers > 0,
        )

    def eval_loaders(self) -> tuple[DataLoader, DataLoader]:
        """(images of the test split, its texts), in order, for embedding."""
        split = self.split(False)
        images = DataLoader(split.images, batch_size=self.eval_batch_size)
        texts = DataLoader(TextDataset(split, self.tokens(False)), batch_size=self.eval_batch_size, collate_fn=pad)
        return images, texts

    # ------------------------------------------------------------------ the place in the epoch and the vocabulary
    def state_dict(self) -> dict:
        vocabulary = None if self.vocabulary is None else self.vocabulary.words
        return {"vocabulary": vocabulary} | loop_position(self.trainer)

    def load_state_dict(self, state: dict) -> None:
        saved = state.get("vocabulary")
        current = None if self.vocabulary is None else self.vocabulary.words
        if saved is not None and saved != current:
            raise ValueError(
                "vocabulary: the checkpoint's vocabulary differs from the one built from these training captions "
                f"({len(saved)} vs {len(current or [])} words); resume with the data the run was started with"
            )
        if "epoch" in state:
            self._resume = (state["epoch"], state["batches"])
            warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch")


def _first_captions(split: PairedSplit, k: int) -> PairedSplit:
    """Keep the first k captions of every image (the test queries)."""
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
