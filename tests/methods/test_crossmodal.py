"""CrossModal: the objectives together, towers from the data, checkpoints that load back, a frozen
image tower, bad settings; and a short fit that learns to retrieve."""

from __future__ import annotations

import json
import warnings

import lightning as L
import pytest
import torch

from contrast.checkpoint import CheckpointError
from contrast.data import PairedData
from contrast.eval import RetrievalCallback
from contrast.eval.crossmodal import retrieval_scores
from contrast.methods import CrossModal

VOCABULARY = ["<pad>", "<unk>", "red", "blue", "disc", "square", "small"]


def _batch(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    texts = torch.randint(1, len(VOCABULARY), (n, 5), generator=g)
    texts[:, 3:] = 0  # padding
    return images, texts, torch.arange(n) % 4


@pytest.mark.parametrize(
    "objectives",
    [{"clip": 1.0}, {"triplet": 1.0}, {"acmr": 1.0}, {"clip": 1.0, "triplet": 0.5, "acmr": 0.2}],
    ids=lambda o: "+".join(o),
)
@pytest.mark.parametrize("text_encoder", ["bag", "transformer"])
def test_every_objective_trains_every_part(objectives, text_encoder):
    model = CrossModal(
        backbone="tiny_cnn",
        text_encoder=text_encoder,
        embed_dim=16,
        head_hidden=32,
        text_width=16,
        objectives=objectives,
        vocabulary=VOCABULARY,
        num_classes=4,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log without a trainer
        loss = model.training_step(_batch(), 0)
    loss.backward()
    assert torch.isfinite(loss)
    parts = [model.backbone, model.image_head, model.text_encoder, model.text_head]
    if "acmr" in objectives:
        parts += [model.label_classifier, model.modality_classifier]
    for part in parts:
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters()), part
    assert (model.temperature.log_tau.grad is not None) == ("clip" in objectives)


def test_clip_objective_is_the_clip_loss_of_the_two_embeddings():
    from contrast.losses import clip_loss

    model = CrossModal(
        backbone="tiny_cnn",
        embed_dim=16,
        head_hidden=32,
        text_width=16,
        learn_temperature=False,
        temperature=0.1,
        vocabulary=VOCABULARY,
    )
    images, texts, labels = _batch()
    model.eval()  # BatchNorm: the same statistics in both forwards
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loss = model.training_step((images, texts, labels), 0)
    expected = clip_loss(model.embed_images(images), model.embed_texts(texts), 0.1)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_feature_vectors_go_through_mlp_towers():
    model = CrossModal(
        backbone="none", objectives={"acmr": 1.0}, embed_dim=8, head_hidden=16, image_dim=12, text_dim=5, num_classes=3
    )
    assert isinstance(model.backbone, torch.nn.Identity) and isinstance(model.text_encoder, torch.nn.Identity)
    image, text = model.embed_images(torch.randn(4, 12)), model.embed_texts(torch.randn(4, 5))
    assert image.shape == text.shape == (4, 8)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"embed_dim": 0}, "embed_dim must be a positive int"),
        ({"objectives": {"cca": 1.0}}, "objectives must map some of"),
        ({"objectives": {}}, "objectives must map some of"),
        ({"objectives": {"clip": -1.0}}, "the weight of 'clip'"),
        ({"mining": "easy"}, "mining must be one of"),
        ({"temperature": 0.001}, "temperature must lie in"),
        ({"margin": float("nan")}, "margin must be a finite number"),
        ({"text_encoder": "lstm"}, None),  # the text encoder is built with the towers
    ],
)
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message or "unknown text_encoder 'lstm'"):
        CrossModal(backbone="tiny_cnn", vocabulary=VOCABULARY, **kwargs)


def test_towers_must_fit_the_data():
    with pytest.raises(ValueError, match="set --model.init_args.backbone none"):
        CrossModal(backbone="tiny_cnn", image_dim=8, text_dim=4)
    with pytest.raises(ValueError, match="backbone 'none' takes image feature vectors"):
        CrossModal(backbone="none", vocabulary=VOCABULARY)
    with pytest.raises(ValueError, match="either captions .* or vectors"):
        CrossModal(backbone="tiny_cnn")
    with pytest.raises(ValueError, match="'acmr' needs labelled pairs"):
        CrossModal(backbone="tiny_cnn", vocabulary=VOCABULARY, objectives={"acmr": 1.0})
    with pytest.raises(ValueError, match="backbone 'none' is for methods that take feature vectors"):
        from contrast.methods import SimCLR

        SimCLR(backbone="none")


