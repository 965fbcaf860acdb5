"""The text tower's pieces: a vocabulary built from the training captions (words, or subword pieces),
and two encoders over padded token ids trained from scratch (pretrained towers and their tokenizers:
:mod:`contrast.models.hf`).

* :class:`Vocabulary`: lower-cased words (letters and digits), id 0 = padding, id 1 = unknown;
  built from the training captions, saved in the checkpoint as its word list.
* :class:`SubwordVocabulary`: byte-level BPE pieces learnt from the training captions with Hugging
  Face ``tokenizers`` (``pip install tokenizers``), so that a word never seen in training is cut into
  pieces that were, not one unknown id; saved in the checkpoint as the tokenizer's JSON (never a
  pickle). Ids 0 and 1 are padding and unknown here too.
* :class:`BagOfWords`: the mean of the word embeddings (``nn.EmbeddingBag``), order-free and fast.
* :class:`TextTransformer`: a small pre-norm transformer encoder with learned positions, mean-pooled
  over the non-padding tokens.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable

import torch
from torch import Tensor, nn

from contrast.checks import ConfigError, int_at_least

PAD, UNK = "<pad>", "<unk>"
UNKNOWN = 1  # the id of UNK
# Words: runs of letters and digits of any script ("café", "größe", "σκύλος", "小狗"); symbols such
# as emoji are words of their own; punctuation and white space separate words.
_WORD = re.compile(r"[^\W_]+|[^\w\s]", re.UNICODE)


def tokenize(text: str) -> list[str]:
    """Case-folded words: "A small, red disc." -> ["a", "small", "red", "disc"]; "Größe 🐕" -> ["grösse", "🐕"].

    Text is NFKC-normalised first (so composed and decomposed accents are one word); ASCII
    punctuation is dropped, other symbols (emoji) are kept, one per word."""
    words = _WORD.findall(unicodedata.normalize("NFKC", text).casefold())
    return [w for w in words if w[0].isalnum() or unicodedata.category(w[0]).startswith("S") and not w.isascii()]


class Vocabulary:
    """Word <-> id. ``Vocabulary.build(captions)`` counts the words of the training captions and keeps
    those seen at least ``min_count`` times (the ``max_size`` most frequent; ties by word)."""

    def __init__(self, words: Iterable[str]) -> None:
        words = list(words)
        if words[:2] != [PAD, UNK] or len(words) < 3:
            raise ValueError(
                f"a vocabulary's words start with {PAD!r}, {UNK!r} and hold at least one word, got {words[:3]}"
            )
        self.words = words
        self.index = {word: i for i, word in enumerate(words)}

    @classmethod
    def build(cls, captions: Iterable[str], min_count: int = 1, max_size: int | None = None) -> Vocabulary:
        counts = Counter(word for caption in captions for word in tokenize(caption))
        kept = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        if max_size is not None:
            kept = kept[:max_size]
        if not kept:
            raise ValueError(
                f"empty vocabulary: the training captions hold no word seen at least min_count={min_count} times"
            )
        return cls([PAD, UNK, *kept])

    def __len__(self) -> int:
        return len(self.words)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.words == other.words

    def encode(self, text: str, max_length: int) -> list[int]:
        """Ids of the first ``max_length`` words (unknown words -> 1); at least one id."""
        ids = [self.index.get(word, 1) for word in tokenize(text)[:max_length]]
        return ids or [1]

    def encode_batch(self, texts: list[str], max_length: int) -> Tensor:
        """(B, L) ids padded with 0 to the longest caption of the batch (L <= max_length)."""
        return pad_ids([self.encode(text, max_length) for text in texts])

    def record(self) -> list[str]:
        """What the checkpoint keeps (the data's fact ``vocabulary``): the word list."""
        return self.words


class SubwordVocabulary:
    """Subword pieces <-> ids: a byte-level BPE (GPT-2's and CLIP's kind of vocabulary) learnt from
    the training captions with Hugging Face ``tokenizers``. Text is NFKC-normalised and lower-cased,
    split GPT-2's way, and every byte has a piece, so no caption is ever unknown: a word never seen
    in training is cut into pieces that were ("scarlets" -> "scarlet" + "s").

    ``SubwordVocabulary.build(captions, vocab_size)``: the same captions give the same vocabulary
    (BPE's training is deterministic; WordPiece's is not, its ``##`` pieces are numbered in hash
    order, tokenizers issue #1794, hence not offered). Ids 0 and 1 are padding and unknown, as in
    :class:`Vocabulary`; the checkpoint keeps the tokenizer's JSON."""

    def __init__(self, tokenizer_json: str) -> None:
        tokenizers = _tokenizers()
        try:
            self.tokenizer = tokenizers.Tokenizer.from_str(tokenizer_json)
        except Exception as error:  # noqa: BLE001 - the library's own parse errors
            raise ValueError(f"vocabulary: not a tokenizers JSON ({str(error)[:120]})") from None
        if self.tokenizer.token_to_id(PAD) != 0 or self.tokenizer.token_to_id(UNK) != UNKNOWN:
            raise ValueError(f"vocabulary: a subword tokenizer's ids 0 and 1 must be {PAD!r} and {UNK!r}")
        self.json = tokenizer_json

    @classmethod
    def build(cls, captions: Iterable[str], vocab_size: int = 4000, min_count: int = 1) -> SubwordVocabulary:
        tokenizers = _tokenizers()
        alphabet = tokenizers.pre_tokenizers.ByteLevel.alphabet()
        int_at_least("vocab_size", vocab_size, len(alphabet) + 3, why="the 256 bytes, padding, unknown and a merge")
        tokenizer = tokenizers.Tokenizer(tokenizers.models.BPE(unk_token=UNK))
        tokenizer.normalizer = tokenizers.normalizers.Sequence(
            [tokenizers.normalizers.NFKC(), tokenizers.normalizers.Lowercase()]
        )
        tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=True)
        tokenizer.decoder = tokenizers.decoders.ByteLevel()
        trainer = tokenizers.trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_count,
            special_tokens=[PAD, UNK],
            initial_alphabet=alphabet,
            show_progress=False,
        )
        captions = [c for c in captions if c.strip()]
        if not captions:
            raise ValueError("empty vocabulary: the training captions are all empty")
        tokenizer.train_from_iterator(captions, trainer=trainer)
        return cls(tokenizer.to_str())

    def __len__(self) -> int:
        return self.tokenizer.get_vocab_size()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SubwordVocabulary) and self.json == other.json

    def pieces(self, text: str) -> list[str]:
        return self.tokenizer.encode(text, add_special_tokens=False).tokens

    def encode(self, text: str, max_length: int) -> list[int]:
        """Ids of the first ``max_length`` pieces; at least one id (an empty caption: unknown)."""
        return self.tokenizer.encode(text, add_special_tokens=False).ids[:max_length] or [UNKNOWN]

    def encode_batch(self, texts: list[str], max_length: int) -> Tensor:
        return pad_ids([self.encode(text, max_length) for text in texts])

    def record(self) -> str:
        """What the checkpoint keeps (the data's fact ``vocabulary``): the tokenizer's JSON."""
        return self.json


