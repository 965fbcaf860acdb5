"""The text tower's pieces: a word vocabulary built from the training captions, and two encoders
over padded token ids (no downloads, no pretrained tokenizer).

* :class:`Vocabulary`: lower-cased words (letters and digits), id 0 = padding, id 1 = unknown;
  built from the training captions, saved in the checkpoint as its word list.
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

    def forward(self, tokens: Tensor) -> Tensor:
        if tokens.shape[1] > self.position.shape[0]:
            raise ValueError(f"tokens: at most max_length={self.position.shape[0]} per caption, got {tokens.shape[1]}")
        pad = tokens == 0  # (B, L)
        x = self.embedding(tokens) + self.position[: tokens.shape[1]]  # (B, L, W)
        x = self.encoder(x, src_key_padding_mask=pad)  # (B, L, W)
        keep = (~pad).unsqueeze(-1).to(x.dtype)  # (B, L, 1)
        return self.norm((x * keep).sum(1) / keep.sum(1).clamp_min(1))  # (B, W)


# Name -> constructor(vocab_size, width, max_length) of a text encoder.
TEXT_ENCODERS = {
    "bag": lambda vocab_size, width, max_length: BagOfWords(vocab_size, width),
    "transformer": lambda vocab_size, width, max_length: TextTransformer(vocab_size, width, max_length=max_length),
}


def build_text_encoder(name: str, vocab_size: int, width: int = 256, max_length: int = 32) -> nn.Module:
    if name not in TEXT_ENCODERS:
        raise ValueError(f"unknown text_encoder {name!r}; choose one of {tuple(TEXT_ENCODERS)}")
    return TEXT_ENCODERS[name](vocab_size, width, max_length)
