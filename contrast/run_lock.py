"""A run folder in use is locked: a second run into it stops with an error naming the first."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from contrast.checkpoint import CheckpointError


class RunLock:
    """A run folder in use: ``<folder>/.lock`` holds the pid and host of the run using it.

    A second run into the same folder stops with an error naming that process; a lock left by a
    run that was killed (its process is gone) is recognised as stale and taken over. Only the
    process of rank 0 takes it (the other ranks of a DDP run share the folder). Used as a context
    manager: released when the run ends, however it ends."""

    NAME = ".lock"

    def __init__(self) -> None:
        self.path: Path | None = None

    def acquire(self, folder: str | os.PathLike) -> None:
        if int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) or 0) != 0 or self.path is not None:
            return
        path = Path(folder) / self.NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        mine = f"{os.getpid()} {socket.gethostname()}\n"
        for _ in range(2):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = _read_lock(path)
                if holder is not None and _alive(*holder) and holder[0] != os.getpid():
                    raise CheckpointError(
                        f"the run folder {path.parent} is in use by process {holder[0]} on {holder[1]}: wait for "
                        "that run to end, or choose another --run_dir"
                    ) from None
                path.unlink(missing_ok=True)  # stale: its run was killed
                continue
            with os.fdopen(fd, "w") as f:
                f.write(mine)
            self.path = path
            return

    def release(self) -> None:
        if self.path is not None:
            holder = _read_lock(self.path)
            if holder is not None and holder[0] == os.getpid():
                self.path.unlink(missing_ok=True)
            self.path = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _read_lock(path: Path) -> tuple[int, str] | None:
    try:
        pid, host = path.read_text().split()
        return int(pid), host
    except (OSError, ValueError):
        return None


def _alive(pid: int, host: str) -> bool:
    """Whether process ``pid`` runs (on another host: assumed so, it cannot be asked)."""
    if host != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
