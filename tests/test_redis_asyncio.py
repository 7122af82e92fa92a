"""RedisSemaphore under asyncio, against a real redis-server: acquire_async,
async with (each task gives back its own slot), waits that leave the loop
free, timeouts, and cancellation at many points, none of which leaves a slot
taken."""

from __future__ import annotations

import asyncio
import random
import threading
import time

import pytest

import namedipc
from support.aio import run_async
from support.redis_server import RedisSemaphores, RedisServer
from support.waiting import WAIT, poll_until

pytest_plugins = ["support.redis_fixtures"]


def redis_aio_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("namedipc-redis-aio")]


def no_waiter_threads_left() -> None:
    poll_until(lambda: not redis_aio_threads(), what="the asyncio waiter threads ended")


def test_acquire_async_and_async_with(redis_sems: RedisSemaphores) -> None:
    sem = redis_sems(2)

    async def main() -> None:
        assert await sem.acquire_async() is True
        assert sem.fence is not None and sem.slot == 0
        async with sem as entered:
            assert entered is sem
            assert sem.slot == 1, "inside the block the task sees its latest slot"
            assert not await sem.acquire_async(0), "timeout=0 does not wait"
        assert sem.slot == 0
        sem.release()

    run_async(main())
    assert sem.value == 2
    no_waiter_threads_left()


def test_each_task_gives_back_its_own_slot(redis_sems: RedisSemaphores) -> None:
    sem = redis_sems(2)

    async def main() -> None:
        first_in = asyncio.Event()
        second_in = asyncio.Event()
        first_out = asyncio.Event()
        fences: dict[str, int | None] = {}

        async def first() -> None:
            async with sem:
                fences["first"] = sem.fence
                first_in.set()
                await second_in.wait()
            first_out.set()

        async def second() -> None:
            await first_in.wait()
            async with sem:
                fences["second"] = sem.fence
                second_in.set()
                await first_out.wait()
                assert sem.fence == fences["second"], "the first task's exit took its own slot"
                assert [lease.fence for lease in sem.holders()] == [fences["second"]]

        await asyncio.gather(first(), second())

    run_async(main())
    assert sem.value == 2


def test_a_wait_leaves_the_loop_free_and_times_out(redis_sems: RedisSemaphores) -> None:
    sem = redis_sems()
    holder = redis_sems(name=sem.name)
    assert holder.acquire()

    async def main() -> None:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticking = asyncio.create_task(ticker())
        started = time.monotonic()
        assert await sem.acquire_async(0.3) is False
        assert time.monotonic() - started >= 0.3
        assert ticks >= 10, "the loop ran while the task waited"
        ticking.cancel()

    run_async(main())
    holder.release()
    assert sem.value == 1
    no_waiter_threads_left()


def test_a_release_elsewhere_wakes_an_async_waiter(redis_sems: RedisSemaphores) -> None:
    sem = redis_sems()
    holder = redis_sems(name=sem.name)
    assert holder.acquire()

    async def main() -> float:
        waiting = asyncio.create_task(sem.acquire_async(WAIT))
        await asyncio.to_thread(redis_sems.server.wait_blocked)
        assert not waiting.done()
        released = time.monotonic()
        await asyncio.to_thread(holder.release)
        assert await waiting is True
        return time.monotonic() - released

    assert run_async(main()) < 0.5
    sem.release()


def test_cancelling_a_wait_takes_no_slot(redis_sems: RedisSemaphores) -> None:
    sem = redis_sems()
    holder = redis_sems(name=sem.name)
    assert holder.acquire()

    async def main() -> None:
        waiting = asyncio.create_task(sem.acquire_async())
        await asyncio.to_thread(redis_sems.server.wait_blocked)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(sem.acquire_async(), 0.1)

    run_async(main())
    no_waiter_threads_left()
    holder.release()
    assert holder.value == 1 and holder.holders() == []


def test_cancellation_at_many_points_never_leaves_a_slot_taken(redis_sems: RedisSemaphores) -> None:
    """A slot freed at a random moment, and the waiting task cancelled at
    another, close to it (before, at, and after the hand-over): either the
    task returned True and holds the slot, or it was cancelled and holds
    nothing; the slot is never lost."""
    sem = redis_sems()
    holder = redis_sems(name=sem.name)
    rng = random.Random(7)
    outcomes = {"acquired": 0, "cancelled": 0}

    async def one_round(release_after: float, cancel_after: float) -> None:
        assert await asyncio.to_thread(holder.acquire, timeout=WAIT)
        waiting = asyncio.create_task(sem.acquire_async(WAIT))
        loop = asyncio.get_running_loop()
        loop.call_later(release_after, lambda: threading.Thread(target=holder.release).start())
        await asyncio.sleep(cancel_after)
        waiting.cancel()
        try:
            got = await waiting
        except asyncio.CancelledError:
            outcomes["cancelled"] += 1
        else:
            assert got is True
            outcomes["acquired"] += 1
            await asyncio.to_thread(sem.release)
        # Whatever happened, the slot is free again (the holder's release
        # may still be on its way).
        await asyncio.to_thread(poll_until, lambda: holder.value == 1, WAIT, "the slot free again")

    async def main() -> None:
        for i in range(30):
            release_after = rng.uniform(0.0, 0.02)
            cancel_after = release_after + rng.uniform(-0.01, 0.01) if i % 3 else 0.0
            await one_round(release_after, max(0.0, cancel_after))

    run_async(main())
    no_waiter_threads_left()
    assert sem.value == 1 and sem.holders() == []
    assert outcomes["cancelled"] > 0 and outcomes["acquired"] > 0, outcomes


def test_async_with_on_a_lost_lease_raises_lease_lost(redis_sems: RedisSemaphores, redis_server: RedisServer) -> None:
    sem = redis_sems(lease=0.5)

    async def main() -> None:
        async with sem:
            redis_server.pause()
            try:
                await asyncio.to_thread(poll_until, lambda: sem.lost, 2, "the lease lost")
            finally:
                redis_server.resume()

    with pytest.raises(namedipc.LeaseLost):
        run_async(main())
    assert sem.value == 1


def test_an_unreachable_server_fails_the_waiting_task(redis_sems: RedisSemaphores, redis_server: RedisServer) -> None:
    sem = namedipc.RedisSemaphore(redis_sems.name(), url=redis_server.url(), lease=0.5, connect_timeout=1)
    redis_sems.track(sem)
    redis_server.kill()

    async def main() -> None:
        with pytest.raises(namedipc.UnavailableError):
            await sem.acquire_async(2)

    run_async(main())
    no_waiter_threads_left()


def test_a_closed_handle_refuses_async_use(redis_sems: RedisSemaphores) -> None:
    sem = redis_sems()
    sem.close()
    with pytest.raises(namedipc.ExistentialError):
        sem.acquire_async()  # type: ignore[unused-coroutine]

    async def enter() -> None:
        async with sem:
            pass

    with pytest.raises(namedipc.ExistentialError):
        run_async(enter())
