"""The vocabulary and the text encoders: explicit formulas, padding, and bad input."""

from __future__ import annotations

import pytest
import torch

from contrast.models.text import BagOfWords, TextTransformer, Vocabulary, build_text_encoder, tokenize


def test_tokenize_lowercases_and_keeps_letters_and_digits():
    assert tokenize("A small, RED disc (2x) in the top-left.") == [
        "a",
        "small",
        "red",
        "disc",
        "2x",
        "in",
        "the",
        "top",
        "left",
    ]


def test_vocabulary_orders_by_count_then_word_and_applies_min_count():
    vocabulary = Vocabulary.build(["red disc", "red square", "blue disc", "red"], min_count=2)
    assert vocabulary.words == ["<pad>", "<unk>", "red", "disc"]  # red x3, disc x2; blue, square x1 dropped
    assert vocabulary.encode("Blue disc, red", max_length=8) == [1, 3, 2]  # unknown -> 1
    assert vocabulary.encode("!!!", max_length=8) == [1]  # never empty
    assert vocabulary.encode("red red red red", max_length=2) == [2, 2]
    batch = vocabulary.encode_batch(["red", "disc red disc"], max_length=8)
    assert batch.tolist() == [[2, 0, 0], [3, 2, 3]]
    assert Vocabulary(vocabulary.words) == vocabulary


def test_empty_vocabulary_is_refused():
    with pytest.raises(ValueError, match="empty vocabulary"):
        Vocabulary.build(["...", "!?"])
    with pytest.raises(ValueError, match="empty vocabulary.*min_count=3"):
        Vocabulary.build(["red disc"], min_count=3)
    with pytest.raises(ValueError, match="start with"):
        Vocabulary(["red", "disc"])


def test_bag_of_words_is_the_mean_embedding_of_the_words():
    torch.manual_seed(0)
    encoder = BagOfWords(10, width=6).double()
    tokens = torch.tensor([[2, 3, 5, 0, 0], [4, 0, 0, 0, 0]])
    table = encoder.embedding.weight.detach()
    expected = torch.stack([table[[2, 3, 5]].mean(0), table[4]])
    assert torch.allclose(encoder(tokens), expected, atol=1e-12)


def test_transformer_ignores_padding_and_word_order_matters():
    torch.manual_seed(0)
    encoder = TextTransformer(12, width=16, layers=2, heads=4, max_length=8).eval()
    short = torch.tensor([[3, 4, 5]])
    padded = torch.tensor([[3, 4, 5, 0, 0, 0]])
    assert torch.allclose(encoder(short), encoder(padded), atol=1e-5)
    assert not torch.allclose(encoder(short), encoder(torch.tensor([[5, 4, 3]])), atol=1e-4)
    out = encoder(torch.tensor([[3, 0], [4, 5]]))
    assert out.shape == (2, 16) and encoder.feature_dim == 16
    with pytest.raises(ValueError, match="max_length=8"):
        encoder(torch.ones(1, 9, dtype=torch.long))


def test_text_encoder_registry_and_bad_sizes():
    assert isinstance(build_text_encoder("bag", 5, 8), BagOfWords)
    assert isinstance(build_text_encoder("transformer", 5, 8, 16), TextTransformer)
    with pytest.raises(ValueError, match="unknown text_encoder 'lstm'"):
        build_text_encoder("lstm", 5)
    with pytest.raises(ValueError, match="vocab_size must be a positive int"):
        BagOfWords(0)
    with pytest.raises(ValueError, match="divisible by heads"):
        TextTransformer(5, width=10, heads=4)
