"""open_clip models as both towers: a randomly initialised open_clip model, its weights saved and
loaded by contrast, embeds images and captions as open_clip's own ``encode_image`` / ``encode_text``
(its tokenizer's ids too), trains three steps with the losses of open_clip's ``ClipLoss``, and a
checkpoint rebuilds it; bad weights files and mismatched settings are refused by name."""

from __future__ import annotations

import warnings

import pytest
import torch

open_clip = pytest.importorskip("open_clip", reason="the clip extra: pip install 'contrast[clip]'")

from safetensors.torch import save_file  # noqa: E402

from contrast.checks import ConfigError  # noqa: E402
from contrast.methods import CrossModal  # noqa: E402

CAPTIONS = ["a photo of a cat", "a small red disc in the top left corner", "two dogs", "an airplane over the sea"]


def _saved(name, tmp_path):
    torch.manual_seed(0)
    reference = open_clip.create_model(name, pretrained=None)
    path = tmp_path / f"{name}.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(path))
    return reference, path


def _ours(name, path, **kwargs):
    return CrossModal(
        backbone=f"open_clip/{name}",
        text_encoder=f"open_clip/{name}",
        open_clip_weights=str(path),
        vocabulary={"open_clip": name},
        **kwargs,
    )


@pytest.mark.parametrize("name", ["RN50", "ViT-B-32"])
def test_the_towers_embed_as_open_clip_and_a_checkpoint_rebuilds_them(name, tmp_path):
    reference, path = _saved(name, tmp_path)
    model = _ours(name, path).eval()
    reference.eval()
    images = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    tokens = model.tokenize(CAPTIONS)
    theirs = open_clip.get_tokenizer(name)(CAPTIONS)  # (B, 77), padded with 0
    assert torch.equal(tokens, theirs[:, : tokens.shape[1]]) and not theirs[:, tokens.shape[1] :].any()
    assert model.hparams.embed_dim == reference.visual.output_dim
    assert model.hparams.normalization["mean"] == list(open_clip.OPENAI_DATASET_MEAN)
    with torch.no_grad():
        torch.testing.assert_close(model.embed_images(images), reference.encode_image(images), rtol=0, atol=1e-5)
        torch.testing.assert_close(model.embed_texts(tokens), reference.encode_text(theirs), rtol=0, atol=1e-5)
        checkpoint = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}
        loaded = CrossModal.from_checkpoint(checkpoint)  # open_clip's configuration of the name, then the weights
        torch.testing.assert_close(loaded.embed_texts(tokens), model.embed_texts(tokens), rtol=0, atol=0)


@pytest.mark.parametrize("name", ["RN50", pytest.param("ViT-B-32", marks=pytest.mark.slow)])
def test_three_training_steps_give_open_clips_losses(name, tmp_path):
    from open_clip.loss import ClipLoss

    reference, path = _saved(name, tmp_path)
    model = _ours(name, path, embed_dim=reference.visual.output_dim)
    model.train(), reference.train()
    g = torch.Generator().manual_seed(2)
    images = torch.randn(4, 3, 224, 224, generator=g)
    tokens, theirs = model.tokenize(CAPTIONS), open_clip.get_tokenizer(name)(CAPTIONS)
    ours_sgd = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05)
    their_sgd = torch.optim.SGD(reference.parameters(), lr=0.05)
    criterion = ClipLoss()
    for _ in range(3):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # self.log without a trainer
            ours = model.training_step((images, tokens, torch.zeros(4, dtype=torch.long)), 0)
        ours_sgd.zero_grad()
        ours.backward()
        ours_sgd.step()
        image, text = reference.encode_image(images, normalize=True), reference.encode_text(theirs, normalize=True)
        loss = criterion(image, text, reference.logit_scale.exp())
        their_sgd.zero_grad()
        loss.backward()
        their_sgd.step()
        assert ours.item() == pytest.approx(loss.item(), abs=1e-5)


