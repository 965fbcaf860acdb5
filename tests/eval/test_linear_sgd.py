"""The feature mode of linear evaluation (mini-batch SGD on fixed features), the L-BFGS probe's
memory check, features written to disk, and the top-k counts.

References: the L-BFGS probe (full-batch optimum in float64) on the same features; ``np.argsort``
for top-k; the same run on float16 features in memory and memory-mapped from a .npy file."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from contrast.eval import linear
from contrast.eval.features import features_on_disk
from contrast.eval.linear import correct_counts, linear_probe, linear_sgd


def _blobs(n: int, d: int = 32, classes: int = 5, seed: int = 0, noise: float = 2.5):
    """Gaussian classes around random centres: overlapping enough that accuracy is below 100%."""
    centres = torch.randn(classes, d, generator=torch.Generator().manual_seed(1234)) * 1.5  # the same for every split
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=g)
    return centres[labels] + noise * torch.randn(n, d, generator=g) + 3.0, labels


def test_correct_counts_match_argsort():
    g = torch.Generator().manual_seed(1)
    logits, labels = torch.randn(200, 12, generator=g), torch.randint(0, 12, (200,), generator=g)
    order = np.argsort(-logits.double().numpy(), axis=1)
    top1 = int((order[:, 0] == labels.numpy()).sum())
    top5 = int((order[:, :5] == labels.numpy()[:, None]).any(axis=1).sum())
    assert correct_counts(logits, labels).tolist() == [200, top1, top5]
    assert correct_counts(logits[:, :3], labels.clamp(max=2)).tolist()[2] == 200  # k = classes when fewer than 5


def test_feature_mode_reaches_the_lbfgs_optimum():
    train_x, train_y = _blobs(4000)
    test_x, test_y = _blobs(2000, seed=1)
    probe = linear_probe(train_x, train_y, test_x, test_y)
    sgd = linear_sgd(train_x.half(), train_y, test_x.half(), test_y, epochs=30, lr=0.1, batch_size=256)
    assert 40.0 < probe.top1 < 99.0
    assert abs(sgd.top1 - probe.top1) <= 1.5, (sgd.top1, probe.top1)
    assert sgd.top5 >= sgd.top1


def test_feature_mode_from_disk_equals_in_memory(tmp_path):
    train_x, train_y = _blobs(1000)
    test_x, test_y = _blobs(300, seed=1)
    np.save(tmp_path / "train.npy", train_x.half().numpy())
    np.save(tmp_path / "test.npy", test_x.half().numpy())
    memory = linear_sgd(train_x.half(), train_y, test_x.half(), test_y, epochs=3)
    disk = linear_sgd(
        np.load(tmp_path / "train.npy", mmap_mode="r"),
        train_y,
        np.load(tmp_path / "test.npy", mmap_mode="r"),
        test_y,
        epochs=3,
    )
    assert (memory.top1, memory.top5, memory.train_loss) == (disk.top1, disk.top5, disk.train_loss)


def test_feature_mode_bad_input():
    x, y = _blobs(100)
    with pytest.raises(ValueError, match=r"train_labels must be \(100,\)"):
        linear_sgd(x, y[:50], x, y)
    with pytest.raises(ValueError, match="test_features have width 16 but train_features 32"):
        linear_sgd(x, y, x[:, :16], y)
    with pytest.raises(ValueError, match="epochs must be a positive int"):
        linear_sgd(x, y, x, y, epochs=0)
    with pytest.raises(ValueError, match="test labels reach 8 but the training labels have 4 classes"):
        linear_sgd(x, y.clamp(max=3), x, y.clamp(max=3) + 5)


def test_lbfgs_probe_refuses_what_does_not_fit_and_names_the_feature_mode(monkeypatch):
    x, y = _blobs(100)
    need = linear.probe_memory(100, 100, 32)
    monkeypatch.setattr(linear, "available_memory", lambda: need - 1)
    with pytest.raises(MemoryError, match=r"float64.*contrast probe --mode sgd"):
        linear_probe(x, y, x, y)
    monkeypatch.setattr(linear, "available_memory", lambda: need)
    assert linear_probe(x, y, x, y, weight_decays=(0.0,)).top1 > 0


class Counting(torch.nn.Module):
    """A linear encoder that counts its calls (so a reused feature file is seen not to be recomputed)."""

    def __init__(self, d_in: int = 6, d_out: int = 4) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(d_in, d_out)
        self.feature_dim, self.calls = d_out, 0

    def forward(self, x):
        self.calls += 1
        return self.linear(x)


def test_features_on_disk_are_written_once_and_checked(tmp_path):
    torch.manual_seed(0)
    encoder = Counting()
    images, labels = torch.randn(50, 6), torch.arange(50) % 3
    loader = DataLoader(TensorDataset(images, labels), batch_size=16)
    features, got = features_on_disk(encoder, loader, tmp_path / "train.npy", "cpu", key={"k": 1})
    with torch.no_grad():
        expected = encoder.linear(images).half()
    assert torch.equal(torch.from_numpy(np.asarray(features)), expected) and torch.equal(got, labels)
    assert not (tmp_path / "train.npy.partial").exists()
    calls = encoder.calls
    features_on_disk(encoder, loader, tmp_path / "train.npy", "cpu", key={"k": 1})
    assert encoder.calls == calls  # the same key: read, not extracted again
    features_on_disk(encoder, loader, tmp_path / "train.npy", "cpu", key={"k": 2})
    assert encoder.calls > calls  # another checkpoint: extracted again
    np.save(tmp_path / "train.npy", np.zeros((50, 7), dtype=np.float16))  # a file of the wrong width
    with pytest.raises(
        ValueError, match=r"feature file .*train.npy holds an array of shape \(50, 7\), expected \(50, 4\)"
    ):
        features_on_disk(encoder, loader, tmp_path / "train.npy", "cpu", key={"k": 2})


def test_an_interrupted_extraction_is_not_taken_for_a_finished_one(tmp_path):
    class Failing(Counting):
        def forward(self, x):
            if self.calls == 2:
                raise KeyboardInterrupt
            return super().forward(x)

    loader = DataLoader(TensorDataset(torch.randn(50, 6), torch.zeros(50, dtype=torch.long)), batch_size=16)
    with pytest.raises(KeyboardInterrupt):
        features_on_disk(Failing(), loader, tmp_path / "train.npy", "cpu", key={})
    assert not (tmp_path / "train.npy").exists()  # only the .partial: the next run extracts again
    encoder = Counting()
    features_on_disk(encoder, loader, tmp_path / "train.npy", "cpu", key={})
    assert encoder.calls == 4 and (tmp_path / "train.npy").is_file()


def test_feature_mode_interrupted_then_continued_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    """Stopped (Ctrl-C) in its third epoch, the same call with the same state file continues from the
    second epoch's end: the head's figures and last loss are the uninterrupted run's, to the bit."""
    train_x, train_y = _blobs(600)
    test_x, test_y = _blobs(300, seed=1)
    common = dict(epochs=4, batch_size=64, lr=0.2, seed=3)
    straight = linear_sgd(train_x, train_y, test_x, test_y, **common)
    state = tmp_path / "sgd_state.pt"
    calls, real = [0], linear._rows

    def interrupted(features, index, device):
        calls[0] += 1
        if calls[0] == 2 * (600 // 64) + 3:  # a few steps into the third epoch
            raise KeyboardInterrupt
        return real(features, index, device)

    monkeypatch.setattr(linear, "_rows", interrupted)
    with pytest.raises(KeyboardInterrupt):
        linear_sgd(train_x, train_y, test_x, test_y, state=state, **common)
    monkeypatch.setattr(linear, "_rows", real)
    assert (
        torch.load(state, weights_only=True)["epochs_done"] == 2
        and not state.with_name(state.name + ".partial").exists()
    )
    resumed = linear_sgd(train_x, train_y, test_x, test_y, state=state, **common)
    assert (resumed.top1, resumed.top5, resumed.train_loss) == (straight.top1, straight.top5, straight.train_loss)
    again = linear_sgd(train_x, train_y, test_x, test_y, state=state, **common)  # finished: evaluated, not retrained
    assert (again.top1, again.train_loss) == (straight.top1, straight.train_loss)
    with pytest.raises(ValueError, match=r"sgd_state.pt was written for other .*: lr 0.2 \(now 0.1\)"):
        linear_sgd(train_x, train_y, test_x, test_y, state=state, **(common | {"lr": 0.1}))
    state.write_bytes(b"not a state")
    with pytest.raises(ValueError, match="is not a readable PyTorch archive"):
        linear_sgd(train_x, train_y, test_x, test_y, state=state, **common)


def test_a_state_of_other_features_is_refused_by_name(tmp_path):
    """The same --state with features of another checkpoint: refused, naming the fingerprint, not a
    finished head scored on the new features."""
    train_x, train_y = _blobs(300)
    test_x, test_y = _blobs(100, seed=1)
    state, common = tmp_path / "state.pt", dict(epochs=1, batch_size=64, seed=0)
    first = {"checkpoint sha256": "aa11", "dataset": "blobs", "test crop": "whole 32-px images"}
    linear_sgd(train_x, train_y, test_x, test_y, state=state, source=first, **common)
    again = linear_sgd(train_x, train_y, test_x, test_y, state=state, source=first, **common)  # the same: reused
    assert again.top1 == linear_sgd(train_x, train_y, test_x, test_y, **common).top1
    other = first | {"checkpoint sha256": "bb22"}
    with pytest.raises(ValueError, match=r"features checkpoint sha256 'aa11' \(now 'bb22'\)"):
        linear_sgd(train_x * 2, train_y, test_x * 2, test_y, state=state, source=other, **common)


def test_a_damaged_state_is_refused_not_loaded(tmp_path):
    """One flipped byte inside the head's weights: the archive's CRC catches it (torch.load would
    hand back the damaged weights)."""
    import zipfile

    train_x, train_y = _blobs(300)
    test_x, test_y = _blobs(100, seed=1)
    state = tmp_path / "state.pt"
    linear_sgd(train_x, train_y, test_x, test_y, state=state, epochs=1, batch_size=64)
    with zipfile.ZipFile(state) as archive:
        entry = max(archive.infolist(), key=lambda info: info.file_size)  # the largest tensor's bytes
    data = bytearray(state.read_bytes())
    at = entry.header_offset + 30 + len(entry.filename.encode()) + len(entry.extra) + entry.file_size // 2
    data[at] ^= 0xFF
    state.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"--state: .*state.pt is damaged: its entry .* fails its CRC check"):
        linear_sgd(train_x, train_y, test_x, test_y, state=state, epochs=1, batch_size=64)


@pytest.mark.parametrize("where", ["memory", "disk"])
def test_non_finite_features_are_refused_naming_the_row(tmp_path, where):
    train_x, train_y = _blobs(300)
    test_x, test_y = _blobs(100, seed=1)
    train_x[37, 5] = float("nan")
    name = "train_features"
    if where == "disk":
        path = tmp_path / "train.npy"
        np.save(path, train_x.numpy().astype(np.float16))
        train_x, name = np.load(path, mmap_mode="r"), str(path)
    with pytest.raises(ValueError, match=rf"{name}.*row\(s\) hold NaN or Inf values, the first is row 37"):
        linear_sgd(train_x, train_y, test_x, test_y, epochs=1, batch_size=64)
    test_x[3, 0] = float("inf")
    with pytest.raises(ValueError, match=r"test_features: 1 row\(s\) hold NaN or Inf values, the first is row 3"):
        linear_probe(_blobs(300)[0], train_y, test_x, test_y)