def _fit(tmp_path, max_epochs=1, train_size=256, **model_kwargs):
    data = PairedData(train_size=train_size, test_size=64, batch_size=32, captions_per_image=3)
    model = CrossModal(**data.facts(), backbone="tiny_cnn", embed_dim=32, head_hidden=64, text_width=32, **model_kwargs)
    callback = RetrievalCallback(every_n_epochs=1)
    trainer = L.Trainer(
        max_epochs=max_epochs,
        default_root_dir=tmp_path,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[callback],
    )
    trainer.fit(model, data)
    return trainer, model, data, callback


def test_a_checkpoint_loads_back_without_the_data(tmp_path):
    trainer, model, data, callback = _fit(tmp_path, objectives={"clip": 1.0, "acmr": 0.5})
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    loaded = CrossModal.from_checkpoint(path)
    facts = data.facts()
    assert {k: loaded.hparams[k] for k in facts} == {k: model.hparams[k] for k in facts} == facts
    model.eval()
    images, texts, _ = next(iter(data.train_dataloader()))
    assert torch.allclose(loaded.embed_images(images), model.embed_images(images), atol=1e-6)
    assert torch.allclose(loaded.embed_texts(texts), model.embed_texts(texts), atol=1e-6)
    assert retrieval_scores(loaded, data) == pytest.approx(callback.results)
    assert float(loaded.tau()) == pytest.approx(float(model.tau()))
    # a checkpoint of another method is not a CrossModal checkpoint
    from contrast.methods import SimCLR

    other = SimCLR(backbone="tiny_cnn", projector_hidden=32, projector_dim=16)
    torch.save({"state_dict": other.state_dict(), "hyper_parameters": dict(other.hparams)}, tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match="not a CrossModal checkpoint"):
        CrossModal.from_checkpoint(tmp_path / "other.ckpt")


def test_a_frozen_image_encoder_does_not_change(tmp_path):
    from contrast.methods import SimCLR

    pretrained = SimCLR(backbone="tiny_cnn", projector_hidden=32, projector_dim=16)
    torch.save(
        {"state_dict": pretrained.state_dict(), "hyper_parameters": dict(pretrained.hparams)}, tmp_path / "simclr.ckpt"
    )
    before = {k: v.clone() for k, v in pretrained.backbone.state_dict().items()}
    _, model, _, _ = _fit(tmp_path, image_weights=str(tmp_path / "simclr.ckpt"), freeze_image=True)
    after = model.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BatchNorm statistics
    with pytest.raises(ValueError, match="image_weights: .* holds a 'tiny_cnn' backbone"):
        CrossModal(backbone="resnet18", image_weights=str(tmp_path / "simclr.ckpt"))


def test_a_short_fit_learns_to_retrieve(tmp_path):
    _, _, _, callback = _fit(tmp_path, max_epochs=3, train_size=2048, lr=3e-3)
    for direction in ("i2t", "t2i"):
        assert callback.results[f"{direction}/R@5"] > callback.initial[f"{direction}/R@5"] + 15


def test_the_image_tower_starts_from_an_exported_backbone(tmp_path):
    from contrast.export import export_backbone
    from contrast.methods import SimCLR

    recipe = {"mean": [0.4, 0.5, 0.6], "std": [0.2, 0.25, 0.3]}  # the data's fact, as the command line links it
    pretrained = SimCLR(backbone="tiny_cnn", projector_hidden=32, projector_dim=16, normalization=recipe)
    torch.save(
        {"state_dict": pretrained.state_dict(), "hyper_parameters": dict(pretrained.hparams)}, tmp_path / "simclr.ckpt"
    )
    export_backbone(str(tmp_path / "simclr.ckpt"), str(tmp_path / "exported"))
    model = CrossModal(backbone="tiny_cnn", image_weights=str(tmp_path / "exported"), vocabulary=VOCABULARY)
    for key, value in pretrained.backbone.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[key], value), key
    assert all(p.requires_grad for p in model.backbone.parameters())  # fine-tuned unless freeze_image
    assert model.hparams.normalization == recipe  # the tower is fed pixels as in its pretraining


