"""Advisory locks (``fcntl.flock``) that keep two processes out of one run directory or dataset.

A lock belongs to an open file descriptor: the kernel drops it when the process dies, however
it dies (kill -9 included), so a lock never outlives its holder and needs no clean-up.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from d4rl_lite.errors import D4RLLiteError

LOCK_FILE = ".lock"


class BusyError(D4RLLiteError, RuntimeError):
    """Another process holds the lock."""


class RunDirLock:
    """Exclusive lock on a directory (its ``.lock`` file) for the life of a training run or build."""

    def __init__(self, directory: str | Path, what: str = "run directory", advice: str = ""):
        self.path = Path(directory) / LOCK_FILE
        self.what = what
        self.advice = advice or "wait for it to finish (or stop it), or use another --run-dir"
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise BusyError(f"{self.path.parent}: this {self.what} is in use by process {holder}; "
                            f"{self.advice}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the lock
            self._fd = None

    def __enter__(self) -> RunDirLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def is_locked(directory: str | Path) -> bool:
    """Whether a live process holds ``directory``'s lock."""
    path = Path(directory) / LOCK_FILE
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
