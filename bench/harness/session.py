"""The named objects, files and helper processes of a run (Session), so that
all of them are released at the end, whatever went wrong.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness.helper import Helper


class Session:
    """Every named object, file and helper process a run creates, so that
    close() releases all of them, whatever went wrong. Names carry the pid
    and a random part: two runs at once, or a crashed earlier one, never
    collide. Semaphores and segments lie under /dev/shm/<prefix>*: glibc
    keeps the semaphore "/x" as /dev/shm/sem.x and the segment "/x" as
    /dev/shm/x. Message queues live in the kernel's mqueue file system,
    which need not be mounted anywhere, so each queue name is checked by
    trying to open it."""

    def __init__(self, posix_ipc: Any) -> None:
        self._posix_ipc = posix_ipc
        self.prefix = f"/namedipc-bench-{os.getpid()}-{secrets.token_hex(4)}"
        # (name, function removing it); the function raises
        # posix_ipc.ExistentialError or FileNotFoundError if it is gone.
        self._names: list[tuple[str, Callable[[str], None]]] = []
        # (name, function telling whether it exists) for names that no
        # directory listing shows: message queues.
        self._probes: list[tuple[str, Callable[[str], bool]]] = []
        self._handles: list[tuple[Any, int]] = []  # (semaphore, value it must end with)
        self._checks: list[Callable[[], None]] = []
        self._helpers: list[Helper] = []
        self._robust: list[Any] = []

    def name(self, tag: str, remove: Callable[[str], None] | None = None) -> str:
        """A new name, removed by `remove` at the end (default: a semaphore's).
        Listed before the object exists: a failure right after it is created
        still leaves its name on the list to remove."""
        name = f"{self.prefix}-{tag}"
        self._names.append((name, remove or self._posix_ipc.unlink_semaphore))
        return name

    def shm_name(self, tag: str) -> str:
        return self.name(tag, self._posix_ipc.unlink_shared_memory)

    def probed_name(self, tag: str, remove: Callable[[str], None], exists: Callable[[str], bool]) -> str:
        """A new name that leftovers() checks with `exists`, since no
        directory shows it (a message queue's)."""
        name = self.name(tag, remove)
        self._probes.append((name, exists))
        return name

    def mq_name(self, tag: str) -> str:
        return self.probed_name(tag, self._posix_ipc.unlink_message_queue, self.mq_exists)

    def mq_exists(self, name: str) -> bool:
        try:
            queue = self._posix_ipc.MessageQueue(name)
        except self._posix_ipc.ExistentialError:
            return False
        queue.close()
        return True

    def plain_file(self, tag: str) -> Path:
        """A path in /dev/shm for an ordinary file (not made by shm_open)."""
        return shm_path(self.name(tag, lambda name: os.unlink(shm_path(name))))

    def semaphore(self, lib: Any, tag: str, value: int) -> Any:
        """A new `lib.Semaphore` (namedipc's or posix_ipc's) with `value`."""
        sem = lib.Semaphore(self.name(tag), lib.O_CREX, initial_value=value)
        self._handles.append((sem, value))
        return sem

    def named_semaphore(self, namedipc: Any, tag: str, value: int) -> Any:
        flags = namedipc.NamedSemaphore.Flags.RAISE_IF_EXISTS
        sem = namedipc.NamedSemaphore(self.name(tag), value, flags)
        self._handles.append((sem, value))
        return sem

    def robust_semaphore(self, namedipc: Any, tag: str) -> Any:
        """A new RobustSemaphore with one slot; its file is removed at the end."""
        name = self.name(tag, lambda n: os.unlink(Path("/dev/shm") / f"namedipc-robust.{n[1:]}"))
        flags = namedipc.NamedSemaphore.Flags.RAISE_IF_EXISTS
        sem = namedipc.RobustSemaphore(name, 1, flags, persistent=True)
        self._robust.append(sem)
        return sem

    def helper(self, label: str, argv: Sequence[str]) -> Helper:
        helper = Helper(label, argv)
        self._helpers.append(helper)
        return helper

    def after_run(self, check: Callable[[], None]) -> None:
        """`check` runs once the rounds are done and raises RuntimeError if a
        loop did not do what it claims to."""
        self._checks.append(check)

    def check(self) -> None:
        # Every semaphore loop gives back what it takes; a semaphore whose
        # value moved means a loop did not measure what it claims to.
        for sem, value in self._handles:
            if sem.value != value:
                raise RuntimeError(f"{sem.name}: value {sem.value} at the end, not {value}")
        for check in self._checks:
            check()

    def close(self) -> None:
        # The names are removed even if closing the rest is cut short: by a
        # second Ctrl-C while a helper is given its time to exit, say.
        try:
            for helper in self._helpers:
                helper.close()
            for sem in self._robust:
                sem.close()
            for sem, _ in self._handles:
                try:
                    sem.close()
                except Exception:  # noqa: BLE001 - already closed; unlinking is what matters
                    pass
        finally:
            for name, remove in self._names:
                try:
                    remove(name)
                except (self._posix_ipc.ExistentialError, FileNotFoundError):
                    pass  # never created, or already removed

    def leftovers(self) -> list[str]:
        """Whatever this run made that still exists: anything under its
        prefix in /dev/shm (and in /dev/mqueue, where that is mounted), and
        every queue name that still opens."""
        stem = self.prefix[1:]
        found = {
            p.name
            for p in [
                *Path("/dev/shm").glob(f"sem.{stem}*"),
                *Path("/dev/shm").glob(f"{stem}*"),
                *Path("/dev/shm").glob(f"namedipc-robust.{stem}*"),
                *Path("/dev/mqueue").glob(f"{stem}*"),
            ]
        }
        found.update(name[1:] for name, exists in self._probes if exists(name))
        return sorted(found)

    def probed(self) -> int:
        """How many names leftovers() checks by opening them."""
        return len(self._probes)


def shm_path(name: str) -> Path:
    """Where glibc (and namedipc) keep the shared memory segment `name`."""
    return Path("/dev/shm") / name.lstrip("/")
