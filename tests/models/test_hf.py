"""Pretrained Hugging Face text towers (``text_encoder: hf/<folder>``): the tower and its tokenizer
against transformers' own tokenizer, padding and model (the three poolers, values and gradients in
float64), training through the data module, a checkpoint that rebuilds without the folder, locking
and gradient checkpointing, and the bad input. Small random models are built from configs and
``save_pretrained``; nothing is downloaded."""

from __future__ import annotations

import shutil
import warnings

import pytest
import torch

transformers = pytest.importorskip("transformers", reason="the hf extra: pip install 'contrast[hf]'")

from contrast.checks import ConfigError  # noqa: E402
from contrast.data import PairedData  # noqa: E402
from contrast.methods import CrossModal  # noqa: E402
from contrast.models.hf import HFTextTower, PretrainedTokenizer  # noqa: E402
from contrast.models.locking import layer_groups  # noqa: E402

WORDS = "a the small large red blue green disc square ring in top bottom left right corner of picture".split()
CAPTIONS = ["a small red disc in the top left corner", "the large blue ring", "a green square, bottom right"]


def _bert(folder, vocab_extra: int = 0, safetensors: bool = True):
    """A 2-layer BERT of width 32 with a WordPiece tokenizer over ``WORDS``, saved in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    backend = Tokenizer(models.WordPiece({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]"
    )
    tokenizer.save_pretrained(folder)  # tokenizer.json: what is read
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=len(vocab) + vocab_extra,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=40,
    )
    model = transformers.BertModel(config)
    if safetensors:
        model.save_pretrained(folder)
    else:  # the old pickle format, which a careless loader would unpickle
        config.save_pretrained(folder)
        torch.save(model.state_dict(), folder / "pytorch_model.bin")
    return folder


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return _bert(tmp_path_factory.mktemp("bert"))


@pytest.mark.parametrize("pooler", ["cls", "mean", "last", "pooler"])
def test_the_tower_is_the_model_on_its_own_tokenizers_ids_values_and_gradients(bert, pooler):
    reference = transformers.BertModel.from_pretrained(bert).double()
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(bert)
    assert hf_tokenizer.convert_ids_to_tokens(hf_tokenizer("a small red disc")["input_ids"]) == [
        "[CLS]",
        "a",
        "small",
        "red",
        "disc",
        "[SEP]",
    ]  # a real vocabulary, not all unknown
    hf_tokens = hf_tokenizer(
        CAPTIONS, padding=True, truncation=True, max_length=6, return_tensors="pt", return_token_type_ids=False
    )
    mask = hf_tokens["attention_mask"]  # (B, L), 1 on the tokens
    output = reference(**hf_tokens)
    hidden = output.last_hidden_state  # (B, L, H)
    if pooler == "pooler":  # BERT's dense + tanh over [CLS], open_clip's cls_pooler
        expected = output.pooler_output
    elif pooler == "cls":
        expected = hidden[:, 0]
    elif pooler == "last":  # the [SEP] of each caption
        expected = torch.stack([hidden[i, int(mask[i].sum()) - 1] for i in range(len(CAPTIONS))])
    else:
        expected = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    expected.pow(2).sum().backward()

    tower = HFTextTower(str(bert), pooler).double()
    ids = PretrainedTokenizer.load(str(bert)).encode_batch(CAPTIONS, max_length=6)  # (B, L), 0 = padding
    assert torch.equal(ids, torch.where(mask.bool(), hf_tokens["input_ids"] + 1, 0))  # the same ids, shifted
    got = tower(ids)
    got.pow(2).sum().backward()
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    for (name, a), b in zip(reference.named_parameters(), tower.transformer.parameters()):
        if a.grad is None:  # the pooler's dense layer: not on the path of either
            assert b.grad is None, name
            continue
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-10, atol=1e-12, msg=name)


def test_paired_data_and_crossmodal_train_and_the_checkpoint_needs_no_folder(bert, tmp_path):
    folder = shutil.copytree(bert, tmp_path / "bert")
    data = PairedData(train_size=32, test_size=8, batch_size=8, tokenizer=f"hf/{folder}", max_length=12)
    facts = data.facts()
    assert set(facts["vocabulary"]) == {"hf", "tokenizer"} and isinstance(facts["vocabulary"]["tokenizer"], str)
    model = CrossModal(text_encoder=f"hf/{folder}", text_pooler="cls", embed_dim=8, head_hidden=16, **facts)
    images, texts, labels = next(iter(data.train_dataloader()))
    assert texts.shape[1] <= 12 and bool((texts[:, 0] == 3).all())  # [CLS] (id 2) first, shifted by one
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log without a trainer
        loss = model.training_step((images, texts, labels), 0)
    loss.backward()
    assert torch.isfinite(loss)
    unused = {id(p) for p in model.text_encoder.transformer.pooler.parameters()}  # BERT's pooler: not on the path
    for name, p in model.text_encoder.named_parameters():
        assert (p.grad is not None) == (id(p) not in unused), name
    assert model.text_encoder.transformer.embeddings.word_embeddings.weight.grad.abs().sum() > 0
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}, path)
    shutil.rmtree(folder)  # rebuilt from the recorded configuration and tokenizer
    loaded = CrossModal.from_checkpoint(path)
    model.eval()
    with torch.no_grad():
        tokens = loaded.tokenize(CAPTIONS)
        assert torch.equal(tokens, model.tokenize(CAPTIONS))
        torch.testing.assert_close(loaded.embed_texts(tokens), model.embed_texts(tokens), rtol=0, atol=0)


def test_locking_all_but_the_last_block_and_gradient_checkpointing(bert):
    tokenizer = PretrainedTokenizer.load(str(bert))
    model = CrossModal(
        backbone="tiny_cnn",
        text_encoder=f"hf/{bert}",
        freeze_text=True,
        text_unlocked_layers=1,
        vocabulary=tokenizer.record(),
        embed_dim=8,
        head_hidden=16,
    )
    groups = layer_groups(model.text_encoder)
    bert_model = model.text_encoder.transformer
    assert groups[0] == [bert_model.embeddings] and len(groups) == 3  # embeddings, block 1, block 2 (+ pooler)
    trained = {id(p) for part in groups[-1] for p in part.parameters()}
    assert trained == {id(p) for p in bert_model.encoder.layer[1].parameters()} | {
        id(p) for p in bert_model.pooler.parameters()
    }
    assert [p.requires_grad for p in model.text_encoder.parameters()] == [
        id(p) in trained for p in model.text_encoder.parameters()
    ]
    with pytest.raises(ConfigError, match="text_unlocked_layers is 4, but the tower has 3 layer groups"):
        CrossModal(text_encoder=f"hf/{bert}", freeze_text=True, text_unlocked_layers=4, vocabulary=tokenizer.record())

    plain = HFTextTower(str(bert)).double()
    checkpointed = HFTextTower(str(bert)).double()
    checkpointed.set_grad_checkpointing(True)
    model = checkpointed.transformer
    assert getattr(model, "is_activation_checkpointing", None) or model.is_gradient_checkpointing
    plain.train(), checkpointed.train()  # dropout is 0.1 in BertConfig: compare without it
    for tower in (plain, checkpointed):
        for module in tower.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
    ids = tokenizer.encode_batch(CAPTIONS, 12)
    for tower in (plain, checkpointed):
        tower(ids).pow(2).sum().backward()
    for (name, a), b in zip(plain.named_parameters(), checkpointed.parameters()):
        if a.grad is not None:
            torch.testing.assert_close(b.grad, a.grad, rtol=1e-10, atol=1e-12, msg=name)


def test_bad_input_is_one_line_naming_the_option(bert, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match=r"text_encoder hf/no-such/model: model not found: .*HF_HUB_OFFLINE") as error:
        HFTextTower("no-such/model")
    assert error.value.argument == "text_encoder" and "\n" not in str(error.value)
    with pytest.raises(ConfigError, match="tokenizer hf/no-such/model: tokenizer not found"):
        PairedData(tokenizer="hf/no-such/model").facts()
    words = ["<pad>", "<unk>", "red"]
    with pytest.raises(ConfigError, match="set --data.tokenizer hf/"):
        CrossModal(text_encoder=f"hf/{bert}", vocabulary=words)
    record = PretrainedTokenizer.load(str(bert)).record()
    with pytest.raises(ConfigError, match="set --model.init_args.text_encoder hf/"):
        CrossModal(text_encoder="bag", vocabulary=record)
    small = _bert(tmp_path / "small", vocab_extra=-3)  # its embeddings hold fewer ids than its tokenizer gives
    with pytest.raises(ConfigError, match="the tokenizer does not fit the model"):
        CrossModal(text_encoder=f"hf/{small}", vocabulary=PretrainedTokenizer.load(str(small)).record())
    pickled = _bert(tmp_path / "pickled", safetensors=False)  # pytorch_model.bin only: never unpickled
    assert not list(pickled.glob("*.safetensors"))
    with pytest.raises(ConfigError, match="model not found: a local folder that does not hold one"):
        HFTextTower(str(pickled))
    with pytest.raises(ConfigError, match="text_pooler must be one of"):
        HFTextTower(str(bert), "max")
    t5 = tmp_path / "t5"
    transformers.T5Model(
        transformers.T5Config(vocab_size=40, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2)
    ).save_pretrained(t5)
    with pytest.raises(ConfigError, match="an encoder-decoder model"):
        HFTextTower(str(t5))
