"""The subword vocabulary (byte-level BPE learnt from the training captions with Hugging Face
tokenizers): unseen words become seen pieces, the same captions give the same vocabulary, the
checkpoint keeps it as JSON, and the two-tower model is built for its size."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from contrast.checks import ConfigError
from contrast.data import PairedData
from contrast.methods import CrossModal
from contrast.models.text import PAD, UNK, UNKNOWN, SubwordVocabulary, Vocabulary, vocabulary_of
from tests.conftest import require

CAPTIONS = ["a small red disc top left", "a large blue square", "a scarlet plus sign, large", "red discs and squares"]


@pytest.fixture(scope="module")
def bpe() -> SubwordVocabulary:
    require("tokenizers")
    return SubwordVocabulary.build(CAPTIONS * 10, vocab_size=300)


def test_an_unseen_word_is_cut_into_seen_pieces_not_unknown(bpe):
    words = Vocabulary.build(CAPTIONS)
    assert words.encode("scarlets squarely", 8) == [UNKNOWN, UNKNOWN]  # the word vocabulary: blind
    pieces = bpe.pieces("scarlets squarely")
    assert "".join(pieces).replace("Ġ", " ").strip() == "scarlets squarely"  # every byte has a piece
    assert UNKNOWN not in bpe.encode("scarlets squarely 🐕", 32)
    seen = set(bpe.tokenizer.get_vocab())
    assert any(p.lstrip("Ġ") in ("scar", "scarlet") for p in pieces) and all(p in seen for p in pieces)


def test_ids_padding_unknown_truncation_and_batches(bpe):
    assert bpe.tokenizer.token_to_id(PAD) == 0 and bpe.tokenizer.token_to_id(UNK) == UNKNOWN
    assert bpe.encode("", 4) == [UNKNOWN]  # at least one id
    assert len(bpe.encode("a small red disc top left and more words", 3)) == 3
    batch = bpe.encode_batch(["red", "a large blue square"], max_length=16)
    assert batch.dtype == torch.long and batch[0, len(bpe.encode("red", 16)) :].eq(0).all()
    assert batch[1].ne(0).sum() == len(bpe.encode("a large blue square", 16))


def test_the_same_captions_give_the_same_vocabulary_and_it_round_trips_as_json(bpe):
    again = SubwordVocabulary.build(CAPTIONS * 10, vocab_size=300)
    assert again == bpe and again.json == bpe.json  # byte for byte: a resumed run rebuilds the same one
    assert vocabulary_of(bpe.record()) == bpe and vocabulary_of(["<pad>", "<unk>", "red"]) == Vocabulary(
        ["<pad>", "<unk>", "red"]
    )
    assert json.loads(bpe.record())["model"]["type"] == "BPE"


def test_bad_subword_input_is_named(bpe):
    with pytest.raises(ConfigError, match="vocab_size must be an int >= 259"):
        SubwordVocabulary.build(CAPTIONS, vocab_size=100)
    with pytest.raises(ValueError, match="vocabulary: not a tokenizers JSON"):
        SubwordVocabulary("{not json")
    with pytest.raises(ValueError, match="empty vocabulary"):
        SubwordVocabulary.build(["", "  "], vocab_size=300)
    with pytest.raises(ConfigError, match="tokenizer must be one of"):
        PairedData(tokenizer="wordpiece")


def test_paired_data_with_bpe_builds_a_tower_of_its_size_and_the_checkpoint_keeps_json(tmp_path, bpe):
    data = PairedData(train_size=64, test_size=16, batch_size=8, tokenizer="bpe", vocab_size=300)
    facts = data.facts()
    assert isinstance(facts["vocabulary"], str)  # the tokenizer's JSON, never a pickled object
    vocabulary = vocabulary_of(facts["vocabulary"])
    model = CrossModal(text_encoder="transformer", text_width=32, embed_dim=8, head_hidden=16, **facts)
    assert model.text_encoder.embedding.num_embeddings == len(vocabulary)
    (images, texts, labels) = next(iter(data.train_dataloader()))
    assert int(texts.max()) < len(vocabulary) and UNKNOWN not in texts.tolist()[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log without a trainer
        loss = model.training_step((images, texts, labels), 0)
    assert torch.isfinite(loss)
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}, path)
    loaded = CrossModal.from_checkpoint(path)
    assert loaded.hparams.vocabulary == facts["vocabulary"]
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name
