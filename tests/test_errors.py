"""A bad argument is named by the option it came from: the error carries the argument's name
(ConfigError), and the object whose constructor raised it says whose option that is."""

from __future__ import annotations

import lightning as L
import pytest

from contrast.checks import ConfigError
from contrast.errors import _raised_by, _with_option


class _Data(L.LightningDataModule):
    def __init__(self, width: int = 1) -> None:
        super().__init__()
        raise ConfigError("width", "a message that does not start with the argument's name")


class _Callback(L.Callback):
    def __init__(self) -> None:
        from contrast.eval import KNNEvaluator

        KNNEvaluator(temperature=0)  # raised one level down, in a plain object


def _raised(build) -> BaseException:
    with pytest.raises(ConfigError) as caught:
        build()
    return caught.value


def test_the_owner_comes_from_the_traceback_not_from_the_message():
    error = _raised(_Data)
    assert _raised_by(error) == "data"
    assert _with_option(error, ()) == "--data.width: a message that does not start with the argument's name"


def test_a_loss_inside_a_method_is_the_method_s_option():
    from contrast.methods import SimCLR

    error = _raised(lambda: SimCLR(backbone="tiny_cnn", temperature=0))  # raised by the NT-Xent module
    assert _with_option(error, ()).startswith("--model.init_args.temperature: temperature must be")


def test_a_callback_s_argument_names_the_callback():
    error = _raised(_Callback)
    assert _with_option(error, ()).startswith("_Callback (trainer.callbacks) temperature: temperature must be")


def test_a_command_s_own_option_is_named_as_such(tmp_path, capsys):
    """``contrast knn --temperature 0`` named ``--model.init_args.temperature`` (a model's argument of that name)."""
    from contrast.cli import main

    assert main(["knn", "--ckpt", str(tmp_path / "none.ckpt"), "--temperature", "0"]) == 2
    assert "contrast knn: error: --temperature: temperature must be a finite number > 0" in capsys.readouterr().err


def test_a_folder_that_cannot_be_written_is_one_line(tmp_path, capsys):
    """A read-only checkpoints folder ended the run with a traceback."""
    import errno

    from contrast.errors import report

    def save():
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "r/checkpoints/.last.ckpt.tmp"))

    try:
        try:
            save()
        except OSError as error:
            raise RuntimeError("Lightning's wrapper") from error
    except RuntimeError as wrapped:
        assert report(wrapped, "fit") == 2
    err = capsys.readouterr().err
    assert f"contrast fit: error: cannot write {tmp_path}/r/checkpoints/.last.ckpt.tmp: Permission denied" in err


def test_ddp_runs_get_a_collective_timeout_by_default():
    """A hung rank stalled the others silently for gloo's 30 minutes."""
    from datetime import timedelta

    from contrast.train import lightning_cli
    from tests.test_runs import QUICK

    args = [*QUICK, "--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu"]
    cli = lightning_cli([*args, "--collective_timeout", "42"], run=False)  # run=False: no subcommand
    assert cli.trainer.strategy._timeout == timedelta(seconds=42)


def test_a_lost_rank_is_one_line(capsys):
    from torch.distributed import DistNetworkError

    from contrast.errors import report

    assert report(DistNetworkError("Connection closed by peer [127.0.0.1]:29500"), "fit") == 1
    assert "contrast fit: error: rank 0 lost the other ranks of the run" in capsys.readouterr().err