def vocabulary_of(record: list[str] | str | dict):
    """The vocabulary a checkpoint records: a word list, a subword tokenizer's JSON, or a pretrained
    model's tokenizer ({"hf": name, "tokenizer": JSON}, :class:`contrast.models.hf.PretrainedTokenizer`;
    {"open_clip": name}, :class:`contrast.models.open_clip_towers.OpenCLIPTokenizer`)."""
    if isinstance(record, dict) and set(record) == {"open_clip"}:
        from contrast.models.open_clip_towers import OpenCLIPTokenizer

        return OpenCLIPTokenizer(record["open_clip"])
    if isinstance(record, dict):
        from contrast.models.hf import PretrainedTokenizer

        if set(record) != {"hf", "tokenizer"}:
            raise ValueError(
                f"vocabulary: a pretrained tokenizer's record holds 'hf' and 'tokenizer', got {sorted(record)}"
            )
        return PretrainedTokenizer(record["hf"], record["tokenizer"])
    return SubwordVocabulary(record) if isinstance(record, str) else Vocabulary(record)


def _tokenizers():
    try:
        import tokenizers
    except ImportError:
        raise ConfigError(
            "tokenizer", "subword vocabularies need Hugging Face tokenizers: pip install tokenizers"
        ) from None
    return tokenizers


