"""asyncio: NamedSemaphore.acquire_async and ``async with`` (one waiter
thread per semaphore object, only while it has waiters; a cancelled wait
never keeps a slot), MessageQueue.send_async and receive_async (the queue's
descriptor on the loop, no thread), across independent processes."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import namedipc
from namedipc import MessageQueue, NamedSemaphore
from support.aio import aio_threads, join_aio_threads, settle
from support.aio import run_async as run
from support.names import Names
from support.processes import HELPERS, Helper, Peer
from support.waiting import WAIT, wait_until_blocked


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# --- NamedSemaphore ------------------------------------------------------------


def test_async_with_takes_and_gives_back_a_slot(sem_name: str) -> None:
    sem = NamedSemaphore(sem_name, 2)

    async def main() -> None:
        async with sem as entered:
            assert entered is sem
            assert sem.value == 1
            with pytest.raises(RuntimeError, match="boom"):  # noqa: PT012 - the async with is what is tested
                async with sem:
                    assert sem.value == 0
                    raise RuntimeError("boom")
            assert sem.value == 1
        assert sem.value == 2

    run(main())
    assert aio_threads() == []  # free slots are taken without a thread


def test_acquire_async_like_acquire(sem_name: str) -> None:
    sem = NamedSemaphore(sem_name, 1)

    async def main() -> None:
        assert await sem.acquire_async() is True
        assert await sem.acquire_async(0) is False
        assert await sem.acquire_async(-1) is False  # as threading: a negative timeout does not wait
        started = time.monotonic()
        assert await sem.acquire_async(timeout=0.1) is False
        assert time.monotonic() - started >= 0.1
        await settle()
        assert sem.value == 0
        sem.release()
        assert await sem.acquire_async(timeout=0.1) is True

    run(main())
    assert aio_threads() == []


@pytest.mark.parametrize(
    ("timeout", "error", "message"),
    [
        (float("nan"), ValueError, "finite number of seconds"),
        (float("inf"), ValueError, "finite number of seconds"),
        ("1", TypeError, "not str"),
    ],
)
def test_bad_timeouts_raise_at_the_call(sem_name: str, timeout: Any, error: type[Exception], message: str) -> None:
    sem = NamedSemaphore(sem_name, 0)
    with pytest.raises(error, match=message):
        _ = sem.acquire_async(timeout)
    assert sem.value == 0


def test_waits_for_a_slot_another_process_holds(sem_name: str, helper: type[Helper]) -> None:
    sem = NamedSemaphore(sem_name, 1)
    holder = helper("hold", sem_name)
    holder.expect("held")

    async def main() -> None:
        waiting = asyncio.create_task(sem.acquire_async(timeout=WAIT))
        # The loop keeps running while the waiter thread blocks on the semaphore.
        await asyncio.to_thread(wait_until_blocked, sem_name)
        assert not waiting.done()
        assert len(aio_threads()) == 1
        holder.ask("", "released")
        assert await waiting is True
        assert sem.value == 0
        sem.release()
        await settle()

    run(main())
    holder.finish()
    assert sem.value == 1


def test_one_thread_serves_many_waiters_in_arrival_order(sem_name: str, helper: type[Helper]) -> None:
    sem = NamedSemaphore(sem_name, 0)

    async def main() -> None:
        order: list[int] = []

        async def waiter(i: int) -> None:
            assert await sem.acquire_async(WAIT)
            order.append(i)

        tasks = []
        for i in range(20):
            tasks.append(asyncio.create_task(waiter(i)))
            await asyncio.sleep(0)  # each one queues before the next starts
        assert len(aio_threads()) == 1
        for served in range(1, 6):
            sem.release()
            done, _ = await asyncio.wait(tasks, timeout=WAIT, return_when=asyncio.FIRST_COMPLETED)
            tasks = [t for t in tasks if t not in done]
            assert order == list(range(served))
        # The rest are released from another process, all at once.
        helper("release", sem_name, "15").expect("released")
        await asyncio.wait_for(asyncio.gather(*tasks), WAIT)
        assert sorted(order) == list(range(20))
        await settle()

    run(main())
    assert aio_threads() == []
    assert sem.value == 0


def test_timeouts_leave_no_thread_and_no_slot(sem_name: str) -> None:
    sem = NamedSemaphore(sem_name, 0)

    async def main() -> None:
        results = await asyncio.gather(*(sem.acquire_async(0.01 * (i % 5 + 1)) for i in range(10)))
        assert results == [False] * 10
        await settle()

    run(main())
    assert aio_threads() == []
    assert sem.value == 0


def test_a_cancelled_waiter_passes_its_turn_on(sem_name: str) -> None:
    sem = NamedSemaphore(sem_name, 0)

    async def main() -> None:
        first = asyncio.create_task(sem.acquire_async())
        await asyncio.sleep(0)
        second = asyncio.create_task(sem.acquire_async())
        await asyncio.sleep(0)
        first.cancel()
        sem.release()
        assert await second is True
        with pytest.raises(asyncio.CancelledError):
            await first
        await settle()

    run(main())
    assert sem.value == 0


def test_cancelled_at_many_points_never_keeps_a_slot(sem_name: str) -> None:
    """A waiter is cancelled at every stage of a hand-over: before the slot
    is released, before the waiter thread takes it, once the thread has
    handed it to the loop (the thread has ended) but before the loop runs
    the hand-over, after the hand-over but before the waiter resumes, and
    after. Each time the slot ends up either returned by acquire_async or
    back in the semaphore."""
    sem = NamedSemaphore(sem_name, 0)
    outcomes: list[tuple[str, int, bool]] = []

    async def one_round(stage: str, iterations: int) -> None:
        waiting = asyncio.create_task(sem.acquire_async(timeout=WAIT))
        await asyncio.sleep(0)  # it found no slot and queued
        if stage != "before release":
            sem.release()
        if stage == "handed over":
            join_aio_threads()  # the thread ends right after handing the slot to the loop
        for _ in range(iterations):
            await asyncio.sleep(0)
        waiting.cancel()
        try:
            acquired = await waiting
            sem.release()
        except asyncio.CancelledError:
            acquired = False
        outcomes.append((stage, iterations, acquired))
        await settle()
        assert sem.value == (0 if stage == "before release" else 1), outcomes[-1]
        if sem.value:
            assert sem.acquire(blocking=False)

    async def main() -> None:
        for iterations in range(4):
            await one_round("before release", iterations)
            await one_round("handed over", iterations)
            for _ in range(10):
                await one_round("racing the thread", iterations)

    run(main())
    # The hand-over takes one loop iteration and the waiter resumes in the next:
    # a cancel up to then ends the wait (the slot is given back), later it is too late.
    handed_over = [(n, acquired) for stage, n, acquired in outcomes if stage == "handed over"]
    assert handed_over == [(0, False), (1, False), (2, True), (3, True)]
    assert not any(acquired for stage, _, acquired in outcomes if stage == "before release")
    assert aio_threads() == []


def test_async_with_under_random_timeouts_against_another_process(
    sem_name: str, helper: type[Helper], tmp_path: Path
) -> None:
    """Three slots, tasks that enter ``async with`` under timeouts that cancel
    them at random points, and another process taking slots meanwhile:
    never more than three inside, and all three slots back at the end."""
    sem = NamedSemaphore(sem_name, 3)
    counter = tmp_path / "count"
    counter.write_text("0")
    rival = helper("count", sem_name, str(counter), "300")
    rng = random.Random(6)
    inside = 0
    most = 0
    timed_out = 0

    async def worker(rounds: int) -> None:
        nonlocal inside, most, timed_out
        for _ in range(rounds):
            try:
                async with asyncio.timeout(rng.uniform(0, 0.002)):
                    async with sem:
                        inside += 1
                        most = max(most, inside)
                        try:
                            await asyncio.sleep(0)
                        finally:
                            inside -= 1
            except TimeoutError:
                timed_out += 1

    async def main() -> None:
        await asyncio.gather(*(worker(40) for _ in range(8)))
        await settle()

    run(main())
    rival.expect("done")
    rival.finish()
    assert counter.read_text() == "300"
    assert 1 <= most <= 3
    assert timed_out > 0
    assert sem.value == 3
    assert aio_threads() == []


def test_close_while_waiting_raises_in_the_waiter(sem_name: str) -> None:
    sem = NamedSemaphore(sem_name, 0)

    async def main() -> None:
        waiters = [asyncio.create_task(sem.acquire_async()) for _ in range(3)]
        await asyncio.to_thread(wait_until_blocked, sem_name)
        sem.close()
        for waiter in waiters:
            with pytest.raises(namedipc.ExistentialError, match="closed"):
                await waiter
        await settle()

    run(main())
    assert aio_threads() == []


def test_waiters_on_two_loops_share_the_thread(sem_name: str) -> None:
    sem = NamedSemaphore(sem_name, 0)
    results: list[bool] = []
    queued = threading.Barrier(3, timeout=WAIT)

    def other_loop() -> None:
        async def wait() -> bool:
            task = asyncio.create_task(sem.acquire_async(WAIT))
            await asyncio.sleep(0)
            await asyncio.to_thread(queued.wait)
            return await task

        results.append(asyncio.run(wait()))

    loops = [threading.Thread(target=other_loop) for _ in range(2)]
    for thread in loops:
        thread.start()
    queued.wait()
    assert len(aio_threads()) == 1
    sem.release(2)
    for thread in loops:
        thread.join(WAIT)
    assert results == [True, True]
    join_aio_threads()
    assert sem.value == 0


def test_subclass_and_awaiting_later(sem_name: str) -> None:
    class Gate(NamedSemaphore):
        pass

    gate = Gate(sem_name, 1)
    pending = gate.acquire_async()  # nothing happens until awaited
    assert gate.value == 1

    async def main() -> None:
        assert await pending is True
        assert gate.value == 0

    run(main())


# --- MessageQueue --------------------------------------------------------------


def mq_peer(programs: type[Peer], *args: str) -> Peer:
    return programs(sys.executable, HELPERS / "mq_peer.py", *args)


def test_receive_async_waits_for_another_process(mq_name: str, programs: type[Peer]) -> None:
    mq = MessageQueue(mq_name, namedipc.O_CREX)
    threads = threading.active_count()

    async def main() -> None:
        receiving = asyncio.create_task(mq.receive_async(timeout=WAIT))
        await asyncio.sleep(0)
        assert not receiving.done()
        mq_peer(programs, "send", mq_name, "7:00ff01").expect("sent 1")
        assert await receiving == (b"\x00\xff\x01", 7)
        assert threading.active_count() == threads

    run(main())


def test_send_async_waits_for_room(mq_name: str, programs: type[Peer]) -> None:
    mq = MessageQueue(mq_name, namedipc.O_CREX, max_messages=1)
    mq.send(b"first")

    async def main() -> None:
        sending = asyncio.create_task(mq.send_async("second ✓", priority=2, timeout=WAIT))
        await asyncio.sleep(0)
        assert not sending.done()
        assert mq_peer(programs, "receive", mq_name, "1").expect("0 ") == f"0 {b'first'.hex()}"
        await sending
        assert mq.receive(0) == ("second ✓".encode(), 2)

    run(main())


def test_one_loop_waits_on_many_queues(mq_names: Names) -> None:
    # Small queues: RLIMIT_MSGQUEUE counts their full size.
    queues = [MessageQueue(mq_names(), namedipc.O_CREX, max_messages=1, max_message_size=16) for _ in range(25)]
    threads = threading.active_count()
    fds = open_fds()
    sender = (
        "import sys, namedipc\n"
        "for i, name in reversed(list(enumerate(sys.argv[1:]))):\n"
        "    namedipc.MessageQueue(name).send(b'to %d' % i, priority=i % 4)\n"
    )

    async def main() -> None:
        receiving = [asyncio.create_task(q.receive_async(timeout=WAIT)) for q in queues]
        await asyncio.sleep(0)
        assert not any(t.done() for t in receiving)
        assert threading.active_count() == threads
        proc = subprocess.Popen([sys.executable, "-c", sender, *(q.name for q in queues)])
        try:
            received = await asyncio.gather(*receiving)
        finally:
            assert proc.wait(WAIT) == 0
        assert received == [(b"to %d" % i, i % 4) for i in range(len(queues))]

    run(main())
    assert open_fds() == fds  # every descriptor the waits watched is given back


def test_many_receivers_on_one_handle_each_get_one(mq_name: str) -> None:
    mq = MessageQueue(mq_name, namedipc.O_CREX)
    other = MessageQueue(mq_name)  # a second handle in the same process waits alongside

    async def main() -> None:
        tasks = [asyncio.create_task((mq if i % 3 else other).receive_async(WAIT)) for i in range(12)]
        await asyncio.sleep(0)
        writer = MessageQueue(mq_name)
        for i in range(12):
            writer.send(b"%d" % i)
            await asyncio.sleep(0)
        received = await asyncio.gather(*tasks)
        assert sorted(int(m) for m, _ in received) == list(range(12))
        # Waiters on one handle are served in arrival order.
        on_mq = [int(m) for i, (m, _) in enumerate(received) if i % 3]
        assert on_mq == sorted(on_mq)

    run(main())
    assert mq.current_messages == 0


def test_timeouts_raise_busy_error_like_the_sync_api(mq_name: str) -> None:
    mq = MessageQueue(mq_name, namedipc.O_CREX, max_messages=1)

    async def main() -> None:
        with pytest.raises(namedipc.BusyError) as sync_error:
            mq.receive(0.05)
        started = time.monotonic()
        with pytest.raises(TimeoutError) as async_error:
            await mq.receive_async(0.05)
        assert time.monotonic() - started >= 0.05
        assert isinstance(async_error.value, namedipc.BusyError)
        assert str(async_error.value) == str(sync_error.value)

        with pytest.raises(namedipc.BusyError, match="timeout=0 does not wait"):
            await mq.receive_async(0)
        await mq.send_async(b"x", timeout=0)
        with pytest.raises(namedipc.BusyError, match="is full and stayed full for the whole timeout"):
            await mq.send_async(b"y", timeout=0.05)
        mq.block = False
        with pytest.raises(namedipc.BusyError, match="block is False"):
            await mq.send_async(b"y")
        assert await mq.receive_async() == (b"x", 0)

    run(main())


def test_bad_arguments_raise_at_the_call(mq_name: str) -> None:
    mq = MessageQueue(mq_name, namedipc.O_CREX)
    with pytest.raises(TypeError, match="message must be bytes"):
        _ = mq.send_async(123)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="priority must be between 0"):
        _ = mq.send_async(b"x", priority=-1)
    with pytest.raises(TypeError, match="timeout must be None"):
        _ = mq.receive_async(-1)
    with pytest.raises(TypeError):
        _ = mq.send_async(b"x", 1)  # type: ignore[call-arg]  # priority and timeout are keyword-only

    async def main() -> None:
        reader = MessageQueue(mq_name, write=False)
        with pytest.raises(namedipc.PermissionsError, match="write=False"):
            await reader.send_async(b"x")
        mq.close()
        with pytest.raises(namedipc.ExistentialError, match="closed"):
            await mq.receive_async()

    run(main())


def test_message_is_taken_at_the_call(mq_name: str) -> None:
    mq = MessageQueue(mq_name, namedipc.O_CREX)
    data = bytearray(b"before")

    async def main() -> None:
        sending = mq.send_async(memoryview(data))
        data[:] = b"after!"
        await sending
        assert mq.receive(0) == (b"before", 0)

    run(main())


def test_cancelled_at_many_points_never_loses_a_message(mq_name: str) -> None:
    mq = MessageQueue(mq_name, namedipc.O_CREX)
    writer = MessageQueue(mq_name)
    fds = open_fds()

    async def main() -> None:
        got: list[bytes] = []
        for i in range(150):
            receiving = asyncio.create_task(mq.receive_async(timeout=WAIT))
            for _ in range(i % 3):
                await asyncio.sleep(0)
            writer.send(b"%d" % i)
            for _ in range((i // 3) % 5):
                await asyncio.sleep(0)
            receiving.cancel()
            try:
                message, _ = await receiving
                got.append(message)
            except asyncio.CancelledError:
                got.append(mq.receive(0)[0])  # still in the queue
        assert got == [b"%d" % i for i in range(150)]
        assert mq.current_messages == 0

    run(main())
    assert open_fds() == fds


def test_close_while_receive_async_waits(mq_name: str) -> None:
    mq = MessageQueue(mq_name, namedipc.O_CREX)

    async def main() -> None:
        receiving = asyncio.create_task(mq.receive_async(WAIT))
        await asyncio.sleep(0)
        mq.close()
        # The wait ends when the queue next becomes readable.
        MessageQueue(mq_name).send(b"x")
        with pytest.raises(namedipc.ExistentialError, match="closed"):
            await receiving

    run(main())
