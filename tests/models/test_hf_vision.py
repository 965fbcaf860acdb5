"""Hugging Face vision towers (``backbone: hf/<folder>`` of a CrossModal) and the export of a pair of
Hugging Face towers as HF's own ``VisionTextDualEncoderModel``: the tower against the model itself (its
three poolers, values and gradients in float64), a pair that trains and rebuilds from its checkpoint
without the folders, the export that transformers loads back with equal embeddings, and the bad input.
Small random ViT, CLIP-vision and BERT models are built from configs and ``save_pretrained``; nothing is
downloaded."""

from __future__ import annotations

import json
import math
import shutil
import warnings

import pytest
import torch

transformers = pytest.importorskip("transformers", reason="the hf extra: pip install 'contrast[hf]'")

from contrast.checks import ConfigError  # noqa: E402
from contrast.cli import main  # noqa: E402
from contrast.data import PairedData  # noqa: E402
from contrast.methods import CrossModal  # noqa: E402
from contrast.methods.pretrained import hf_dual_encoder_ready  # noqa: E402
from contrast.models.hf import HFVisionTower  # noqa: E402
from contrast.models.locking import layer_groups  # noqa: E402
from tests.models.test_hf import CAPTIONS, _bert  # noqa: E402

SIDE = 32


def _vision(folder, kind: str = "vit", normalization: bool = True):
    """A 2-layer ViT (or CLIP vision model) of width 32 over 32-px images in 8-px patches, saved in
    ``folder`` with an image processor's normalisation."""
    torch.manual_seed(1)
    settings = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    settings |= dict(image_size=SIDE, patch_size=8, num_channels=3)
    if kind == "vit":
        model = transformers.ViTModel(transformers.ViTConfig(**settings))
    else:
        model = transformers.CLIPVisionModel(transformers.CLIPVisionConfig(**settings))
    model.save_pretrained(folder)
    if normalization:
        (folder / "preprocessor_config.json").write_text(
            json.dumps({"image_mean": [0.4, 0.45, 0.5], "image_std": [0.2, 0.25, 0.3]})
        )
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    base = tmp_path_factory.mktemp("hf")
    return {"vit": _vision(base / "vit"), "clip": _vision(base / "clip", "clip"), "bert": _bert(base / "bert")}


@pytest.mark.parametrize("kind", ["vit", "clip"])
@pytest.mark.parametrize("pooler", ["pooler", "cls", "mean"])
def test_the_tower_is_the_model_values_and_gradients(folders, kind, pooler):
    reference = transformers.AutoModel.from_pretrained(folders[kind]).double()
    pixels = torch.randn(3, 3, SIDE, SIDE, dtype=torch.float64)
    output = reference(pixel_values=pixels)
    expected = {
        "pooler": output.pooler_output,  # ViT: tanh(dense(CLS)); CLIP: the final norm of CLS
        "cls": output.last_hidden_state[:, 0],
        "mean": output.last_hidden_state[:, 1:].mean(1),
    }[pooler]
    expected.pow(2).sum().backward()
    tower = HFVisionTower(str(folders[kind]), pooler).double()
    got = tower(pixels)
    got.pow(2).sum().backward()
    assert tower.feature_dim == 32 and tower.size == SIDE
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    for (name, a), b in zip(reference.named_parameters(), tower.transformer.parameters()):
        assert (a.grad is None) == (b.grad is None), name
        if a.grad is not None:
            torch.testing.assert_close(b.grad, a.grad, rtol=1e-10, atol=1e-12, msg=name)


def _pair(folders, **settings):
    data = PairedData(
        train_size=32, test_size=8, batch_size=8, image_size=SIDE, tokenizer=f"hf/{folders['bert']}", max_length=12
    )
    model = CrossModal(
        backbone=f"hf/{folders['vit']}",
        text_encoder=f"hf/{folders['bert']}",
        **{"image_pooler": "pooler", "text_pooler": "pooler", "projection": "linear", "embed_dim": 8} | settings,
        **data.facts(),
    )
    return data, model


def test_a_pair_of_hf_towers_trains_and_its_checkpoint_needs_no_folders(folders, tmp_path):
    copies = {k: shutil.copytree(v, tmp_path / k) for k, v in folders.items()}
    data, model = _pair(copies)
    assert model.hparams.normalization == {"mean": [0.4, 0.45, 0.5], "std": [0.2, 0.25, 0.3]}  # the folder's
    assert isinstance(model.image_head, torch.nn.Linear) and model.image_head.bias is None  # CLIP's projection
    images, texts, labels = next(iter(data.train_dataloader()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log without a trainer
        loss = model.training_step((images, texts, labels), 0)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in model.backbone.parameters())  # every ViT weight on the pooler's path
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}, path)
    for folder in copies.values():
        shutil.rmtree(folder)  # rebuilt from the recorded configurations, tokenizer and normalisation
    loaded = CrossModal.from_checkpoint(path)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded.embed_images(images), model.embed_images(images), rtol=0, atol=0)
        tokens = loaded.tokenize(CAPTIONS)
        torch.testing.assert_close(loaded.embed_texts(tokens), model.embed_texts(tokens), rtol=0, atol=0)


