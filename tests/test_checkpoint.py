from __future__ import annotations

import pytest
import torch

from contrast.checkpoint import LastCheckpoint, atomic_save


def test_atomic_save_never_leaves_a_truncated_file(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    atomic_save({"step": 1}, path)

    def broken_save(obj, f):
        f.write(b"partial")
        raise KeyboardInterrupt  # interrupted mid-write

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        atomic_save({"step": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_a_checkpoint_with_a_flipped_bit_is_refused(tmp_path):
    """A bit-flipped checkpoint loaded and trained on (one weight wrong, no error); its CRC says so."""
    import zipfile

    from contrast.checkpoint import CheckpointError, read_checkpoint

    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": {"w": torch.arange(4096, dtype=torch.float32)}}, path)
    assert torch.equal(read_checkpoint(path)["state_dict"]["w"], torch.arange(4096, dtype=torch.float32))
    with zipfile.ZipFile(path) as archive:  # where the tensor's bytes are
        info = next(i for i in archive.infolist() if i.filename.endswith("data/0"))
    data = bytearray(path.read_bytes())
    offset = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + 1000
    data[offset] ^= 0x10
    path.write_bytes(bytes(data))
    assert not torch.equal(
        torch.load(path, weights_only=True)["state_dict"]["w"], torch.arange(4096.0)
    )  # torch loads it
    with pytest.raises(CheckpointError, match="is damaged: its entry .*data/0.* fails its CRC check"):
        read_checkpoint(path)


def test_checkpoints_follow_the_umask_like_every_other_output(tmp_path):
    """They were created 0600 (mkstemp's mode) whatever the umask."""
    import os

    previous = os.umask(0o022)
    try:
        atomic_save({"state_dict": {}}, tmp_path / "a.ckpt")
        os.umask(0o077)
        atomic_save({"state_dict": {}}, tmp_path / "b.ckpt")
    finally:
        os.umask(previous)
    assert (tmp_path / "a.ckpt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "b.ckpt").stat().st_mode & 0o777 == 0o600


def test_a_signal_between_accumulated_micro_batches_stops_at_the_optimizer_step(monkeypatch):
    """With accumulate_grad_batches 2, a SIGTERM between micro-batches stopped with the partial
    gradient lost: the resumed weights were off by up to 0.21."""
    import signal
    from types import SimpleNamespace

    from contrast.checkpoint import Interrupted, LastCheckpoint

    callback = LastCheckpoint()
    saved = []
    monkeypatch.setattr(callback, "save", lambda trainer: saved.append(trainer.global_step))
    trainer = SimpleNamespace(accumulate_grad_batches=2, num_training_batches=9, global_step=3, world_size=1)
    callback._signal = signal.SIGTERM
    callback.on_train_batch_end(trainer, None, None, None, batch_idx=6)  # the first of a pair: go on
    assert saved == []
    with pytest.raises(Interrupted):
        callback.on_train_batch_end(trainer, None, None, None, batch_idx=7)  # the optimizer stepped
    assert saved == [3]
    saved.clear()
    callback._signal = signal.SIGTERM
    with pytest.raises(Interrupted):  # the epoch's last batch steps too, whatever the count
        callback.on_train_batch_end(trainer, None, None, None, batch_idx=8)


@pytest.mark.parametrize("argument", ["every_n_steps", "sync_every"])
@pytest.mark.parametrize("value", [True, 0, 2.5])
def test_last_checkpoint_refuses_what_is_not_a_positive_int_by_name(argument, value):
    """One rule for both integer options: a bool is no count (True was accepted for sync_every)."""
    from contrast.checks import ConfigError

    with pytest.raises(ConfigError, match=rf"{argument} must be .*a positive int, got {value!r}") as error:
        LastCheckpoint(**{argument: value})
    assert error.value.argument == argument
