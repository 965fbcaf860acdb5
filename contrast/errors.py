"""Errors a person can read: one line that names the option or the file, and an exit code.

Two sources: a :class:`contrast.checks.ConfigError` that a constructor raised (it carries its
argument's name; the object that raised it says whose argument), and jsonargparse's parse errors
(an unknown option, a value of the wrong type), whose only form is their text: those are read
from it here, in one place.
"""

from __future__ import annotations

import argparse
import difflib
import errno
import os
import re
import sys

# The errors whose message names the file (module, class). An error can only be of a class whose module
# is loaded, so they are looked up among the loaded modules: reporting imports nothing (an error of
# `contrast index` does not load torch, and a lost rank is named within its timeout).
NAMED = (
    ("contrast.checkpoint", "CheckpointError"),
    ("contrast.data.files", "DataNotFoundError"),
    ("contrast.data.files", "DamagedImageError"),
)


def _loaded(classes: tuple[tuple[str, str], ...]) -> tuple[type, ...]:
    """Those of ``classes`` whose module is loaded."""
    return tuple(getattr(sys.modules[module], name) for module, name in classes if module in sys.modules)


def report(error: BaseException, command: str, options: tuple[str, ...] = ()) -> int:
    """Print the useful line of a user error and return its exit code; re-raise anything else.
    ``options``: the command's own options (``knn``: k, temperature, ...)."""
    if os.environ.get("CONTRAST_TRACEBACK"):
        raise error
    chain = _chain(error)
    full_disk = [e for e in chain if isinstance(e, OSError) and e.errno == errno.ENOSPC]
    if full_disk:
        print(f"contrast {command}: error: {full_disk[0].strerror or full_disk[0]}", file=sys.stderr)
        return 1
    refused = [e for e in chain if isinstance(e, OSError) and e.errno in (errno.EACCES, errno.EPERM, errno.EROFS)]
    if refused:  # a read-only run folder, a folder of another user
        where = refused[0].filename or "a file"
        print(f"contrast {command}: error: cannot write {where}: {refused[0].strerror}", file=sys.stderr)
        return 2
    peers = [e for e in chain if _is_distributed_error(e)]
    if peers:  # another rank died or stopped answering (a crash, a kill, a hang past --collective_timeout)
        from contrast import distributed

        first = str(peers[0]).strip().splitlines()[0][:300] if str(peers[0]).strip() else type(peers[0]).__name__
        me = distributed.rank()
        print(
            f"contrast {command}: error: rank {me} lost the other ranks of the run: {_who(distributed)}: {first}",
            file=sys.stderr,
        )
        return 1
    named = [e for e in chain if isinstance(e, _loaded(NAMED))]
    values = [e for e in chain if isinstance(e, (ValueError, FileNotFoundError))]
    if named:
        message = _from_worker(str(named[0]))
    elif _is_argument_error(error):  # parsing: an unknown option or a value of the wrong type
        message = _argument_message(str(error))
    elif values:  # the innermost: jsonargparse wraps the error a constructor raised
        message = _with_option(values[-1], options)
    else:
        raise error
    print(f"contrast {command}: error: {message}", file=sys.stderr)
    print("(set CONTRAST_TRACEBACK=1 for the full traceback)", file=sys.stderr)
    return 2


def _from_worker(message: str) -> str:
    """A DataLoader worker's error comes back as "Caught X in DataLoader worker process N." and the
    worker's whole traceback: its last line, less the type, is what the worker said."""
    if not message.startswith("Caught ") or "DataLoader worker" not in message.splitlines()[0]:
        return message
    last = [line for line in message.splitlines() if line.strip()][-1]
    return last.split(": ", 1)[1] if re.match(r"^[\w.]+: ", last) else last


def _who(distributed, wait: float = 10.0) -> str:
    """Which rank stopped answering, asked through the group's store (see ``silent_ranks``)."""
    silent = distributed.silent_ranks(wait)
    if silent is None:
        return "one ended or stopped answering (see its own output)"
    if not silent:
        return "every rank still answers (a collective failed on all of them; see each rank's output)"
    ranks = ", ".join(str(r) for r in silent)
    return f"rank{'s' if len(silent) > 1 else ''} {ranks} stopped answering (no word within {wait:g} s)"


# gloo reports a peer that stopped answering as a plain RuntimeError from its C++ transport
_GLOO_LOST = re.compile(r"gloo.*(Timed out waiting \d+ms|Connection closed by peer|Connection reset by peer)")