def test_the_export_is_hfs_dual_encoder_and_transformers_reads_it_back(folders, tmp_path):
    """``save_pretrained`` (``contrast export``) of HF towers pooled and projected as the dual encoder also
    writes ``hf/``: ``VisionTextDualEncoderModel.from_pretrained`` gives contrast's embeddings, its
    ``logit_scale`` is the learned 1/τ, and its tokenizer and image processor are contrast's."""
    data, model = _pair(folders, temperature=0.05)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():  # not the initial projections: any weights go across
            p.add_(0.01 * torch.randn_like(p))
    model.save_pretrained(tmp_path / "export")
    dual = transformers.VisionTextDualEncoderModel.from_pretrained(tmp_path / "export/hf").eval()
    model.eval()
    images = next(iter(data.train_dataloader()))[0]  # uint8
    pixels = (images.float() / 255 - model.image_mean) / model.image_std
    with torch.no_grad():
        torch.testing.assert_close(
            dual.get_image_features(pixel_values=pixels).pooler_output, model.embed_images(images), rtol=0, atol=1e-5
        )
        tokens = model.tokenize(CAPTIONS)  # contrast's ids: the tokenizer's plus one, 0 = padding
        theirs = dual.get_text_features(input_ids=(tokens - 1).clamp_min(0), attention_mask=(tokens != 0).long())
        torch.testing.assert_close(theirs.pooler_output, model.embed_texts(tokens), rtol=0, atol=1e-5)
        assert math.isclose(float(dual.logit_scale), math.log(1 / float(model.tau())), rel_tol=1e-6)
    tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path / "export/hf")
    assert tokenizer(CAPTIONS[0])["input_ids"] == [i - 1 for i in model.tokenize(CAPTIONS[:1])[0].tolist() if i]
    processor = transformers.AutoImageProcessor.from_pretrained(tmp_path / "export/hf")
    assert list(processor.image_mean) == [0.4, 0.45, 0.5] and list(processor.image_std) == [0.2, 0.25, 0.3]
    assert not list((tmp_path / "export").rglob("*.bin")) and not list((tmp_path / "export").rglob("*.pt"))
    again = CrossModal.from_pretrained(tmp_path / "export")  # contrast's own layout beside it
    with torch.no_grad():
        torch.testing.assert_close(again.embed_images(images), model.embed_images(images), rtol=0, atol=0)


def test_only_a_pair_shaped_as_the_dual_encoder_is_exported_so(folders, tmp_path, capsys):
    _, mlp_heads = _pair(folders, projection="mlp")
    assert "projection linear" in hf_dual_encoder_ready(mlp_heads)
    _, cls_pooled = _pair(folders, image_pooler="cls")
    assert "pooler_output" in hf_dual_encoder_ready(cls_pooled)
    for name, model in (("mlp", mlp_heads), ("dual", _pair(folders)[1])):  # contrast export of each checkpoint
        torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}, tmp_path / "m.ckpt")
        assert main(["export", "--ckpt", str(tmp_path / "m.ckpt"), "--out", str(tmp_path / name)]) == 0
    said = capsys.readouterr().out
    assert "not in HF's VisionTextDualEncoderModel layout: the dual encoder projects by one Linear" in said
    assert f'VisionTextDualEncoderModel.from_pretrained("{tmp_path / "dual"}/hf")' in said
    assert (tmp_path / "mlp/model.safetensors").is_file() and not (tmp_path / "mlp/hf").exists()
    assert (tmp_path / "dual/hf/model.safetensors").is_file()


def test_locking_and_checkpointing_a_vision_tower(folders):
    _, model = _pair(folders, freeze_image=True, image_unlocked_groups=1, grad_checkpointing=True)
    vit = model.backbone.transformer
    groups = layer_groups(model.backbone)
    assert groups[0] == [vit.embeddings] and len(groups) == 3  # patch embeddings, block 1, block 2 (+ norm, pooler)
    trained = {id(p) for part in groups[-1] for p in part.parameters()}
    assert trained == {id(p) for m in (vit.layers[1], vit.layernorm, vit.pooler) for p in m.parameters()}
    assert [p.requires_grad for p in model.backbone.parameters()] == [
        id(p) in trained for p in model.backbone.parameters()
    ]
    assert getattr(vit, "is_activation_checkpointing", None) or vit.is_gradient_checkpointing


def test_bad_input_is_one_line_naming_the_option(folders, tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="image_pooler must be one of"):
        HFVisionTower(str(folders["vit"]), "last")
    with pytest.raises(ConfigError, match=r"backbone hf/.*bert: BertModel takes no images"):
        HFVisionTower(str(folders["bert"]))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match=r"backbone hf/no-such/vit: model not found: .*HF_HUB_OFFLINE") as error:
        HFVisionTower("no-such/vit")
    assert error.value.argument == "backbone" and "\n" not in str(error.value)
    with pytest.raises(ConfigError, match="image_mean: the image tower of hf/.* was pretrained on pixels"):
        _pair(folders, image_mean=(0.5, 0.5, 0.5))
    with pytest.raises(ConfigError, match="projection must be one of"):
        _pair(folders, projection="mlp3")
    with pytest.raises(ValueError, match=r"takes 32-px images, got \(64, 64\)"):
        HFVisionTower(str(folders["vit"]))(torch.zeros(1, 3, 64, 64))
