"""asyncio in the tests: a coroutine run on a fresh, bounded event loop, and
the waiter threads of namedipc's asyncio glue."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from support.waiting import WAIT

T = TypeVar("T")


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Runs a test's coroutine on a fresh event loop, bounded by 3 * WAIT."""

    async def bounded() -> T:
        async with asyncio.timeout(WAIT * 3):
            return await coroutine

    return asyncio.run(bounded())


def aio_threads() -> list[threading.Thread]:
    """The asyncio glue's semaphore waiter threads alive now."""
    return [t for t in threading.enumerate() if t.name.startswith("namedipc-aio")]


def join_aio_threads() -> None:
    """Waits (bounded) for every semaphore waiter thread to end: one with no
    waiter left must not live on."""
    for thread in aio_threads():
        thread.join(WAIT)
        assert not thread.is_alive(), f"{thread.name} outlived its waiters"


async def settle() -> None:
    """Joins the waiter threads, then lets the loop run what they handed it
    (a slot for a waiter that is gone goes back to the semaphore there)."""
    join_aio_threads()
    for _ in range(3):
        await asyncio.sleep(0)
