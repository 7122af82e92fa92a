"""Counts the slots lost when a signal handler raises around a wake-up.

One thread blocks in acquire() on a semaphore at 0; another releases one
slot and at once sends the waiting thread SIGUSR1, whose handler raises.
Each round either the acquire returns True (the slot is the caller's), or
the handler's exception propagates, and then no slot may have been taken.
At the end the semaphore's value must be the releases less the acquires
that returned: every slot missing from it was lost.

    python tests/helpers/signal_storm.py CLASS NAME ROUNDS
prints "lost N of ROUNDS" (CLASS: NamedSemaphore, RobustSemaphore, Semaphore,
threading, multiprocessing, posix_ipc).
"""

from __future__ import annotations

import multiprocessing
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any


class Handled(Exception):
    """What the signal handler raises."""


def handler(signum: int, frame: object) -> None:
    raise Handled


def drainer(try_acquire: Callable[[Any], bool]) -> Callable[[Any], int]:
    """Counts a semaphore's free slots by taking them all."""

    def drain(sem: Any) -> int:
        count = 0
        while try_acquire(sem):
            count += 1
        return count

    return drain


def make(kind: str, name: str) -> tuple[Any, Callable[[Any], bool], Callable[[Any], int], Callable[[], None]]:
    """The semaphore (at 0), its blocking acquire, how to count its free slots, and its removal."""
    if kind in {"NamedSemaphore", "RobustSemaphore"}:
        import namedipc

        cls = getattr(namedipc, kind)
        sem = cls(name, 1, cls.Flags.RAISE_IF_EXISTS)
        sem.acquire()  # a robust semaphore starts with at least one slot
        return sem, lambda s: bool(s.acquire(timeout=5)), drainer(lambda s: bool(s.acquire(blocking=False))), sem.unlink
    if kind in {"Semaphore", "posix_ipc"}:
        module: Any = __import__("namedipc" if kind == "Semaphore" else "posix_ipc")
        sem = module.Semaphore(name, module.O_CREX, initial_value=0)

        def acquire(s: Any) -> bool:
            s.acquire(5)
            return True

        def try_acquire(s: Any) -> bool:
            try:
                s.acquire(0)
            except module.BusyError:
                return False
            return True

        return sem, acquire, drainer(try_acquire), sem.unlink
    sem = threading.Semaphore(0) if kind == "threading" else multiprocessing.Semaphore(0)
    # multiprocessing's keyword is `block`, threading's `blocking`: positional serves both.
    return sem, lambda s: bool(s.acquire(True, 5)), drainer(lambda s: bool(s.acquire(False))), lambda: None


def main() -> int:
    kind, name, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    signal.signal(signal.SIGUSR1, handler)
    sem, acquire, drain, remove = make(kind, name)
    waiter = threading.get_ident()
    acquired = 0
    try:
        for _ in range(rounds):
            started = threading.Event()

            def release_and_signal(started: threading.Event = started) -> None:
                started.wait()
                sem.release()
                signal.pthread_kill(waiter, signal.SIGUSR1)

            helper = threading.Thread(target=release_and_signal)
            helper.start()
            try:
                started.set()
                if acquire(sem):
                    acquired += 1
            except Handled:
                pass
            # The handler may still be pending here, or run during join.
            while True:
                try:
                    helper.join()
                    break
                except Handled:
                    pass
        left = drain(sem)
    finally:
        remove()
    print(f"lost {rounds - acquired - left} of {rounds} (acquired {acquired}, left {left})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