def _is_distributed_error(error: BaseException) -> bool:
    if "torch.distributed" not in sys.modules:  # no collective ran in this process
        return False
    from torch.distributed import DistError

    return isinstance(error, DistError) or (type(error) is RuntimeError and bool(_GLOO_LOST.search(str(error))))


def _chain(error: BaseException) -> list[BaseException]:
    """The error and the ones it was raised from, outermost first; as Python's own report, a
    ``raise ... from None`` ends the chain (the inner error was replaced by a message that says more)."""
    chain: list[BaseException] = []
    while error is not None and all(error is not seen for seen in chain):
        chain.append(error)
        error = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
    return chain


def _is_argument_error(error: BaseException) -> bool:
    return isinstance(error, argparse.ArgumentError) or type(error).__name__ == "ArgumentError"


def _argument_message(text: str) -> str:
    """One line from jsonargparse's nested report: the option, and what was wrong with its value
    (``--data.x`` and ``--data.init_args.x`` both work; the short form is the one named)."""
    return _argument_message_long(text).replace("--data.init_args.", "--data.")


def _argument_message_long(text: str) -> str:
    unknown = re.search(r"Option '([^']+)' is not accepted", text)
    if unknown:
        name = unknown.group(1)
        close = difflib.get_close_matches(name, _accepted_options(text), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        key = re.search(r'Parser key "([\w.]+)"', text)
        option = f"--{key.group(1)}.init_args.{name}" if key else name
        return f"unknown option {option!r}{hint}"
    unrecognized = re.search(r"unrecognized arguments: (?:\w+ )?(--\S+)", text, re.IGNORECASE)
    if unrecognized:
        return f"unknown option {unrecognized.group(1)!r} (contrast fit --help lists the options)"
    keys = re.findall(r'Parser key "([\w.]+)"', text)
    expected = re.search(r"Expected a <class '(\w+)'>", text)
    value = re.search(r"(?:Got value|Given value): (.*)", text)
    if keys and expected:
        option = keys[0] if len(keys) == 1 else f"{keys[0]}.init_args.{keys[-1]}"
        got = f", got {value.group(1).strip()!r}" if value else ""
        return f"--{option}: expected {'an' if expected.group(1)[0] in 'aeiou' else 'a'} {expected.group(1)}{got}"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " / ".join(lines[:3]) if lines else "invalid arguments"


def _accepted_options(text: str) -> list[str]:
    class_path = re.search(r"class_path '([\w.]+)'", text)
    if not class_path:
        return []
    import importlib

    module, _, name = class_path.group(1).rpartition(".")
    try:
        return _init_parameters(getattr(importlib.import_module(module), name))
    except (ImportError, AttributeError):
        return []


def _init_parameters(cls: type) -> list[str]:
    """The constructor arguments of ``cls`` and of the classes it passes ``**kwargs`` to."""
    from contrast.checks import constructor_parameters

    return list(constructor_parameters(cls))


def _with_option(error: BaseException, options: tuple[str, ...]) -> str:
    """The message, behind the command-line option it comes from: a :class:`ConfigError` carries its
    argument's name, and the object whose constructor raised it says whose argument it is (the model,
    the data module, a callback); otherwise one of the command's own options."""
    from contrast.checks import ConfigError

    message = str(error)
    if not isinstance(error, ConfigError):
        return message
    owner = _raised_by(error)
    if owner == "model":
        return f"--model.init_args.{error.argument}: {message}"
    if owner == "data":
        return f"--data.{error.argument}: {message}"
    if owner is not None:  # a callback of the config
        return f"{owner} (trainer.callbacks) {error.argument}: {message}"
    if error.argument in options:
        return f"--{error.argument}: {message}"
    return message


def _raised_by(error: BaseException) -> str | None:
    """'model', 'data', a callback's class name, or None: the innermost object of those kinds whose
    method the error was raised in (read from the traceback, not from the message)."""
    if "lightning" not in sys.modules:  # no model, data module or callback in this process
        return None
    import lightning as L

    owner, frame = None, error.__traceback__
    while frame is not None:
        self = frame.tb_frame.f_locals.get("self")
        if isinstance(self, L.LightningModule):
            owner = "model"
        elif isinstance(self, L.LightningDataModule):
            owner = "data"
        elif isinstance(self, L.Callback):
            owner = type(self).__name__
        frame = frame.tb_next
    return owner
