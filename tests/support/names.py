"""Unique IPC names for a test, and the removal of whatever is at them.

Every object a test creates has a name of its own (pid + random), and is
removed at teardown also when the test fails. /dev/shm is shared with
other test runs: only names handed out (or tracked) here are removed."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import namedipc

SHM = Path("/dev/shm")


def semaphore_file(name: str) -> Path:
    """The file of the named semaphore `name`."""
    return SHM / f"sem.{name.lstrip('/')}"


def segment_file(name: str) -> Path:
    """The file of the shared memory segment `name`."""
    return SHM / name.lstrip("/")


def robust_file(name: str) -> Path:
    """The file of the robust semaphore `name`."""
    return SHM / f"namedipc-robust.{name.lstrip('/')}"


def _remove_planted(path: Path) -> None:
    """Removes whatever a test left at `path`: a file, link, FIFO or directory."""
    if path.is_dir() and not path.is_symlink():
        path.rmdir()
    else:
        path.unlink(missing_ok=True)


def remove_semaphore(name: str) -> None:
    try:
        namedipc.unlink_semaphore(name)
    except namedipc.ExistentialError:
        pass
    # A test may plant a file at the name that is not a semaphore.
    _remove_planted(semaphore_file(name))


def remove_segment(name: str) -> None:
    # A segment is a file in /dev/shm; so is anything a test planted instead.
    _remove_planted(segment_file(name))


def remove_queue(name: str) -> None:
    try:
        namedipc.unlink_message_queue(name)
    except namedipc.ExistentialError:
        pass


def remove_robust(name: str) -> None:
    # A robust semaphore is the file /dev/shm/namedipc-robust.<name>.
    _remove_planted(robust_file(name))


class Names:
    """Hands out unique names (pid + random) and removes whatever is at
    them at cleanup (on leaving a ``with`` block too), also when the test fails."""

    def __init__(self, remove: Callable[[str], None], label: str) -> None:
        self._prefix = f"/namedipc-test-{os.getpid()}-{secrets.token_hex(4)}"
        self._remove = remove
        self._label = label
        self._made: list[str] = []

    def __call__(self, label: str | None = None) -> str:
        name = f"{self._prefix}-{label or self._label}-{len(self._made)}"
        self._made.append(name)
        return name

    def track(self, name: str) -> str:
        """Registers a name chosen elsewhere (e.g. a random one) for removal."""
        self._made.append(name)
        return name

    def cleanup(self) -> None:
        for name in self._made:
            self._remove(name)

    def __enter__(self) -> Names:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.cleanup()
