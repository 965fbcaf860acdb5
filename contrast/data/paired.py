"""The data module of two-tower training: image–text (or feature–feature) pairs.

Where the pairs come from is :mod:`contrast.data.pair_sources`; how the loaders read them,
:mod:`contrast.data.pair_datasets` (the batch contract is stated there).
"""

from __future__ import annotations

import copy
import dataclasses
import warnings

import lightning as L
import torch
from torch.utils.data import DataLoader

from contrast.checks import ConfigError, boolean, int_at_least, one_of
from contrast.data.pair_datasets import ImageDataset, PairDataset, TextDataset, collate_pairs, pad
from contrast.data.pair_sources import PAIR_SOURCES, PairedSplit, first_captions
from contrast.data.sampler import loop_position, resume_position, training_sampler
from contrast.models.hf import PretrainedTokenizer, hf_name
from contrast.models.open_clip_towers import OpenCLIPTokenizer, open_clip_name
from contrast.models.text import UNKNOWN, SubwordVocabulary, Vocabulary, vocabulary_of
from contrast.views import SplitViews
from contrast.views.recipes import RECIPES

TOKENIZERS = ("words", "bpe", "hf/<name or folder>", "open_clip/<model name>")


def pair_crop(recipe: str | None, image_size: int, seed: int) -> SplitViews | None:
    """The worker stage of the split path for a pair's image: the recipe's crop at ``image_size``. Recipes
    with colour operations or flips are refused: a caption names its image's colours, its left and right."""
    if recipe is None:
        return None
    one_of("recipe", recipe, tuple(RECIPES))
    r = RECIPES[recipe]
    colour = [
        name
        for name, on in (
            ("colour jitter", r.jitter_p > 0 and any(r.jitter)),
            ("grayscale", r.grayscale_p > 0),
            ("blur", r.blur_p > 0),
            ("solarize", r.solarize_p > 0),
            ("flips", r.flip_p > 0),
        )
        if on
    ]
    if colour:
        raise ConfigError(
            "recipe",
            f"recipe {recipe!r} has {', '.join(colour)}, which change what a caption says of its image (its "
            "colours, its left and right); pairs take a crop only (e.g. recipe clip)",
        )
    return SplitViews((r.with_(size=image_size, name=f"{recipe}@{image_size}"),), seed=seed)  # one view


