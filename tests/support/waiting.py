"""Bounded waits for a state: a test waits for the state itself (a thread
blocked on a semaphore, a process gone), never for time to pass, and never
samples once a state that is still on its way."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

# Every wait in a test is bounded by this many seconds.
WAIT = 10.0

T = TypeVar("T")

# poll_until's pauses between checks: short at first, for states that come
# at once, then longer, so that a long wait does not busy the machine.
FIRST_PAUSE = 0.0005
LONGEST_PAUSE = 0.01


def poll_until(predicate: Callable[[], T], timeout: float = WAIT, what: str | Callable[[], str] = "the condition") -> T:
    """Calls `predicate` until it returns a true value, and returns that
    value; raises AssertionError naming `what` (a string, or a function that
    says it, e.g. with the last state seen) if it is still false after
    `timeout` seconds. The predicate is checked once more at the deadline,
    so a late pause does not fail a wait whose state has come."""
    deadline = time.monotonic() + timeout
    pause = FIRST_PAUSE
    while True:
        result = predicate()
        if result:
            return result
        left = deadline - time.monotonic()
        if left <= 0:
            said = what() if callable(what) else what
            raise AssertionError(f"never reached within {timeout} s: {said}")
        time.sleep(min(pause, left))
        pause = min(pause * 2, LONGEST_PAUSE)


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
    poll_until(lambda: waiters(name) >= count, timeout, f"{count} waiter(s) blocked on {name}")


def process_state(pid: int) -> str | None:
    """The state letter of process `pid` in /proc ("R", "S", "Z" for a
    zombie...), or None once there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The state follows the command name, which is in parentheses and may
    # itself hold ") ".
    return stat.rsplit(")", 1)[1].split()[0]


def process_gone(pid: int) -> bool:
    """True once process `pid` has ended: no longer in /proc, or a zombie
    (dead, its exit status not yet collected by its parent)."""
    return process_state(pid) in (None, "Z", "X")


def race(calls: Sequence[Callable[[], object]]) -> list[BaseException | None]:
    """Runs each of `calls` in a thread of its own, all released at once by
    one barrier, and returns what each raised (None: it returned), in order.
    Every thread is joined within WAIT seconds, or the test fails."""
    start = threading.Barrier(len(calls), timeout=WAIT)
    outcomes: list[BaseException | None] = [None] * len(calls)

    def run(i: int) -> None:
        start.wait()
        try:
            calls[i]()
        except BaseException as e:  # noqa: BLE001 - handed to the test, which asserts on it
            outcomes[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert not any(thread.is_alive() for thread in threads), "a racing call did not return"
    return outcomes


def assert_one_returned(outcomes: Sequence[BaseException | None], error: type[BaseException], match: str) -> None:
    """That exactly one of `race`'s calls returned, and every other raised
    `error` with `match` in its message."""
    assert sum(e is None for e in outcomes) == 1, outcomes
    losers = [e for e in outcomes if e is not None]
    assert all(isinstance(e, error) and match in str(e) for e in losers), losers