def test_towers_of_other_data_are_named():
    """The one checkpoint-fits check (``retrieve`` uses it) names the facts that differ."""
    from contrast.fits import checkpoint_differences

    data = PairedData(train_size=32, test_size=8, batch_size=4, captions_per_image=2)
    model = CrossModal(**data.facts(), backbone="tiny_cnn")
    checkpoint = {"hyper_parameters": dict(model.hparams), "state_dict": model.state_dict()}
    assert checkpoint_differences(checkpoint, data=data) == []  # its own data: accepted
    other = dict(model.hparams, vocabulary=[*model.hparams.vocabulary, "green"], num_classes=3)
    differences = checkpoint_differences({"hyper_parameters": other}, data=data)
    assert [line.split(" takes")[0] for line in differences] == ["its label classifier", "its text tower"]
    assert f"a vocabulary of {len(other['vocabulary'])} words, but dataset 'shapes10_captions' has" in differences[1]


def test_a_checkpoint_of_the_earlier_layout_still_loads():
    """Checkpoints written before the data's facts were hyper-parameters kept them under
    ``crossmodal_towers`` (and had the probe arguments of the image methods' base)."""
    from contrast.fits import checkpoint_differences

    data = PairedData(train_size=32, test_size=8, batch_size=4, captions_per_image=2)
    model = CrossModal(**data.facts(), backbone="tiny_cnn", embed_dim=16, head_hidden=32, text_width=16).eval()
    facts = ("vocabulary", "image_dim", "text_dim", "num_classes")
    hparams = {k: v for k, v in model.hparams.items() if k not in facts} | {"num_classes": 0, "probe_lr": 0.1}
    old = {
        "state_dict": model.state_dict(),
        "hyper_parameters": hparams,
        "crossmodal_towers": {k: model.hparams[k] for k in facts},
    }
    loaded = CrossModal.from_checkpoint(old)
    images, texts, _ = next(iter(data.train_dataloader()))
    torch.testing.assert_close(loaded.embed_texts(texts), model.embed_texts(texts))
    torch.testing.assert_close(loaded.embed_images(images), model.embed_images(images))
    assert checkpoint_differences(old, model=model) == []  # a resumed run of the old layout fits
    assert checkpoint_differences(old, data=data) == []


def test_export_writes_safetensors_and_json_and_from_pretrained_embeds_the_same(tmp_path, capsys):
    from contrast.cli import main

    torch.manual_seed(0)
    data = PairedData(train_size=32, test_size=8, batch_size=8, tokenizer="bpe", vocab_size=300)
    model = CrossModal(backbone="tiny_cnn", text_encoder="transformer", text_width=16, embed_dim=8, **data.facts())
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}, path)
    assert main(["export", "--ckpt", str(path), "--out", str(tmp_path / "towers")]) == 0
    assert "CrossModal.from_pretrained" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "towers").iterdir()) == ["config.json", "model.safetensors"]
    config = json.loads((tmp_path / "towers/config.json").read_text())
    assert config["hyper_parameters"]["vocabulary"] == data.facts()["vocabulary"]  # the tokenizer's JSON
    assert config["hyper_parameters"]["normalization"] == model.hparams.normalization
    loaded = CrossModal.from_pretrained(tmp_path / "towers")
    model.eval()
    images, texts, _ = next(iter(data.train_dataloader()))
    with torch.no_grad():
        assert torch.equal(loaded.embed_images(images), model.embed_images(images))
        assert torch.equal(
            loaded.embed_texts(loaded.tokenize(["a red disc"])), model.embed_texts(model.tokenize(["a red disc"]))
        )
    (tmp_path / "towers/config.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValueError, match="not a contrast.CrossModal export"):
        CrossModal.from_pretrained(tmp_path / "towers")