class PairedData(L.LightningDataModule):
    """Image–text (or feature–feature) pairs for :class:`contrast.methods.CrossModal`.

    Args:
        dataset: shapes10_captions (generated, the default), shapes10_relations (generated: one or two
            objects, captions of relations), features, coco, cifar10_captions, webdataset
            (img2dataset's tar shards), csv (open_clip's CSV / TSV), packed (``contrast pack --captions``).
        root: data folder; default ``$CONTRAST_DATA_DIR``, else ``./data``.
        batch_size: pairs per device and step; eval_batch_size: for embedding the test split.
        num_workers: DataLoader workers. seed: the pairing of images with captions each epoch.
        train_size, test_size: images of the generated Shapes-10 splits.
        captions_per_image: captions generated per image (Shapes-10, CIFAR-10 templates).
        eval_captions_per_image: of those, how many per test image are queries (all when None).
        max_length: tokens kept per caption. min_count: a word (a merge, for "bpe") enters the
            vocabulary when seen this often.
        tokenizer: "words" (the words of the training captions; an unseen word is unknown) or
            "bpe" (byte-level BPE pieces learnt from them with Hugging Face ``tokenizers``: an unseen
            word is cut into seen pieces); vocab_size: the pieces of "bpe"; or "hf/<name or folder>":
            a pretrained model's own tokenizer, for its text tower (:mod:`contrast.models.hf`); or
            "open_clip/<model name>": open_clip's tokenizer for that model
            (:mod:`contrast.models.open_clip_towers`).
        image_size: side of the images (COCO / Flickr are resized and centre-cropped to it).
        train_subset, eval_subset: use only n images (CIFAR-10), for quick runs.
        split_file: Karpathy's split JSON for ``coco`` (COCO or Flickr30k layout: ``train`` +
            ``restval`` trained on, ``test`` scored), a path or a name under ``root``.
        eval_root: the test split of ``webdataset`` / ``csv`` data when ``root`` is the training
            split itself (:mod:`contrast.data.shards`); caption_key: the ``.json`` key of a shard
            sample's caption (default: its ``.txt``); csv_img_key, csv_caption_key, csv_separator:
            open_clip's CSV columns and separator.
        skip_corrupt: leave out samples without a readable image or a caption, counted in a warning
            (default: stop, naming them).
        recipe: a crop for the training images (``"clip"``: open_clip's, a random crop of 90-100% of the
            image; any recipe of :data:`contrast.views.recipes.RECIPES` without colour operations or flips), cut at
            ``image_size`` from the whole image by the split path's worker stage (boxes drawn from the
            stored size before one decode, :mod:`contrast.data.pair_datasets`); None (the default): each
            image resized and centre-cropped to ``image_size``, as the test images always are.
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
        tokenizer: str = "words",
        vocab_size: int = 4000,
        eval_root: str | None = None,
        split_file: str | None = None,
        caption_key: str | None = None,
        csv_img_key: str = "filepath",
        csv_caption_key: str = "title",
        csv_separator: str = "\t",
        skip_corrupt: bool = False,
        recipe: str | None = None,
    ) -> None:
        super().__init__()
        if hf_name(tokenizer) is None and open_clip_name(tokenizer) is None:
            one_of("tokenizer", tokenizer, TOKENIZERS)
        if dataset not in PAIR_SOURCES:
            raise ConfigError("dataset", f"dataset must be one of {tuple(PAIR_SOURCES)}, got {dataset!r}")
        for name, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            int_at_least(name, value, 2, why="contrastive losses need negatives")
        positive = (
            ("train_size", train_size),
            ("test_size", test_size),
            ("captions_per_image", captions_per_image),
            ("max_length", max_length),
            ("min_count", min_count),
            ("image_size", image_size),
        )
        for name, value in positive:
            int_at_least(name, value)
        if eval_captions_per_image is not None and not 1 <= eval_captions_per_image <= captions_per_image:
            raise ValueError(
                f"eval_captions_per_image must be None or in [1, captions_per_image={captions_per_image}], "
                f"got {eval_captions_per_image!r}"
            )
        boolean("skip_corrupt", skip_corrupt)
        self._crop = pair_crop(recipe, image_size, seed)
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
            split = PAIR_SOURCES[self.dataset](self.root, train, hp)
            if train and self._crop is not None and hasattr(split.images, "image_size"):  # files, packs: whole
                images = copy.copy(split.images)
                images.image_size = None
                split = dataclasses.replace(split, images=images)
            if not train and hp.eval_captions_per_image is not None and split.captions is not None:
                split = first_captions(split, hp.eval_captions_per_image)
            self._splits[train] = split
        return self._splits[train]

    @property
    def vocabulary(self) -> Vocabulary | SubwordVocabulary | PretrainedTokenizer | None:
        """The words (or BPE pieces) of the training captions (None when the texts are feature vectors)."""
        if self._vocabulary is None and self.split(True).captions is not None:
            hp, captions = self.hparams, self.split(True).captions
            self._vocabulary = (
                PretrainedTokenizer.load(hf_name(hp.tokenizer))
                if hf_name(hp.tokenizer) is not None
                else OpenCLIPTokenizer(open_clip_name(hp.tokenizer))
                if open_clip_name(hp.tokenizer) is not None
                else SubwordVocabulary.build(captions, hp.vocab_size, min_count=hp.min_count)
                if hp.tokenizer == "bpe"
                else Vocabulary.build(captions, min_count=hp.min_count)
            )
        return self._vocabulary

    def use_tokenizer(self, record: dict) -> None:
        """Read the captions with a pretrained model's tokenizer as a checkpoint recorded it (``hf/``,
        ``open_clip/``), not with the folder or hub its name points to."""
        if hf_name(self.hparams.tokenizer) is None and open_clip_name(self.hparams.tokenizer) is None:
            raise ConfigError("tokenizer", f"tokenizer {self.hparams.tokenizer!r} is built from the captions")
        self._vocabulary, self._tokens = vocabulary_of(record), {}

    def tokens(self, train: bool) -> list[list[int]] | None:
        if train not in self._tokens:
            split = self.split(train)
            vocabulary = self.vocabulary
            self._tokens[train] = (
                None
                if split.captions is None
                else [vocabulary.encode(c, self.hparams.max_length) for c in split.captions]
            )
            if not train and self._tokens[train] is not None:
                blind = sum(all(i == UNKNOWN for i in ids) for ids in self._tokens[train])
                if blind:  # they still rank (ties by index), so say how many there are
                    warnings.warn(
                        f"{blind} of {len(split.captions)} test captions are empty or hold only words unseen in "
                        "the training captions: the text tower sees them as one unknown word",
                        stacklevel=2,
                    )
        return self._tokens[train]

    @property
    def image_dim(self) -> int:
        """Width of the image vectors, 0 when the images are pictures."""
        return self.split(True).image_dim

    @property
    def text_dim(self) -> int:
        """Width of the text vectors, 0 when the texts are captions."""
        return self.split(True).text_dim

    @property
    def in_channels(self) -> int:
        return self.split(True).in_channels

    @property
    def num_classes(self) -> int:
        labels = self.split(True).labels
        return int(labels.max()) + 1 if bool((labels >= 0).all()) else 0

    @property
    def labelled(self) -> bool:
        return self.num_classes > 0

    def facts(self) -> dict:
        """What the model needs to know of the data, by its argument names (the one channel: the
        command line links them into the model, ``CrossModal(**data.facts(), ...)`` in Python)."""
        vocabulary = self.vocabulary
        return {
            "in_channels": self.in_channels,
            "num_classes": self.num_classes,
            "vocabulary": None if vocabulary is None else vocabulary.record(),
            "image_dim": self.image_dim,
            "text_dim": self.text_dim,
        }

    # ------------------------------------------------------------------ loaders
    def train_dataloader(self) -> DataLoader:
        split = self.split(True)
        sampler = training_sampler(len(split), self.batch_size, self.seed, self._resume, "pairs")
        self._resume = None
        return DataLoader(
            PairDataset(split, self.tokens(True), self.seed, self.hparams.skip_corrupt, self._crop),
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
        images = DataLoader(ImageDataset(split), batch_size=self.eval_batch_size)
        texts = DataLoader(TextDataset(split, self.tokens(False)), batch_size=self.eval_batch_size, collate_fn=pad)
        return images, texts

    # ------------------------------------------------------------------ the place in the epoch, in checkpoints
    def state_dict(self) -> dict:
        """(epoch, batches of it trained on); the vocabulary is the model's (a hyper-parameter)."""
        return loop_position(self.trainer, self.batch_size)

    def load_state_dict(self, state: dict) -> None:
        if "epoch" in state:
            self._resume = resume_position(state, self.batch_size)
            warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch")
