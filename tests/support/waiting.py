"""Bounded waits for a state: a test waits for the state itself (a thread
blocked on a semaphore), never for time to pass."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

# Every wait in a test is bounded by this many seconds.
WAIT = 10.0


def blocked_waiters(name: str) -> int:
    """How many threads are blocked in a wait on the semaphore `name`: glibc
    keeps the count in the high half of the first 64-bit word of the file."""
    data = (Path("/dev/shm") / f"sem.{name.lstrip('/')}").read_bytes()
    return int.from_bytes(data[4:8], sys.byteorder)


def robust_waiters(name: str) -> int:
    """How many processes are in a blocking wait on the robust semaphore
    `name`: the `waiters` word of its file's header (offset 28)."""
    data = (Path("/dev/shm") / f"namedipc-robust.{name.lstrip('/')}").read_bytes()
    return int.from_bytes(data[28:32], sys.byteorder)


def wait_until_blocked(
    name: str, count: int = 1, timeout: float = WAIT, waiters: Callable[[str], int] = blocked_waiters
) -> None:
    """Returns once `count` waiters are blocked on `name` (a test waits for
    the state of the semaphore itself, not for time to pass); `waiters`
    reads the count (default: a POSIX semaphore's, see `robust_waiters`)."""
    deadline = time.monotonic() + timeout
    while waiters(name) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{count} waiter(s) never blocked on {name}")
        time.sleep(0.0005)