def pad_ids(rows: list[list[int]] | list[Tensor]) -> Tensor:
    """(B, L) token ids, each row padded with 0 (the padding id) to the longest row."""
    out = torch.zeros(len(rows), max(len(r) for r in rows), dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.as_tensor(row)
    return out


def _check_size(name: str, value: int) -> None:
    int_at_least(name, value)


class BagOfWords(nn.Module):
    """(B, L) padded ids -> (B, width): the mean embedding of the words (padding ignored)."""

    def __init__(self, vocab_size: int, width: int = 256) -> None:
        super().__init__()
        _check_size("vocab_size", vocab_size)
        _check_size("width", width)
        self.embedding = nn.EmbeddingBag(vocab_size, width, mode="mean", padding_idx=0)
        self.feature_dim = width

    def forward(self, tokens: Tensor) -> Tensor:
        return self.embedding(tokens)


class TextTransformer(nn.Module):
    """(B, L) padded ids -> (B, width): token + learned position embeddings, ``layers`` pre-norm
    transformer blocks with ``heads`` heads, mean over the non-padding tokens, LayerNorm."""

    def __init__(
        self, vocab_size: int, width: int = 256, layers: int = 2, heads: int = 4, max_length: int = 32
    ) -> None:
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("width", width), ("layers", layers), ("heads", heads)):
            _check_size(name, value)
        _check_size("max_length", max_length)
        if width % heads:
            raise ConfigError("width", f"width ({width}) must be divisible by heads ({heads})")
        self.embedding = nn.Embedding(vocab_size, width, padding_idx=0)
        self.position = nn.Parameter(torch.randn(max_length, width) * 0.02)  # (L_max, W)
        block = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.feature_dim = width
        self.grad_checkpointing = False  # recompute each block in the backward pass (memory for time)

    def forward(self, tokens: Tensor) -> Tensor:
        if tokens.shape[1] > self.position.shape[0]:
            raise ValueError(f"tokens: at most max_length={self.position.shape[0]} per caption, got {tokens.shape[1]}")
        pad = tokens == 0  # (B, L)
        x = self.embedding(tokens) + self.position[: tokens.shape[1]]  # (B, L, W)
        if self.grad_checkpointing and torch.is_grad_enabled():
            from torch.utils.checkpoint import checkpoint

            mask = torch.zeros(pad.shape, dtype=x.dtype, device=x.device).masked_fill(pad, float("-inf"))
            for layer in self.encoder.layers:  # what TransformerEncoder does, a block at a time
                x = checkpoint(layer, x, None, mask, use_reentrant=False)
        else:
            x = self.encoder(x, src_key_padding_mask=pad)  # (B, L, W)
        keep = (~pad).unsqueeze(-1).to(x.dtype)  # (B, L, 1)
        return self.norm((x * keep).sum(1) / keep.sum(1).clamp_min(1))  # (B, W)


# Name -> constructor(vocab_size, width, max_length) of a text encoder.
TEXT_ENCODERS = {
    "bag": lambda vocab_size, width, max_length: BagOfWords(vocab_size, width),
    "transformer": lambda vocab_size, width, max_length: TextTransformer(vocab_size, width, max_length=max_length),
}


def build_text_encoder(
    name: str, vocab_size: int, width: int = 256, max_length: int = 32, pooler: str = "mean", config: dict | None = None
) -> nn.Module:
    """A text encoder of ``TEXT_ENCODERS``, or ``hf/<name or folder>``: a pretrained Hugging Face
    model pooled by ``pooler`` (built from ``config`` when a checkpoint recorded one)."""
    from contrast.models.hf import HFTextTower, hf_name

    if hf_name(name) is not None:
        return HFTextTower(hf_name(name), pooler, config)
    if name not in TEXT_ENCODERS:
        raise ConfigError(
            "text_encoder",
            f"unknown text_encoder {name!r}; choose one of {tuple(TEXT_ENCODERS)} or hf/<name or folder>",
        )
    return TEXT_ENCODERS[name](vocab_size, width, max_length)