def test_bad_weights_and_settings_are_refused_by_name(tmp_path):
    with pytest.raises(ConfigError, match="backbone open_clip/ViT-Z-99: not one of open_clip's models") as error:
        _ours("ViT-Z-99", tmp_path / "none.safetensors")
    assert error.value.argument == "backbone"
    with pytest.raises(ConfigError, match="open_clip_weights .*: no such file"):
        _ours("RN50", tmp_path / "none.safetensors")

    class Payload:  # a pickle that would run code on loading
        def __reduce__(self):
            return (print, ("this must never run",))

    pickled = tmp_path / "weights.pt"
    torch.save({"state_dict": Payload()}, pickled)
    with pytest.raises(ConfigError, match="not a safetensors or weights-only file"):
        _ours("RN50", pickled)
    other = tmp_path / "other.safetensors"
    save_file({"visual.proj": torch.zeros(3)}, str(other))
    with pytest.raises(ConfigError, match="not the weights of open_clip/RN50"):
        _ours("RN50", other)
    _, path = _saved("RN50", tmp_path)
    with pytest.raises(ConfigError, match="open_clip towers come as a pair"):
        CrossModal(backbone="open_clip/RN50", open_clip_weights=str(path), vocabulary={"open_clip": "RN50"})
    with pytest.raises(ConfigError, match="set --data.tokenizer open_clip/RN50"):
        CrossModal(backbone="open_clip/RN50", text_encoder="open_clip/RN50", vocabulary=["<pad>", "<unk>", "cat"])
    with pytest.raises(ConfigError, match="open_clip_weights are the weights of an open_clip/<name> backbone"):
        CrossModal(backbone="tiny_cnn", open_clip_weights=str(path), vocabulary=["<pad>", "<unk>", "cat"])


def test_zero_shot_class_weights_of_an_open_clip_tower_are_open_clips(tmp_path):
    """contrast's class embeddings (templates averaged, renormalised) through the open_clip towers equal
    open_clip's ``build_zero_shot_classifier`` on open_clip's own model with its own tokenizer."""
    from contrast.eval.zeroshot import class_weights

    reference, path = _saved("RN50", tmp_path)
    model = _ours("RN50", path).eval()
    reference.eval()
    classes, templates = ["cat", "dog", "airplane"], ["a photo of a {c}.", "a blurry photo of the {c}."]
    theirs = open_clip.build_zero_shot_classifier(
        reference, open_clip.get_tokenizer("RN50"), classes, [lambda c, t=t: t.format(c=c) for t in templates]
    )
    with torch.no_grad():
        ours = class_weights(lambda prompts: model.embed_texts(model.tokenize(prompts)), classes, templates)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)


def test_a_trained_open_clip_pair_exports_in_open_clips_layout_and_open_clip_reads_it(tmp_path):
    """``contrast export`` of open_clip towers also writes open_clip_config.json + open_clip_model.safetensors:
    open_clip's ``local-dir:`` loader gives the same embeddings, and the learned temperature as its scale."""
    reference, path = _saved("RN50", tmp_path)
    model = _ours("RN50", path)
    model.train()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log without a trainer
        model.training_step((torch.randn(4, 3, 224, 224), model.tokenize(CAPTIONS), torch.zeros(4)), 0).backward()
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05).step()  # no longer the start
    model.eval()
    model.save_pretrained(tmp_path / "export")
    theirs, _, _ = open_clip.create_model_and_transforms(f"local-dir:{tmp_path / 'export'}")
    theirs.eval()
    images = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(theirs.encode_image(images), model.embed_images(images), rtol=0, atol=1e-5)
        text = open_clip.get_tokenizer("RN50")(CAPTIONS)
        torch.testing.assert_close(
            theirs.encode_text(text), model.embed_texts(model.tokenize(CAPTIONS)), rtol=0, atol=1e-5
        )
        assert float(theirs.logit_scale.exp()) == pytest.approx(1 / float(model.tau()), rel=1e-5)
    again = CrossModal.from_pretrained(tmp_path / "export")
    with torch.no_grad():
        torch.testing.assert_close(again.embed_images(images), model.embed_images(images), rtol=0, atol=0)
