"""Published weights (contrast.models.published): a file planted in the torch hub or Hugging Face
cache under a published name never runs code and never passes for the published file."""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import pytest
import torch

from contrast.checkpoint import CheckpointError
from contrast.export import pretrained_backbone
from contrast.models.published import hub_weights


class _Payload:
    """Unpickling this writes a marker file: the 'code execution' of a planted weights file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "ran"))


def _plant(path: Path, marker: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # torch.save pickles the object: torch.load(weights_only=False) would call Path.write_text
    torch.save({"conv1.weight": _Payload(marker)}, path)


def _offline(monkeypatch) -> None:
    def no_network(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)


def test_a_planted_torchvision_file_runs_no_code_and_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    _offline(monkeypatch)
    marker = tmp_path / "ran.txt"
    planted = Path(torch.hub.get_dir()) / "checkpoints" / "resnet18-f37072fd.pth"
    _plant(planted, marker)
    with pytest.raises(CheckpointError, match=r"resnet18-f37072fd.pth is not the published file.*SHA-256"):
        pretrained_backbone("torchvision/resnet18")
    from contrast.methods import CrossModal, LinearEval

    with pytest.raises(CheckpointError, match="is not the published file"):  # linear evaluation
        LinearEval(weights="torchvision/resnet18")
    with pytest.raises(CheckpointError, match="is not the published file"):  # the cross-modal image tower
        CrossModal(backbone="resnet18", image_weights="torchvision/resnet18")
    assert not marker.exists()
    # The unguarded path it replaces would have run it: the test can fail.
    torch.load(planted, weights_only=False)
    assert marker.read_text() == "ran"


def test_a_file_with_the_right_hash_but_code_inside_is_still_not_unpickled(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    _offline(monkeypatch)
    marker = tmp_path / "ran.txt"
    staging = tmp_path / "payload.pth"
    _plant(staging, marker)
    prefix = hashlib.sha256(staging.read_bytes()).hexdigest()[:8]
    cached = Path(torch.hub.get_dir()) / "checkpoints" / f"evil-{prefix}.pth"
    cached.parent.mkdir(parents=True)
    os.replace(staging, cached)
    with pytest.raises(CheckpointError, match=r"is not a plain weights file and was not loaded"):
        hub_weights(f"https://example.invalid/models/evil-{prefix}.pth", "torchvision/evil")
    assert not marker.exists()


def test_a_verified_cached_file_loads_and_a_missing_one_says_where_it_goes(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    _offline(monkeypatch)
    reference = torchvision.models.resnet18(weights=None).state_dict()
    staging = tmp_path / "w.pth"
    torch.save(reference, staging)
    prefix = hashlib.sha256(staging.read_bytes()).hexdigest()[:8]
    cached = Path(torch.hub.get_dir()) / "checkpoints" / f"resnet18-{prefix}.pth"
    cached.parent.mkdir(parents=True)
    os.replace(staging, cached)
    state = hub_weights(f"https://example.invalid/models/resnet18-{prefix}.pth", "torchvision/resnet18")
    assert state.keys() == reference.keys() and all(torch.equal(state[k], reference[k]) for k in reference)
    with pytest.raises(CheckpointError) as error:
        pretrained_backbone("torchvision/resnet18")
    message = str(error.value)
    assert "resnet18-f37072fd.pth" in message and "torch hub cache" in message
    assert "checked against its published SHA-256 prefix f37072fd" in message and "without unpickling" in message


def _hf_cache(root: Path, repo: str, filename: str, payload: bytes, blob: str) -> None:
    """A Hugging Face hub cache entry as huggingface_hub lays it out: refs/main -> a commit,
    snapshots/<commit>/<file> -> a link to blobs/<sha256>."""
    entry = root / f"models--{repo.replace('/', '--')}"
    commit = "0" * 40
    (entry / "refs").mkdir(parents=True)
    (entry / "refs/main").write_text(commit)
    (entry / "blobs").mkdir()
    (entry / "blobs" / blob).write_bytes(payload)
    (entry / "snapshots" / commit).mkdir(parents=True)
    (entry / "snapshots" / commit / filename).symlink_to(entry / "blobs" / blob)


@pytest.fixture()
def hf_offline(tmp_path, monkeypatch):
    pytest.importorskip("timm", reason="the timm extra is not installed")
    import huggingface_hub.constants as constants

    cache = tmp_path / "hf"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def test_a_planted_timm_file_runs_no_code(tmp_path, hf_offline):
    import timm

    repo = timm.create_model("resnet18", pretrained=False).pretrained_cfg["hf_hub_id"]
    marker = tmp_path / "ran.txt"
    staging = tmp_path / "payload.bin"
    _plant(staging, marker)
    payload = staging.read_bytes()
    # A blob named as someone else's hash: not the published file.
    _hf_cache(hf_offline, repo, "pytorch_model.bin", payload, "a" * 64)
    with pytest.raises(CheckpointError, match="is not the published file"):
        pretrained_backbone("timm/resnet18")
    assert not marker.exists()


def test_timm_weights_from_the_cache_load_verified(tmp_path, hf_offline):
    import timm
    from safetensors.torch import save

    reference = timm.create_model("resnet18", pretrained=False, num_classes=0)
    repo = reference.pretrained_cfg["hf_hub_id"]
    payload = save({k: v.contiguous() for k, v in reference.state_dict().items()})
    _hf_cache(hf_offline, repo, "model.safetensors", payload, hashlib.sha256(payload).hexdigest())
    model, arch = pretrained_backbone("timm/resnet18")
    assert arch["backbone"] == "timm/resnet18" and len(arch["mean"]) == 3
    for name, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name
    assert "state_dict" not in model.pretrained_cfg


def test_timm_offline_with_nothing_cached_names_the_repository_and_the_check(hf_offline):
    with pytest.raises(CheckpointError, match=r"timm/resnet18.*Hugging Face hub repository.*HF_HUB_OFFLINE=1.*SHA-256"):
        pretrained_backbone("timm/resnet18")


def test_pickle_is_what_the_payload_uses():
    # The planted file's payload is a real pickle reduce: guards against a test whose payload is inert.
    assert pickle.loads(pickle.dumps(_Payload(Path(os.devnull)))) is not None
