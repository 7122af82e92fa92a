"""asyncio glue behind the handles' ``*_async`` methods and ``async with``.

The compiled classes check their arguments (with the sync API's messages)
and return coroutines of the functions below, which work on any object with
the same few methods, so every semaphore class shares one implementation.

Semaphores: a POSIX semaphore has no file descriptor an event loop could
watch, so a wait needs a thread. Each semaphore object that has async
waiters gets ONE waiter thread, whatever the number of waiters and loops; it
blocks in ``acquire(timeout=slice)``, hands each slot it takes to the oldest
waiter still waiting (on that waiter's loop), and ends as soon as no waiter
is left. The hand-over is decided on the waiter's loop, where a waiter's
cancellation or timeout happens too, so a slot goes either to a waiter that
returns True or back to the semaphore, never to nobody.

Message queues: on Linux a queue descriptor can be polled, so a waiting
send or receive registers it with the loop (``add_writer``/``add_reader``)
and uses no thread: one loop waits on any number of queues.
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import threading
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from namedipc._namedipc import BusyError


class Acquirable(Protocol):
    """What the semaphore glue needs: threading.Semaphore's acquire and release."""

    def acquire(self, blocking: bool = ..., timeout: Any = ...) -> bool: ...
    def release(self) -> None: ...


class Queue(Protocol):
    """What the message queue glue needs: posix_ipc's MessageQueue."""

    def send(self, message: bytes, timeout: Any = ..., priority: int = ...) -> None: ...
    def receive(self, timeout: Any = ...) -> tuple[bytes, int]: ...
    @property
    def block(self) -> bool: ...
    @property
    def mqd(self) -> int: ...
    @property
    def name(self) -> str: ...


S = TypeVar("S", bound=Acquirable)
T = TypeVar("T")

# How long the waiter thread blocks at a time before it checks whether
# anyone still waits: the longest a thread outlives its last waiter. Each
# slice is a wake-up of an idle process, so it is long (a waiter that is
# cancelled or times out does not wait for it: it is decided on its loop).
WAITER_SLICE = 0.5


# --- semaphores --------------------------------------------------------------


class _Waiters:
    """The async waiters on one semaphore object and the thread serving them.
    It exists (in ``_semaphore_waiters``) exactly while the thread runs."""

    def __init__(self, sem: Acquirable) -> None:
        self.sem = sem
        # (loop, future) in arrival order; a future that is done (cancelled,
        # timed out) no longer wants a slot and is dropped when met.
        self.queue: collections.deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[bool]]] = collections.deque()


# Guards _semaphore_waiters and every _Waiters.queue (touched by loops and waiter threads).
_lock = threading.Lock()
# id(semaphore) -> its waiters; the entry holds the semaphore, so the id stays its own.
_semaphore_waiters: dict[int, _Waiters] = {}


def _reset_after_fork() -> None:
    # The child has none of the parent's threads: forget what they served.
    global _lock
    _lock = threading.Lock()
    _semaphore_waiters.clear()


os.register_at_fork(after_in_child=_reset_after_fork)


def _live(entry: tuple[asyncio.AbstractEventLoop, asyncio.Future[bool]]) -> bool:
    loop, future = entry
    return not future.done() and not loop.is_closed()


def _drop_dead(queue: collections.deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[bool]]]) -> None:
    while queue and not _live(queue[0]):
        queue.popleft()


def _has_waiters(sem: Acquirable) -> bool:
    with _lock:
        waiters = _semaphore_waiters.get(id(sem))
        return waiters is not None and any(_live(entry) for entry in waiters.queue)


def _enqueue(sem: Acquirable, loop: asyncio.AbstractEventLoop, future: asyncio.Future[bool]) -> None:
    with _lock:
        waiters = _semaphore_waiters.get(id(sem))
        start = waiters is None
        if waiters is None:
            waiters = _semaphore_waiters[id(sem)] = _Waiters(sem)
        waiters.queue.append((loop, future))
    if start:
        name = getattr(sem, "name", "?")
        threading.Thread(target=_serve, args=(waiters,), name=f"namedipc-aio {name}", daemon=True).start()


def _serve(waiters: _Waiters) -> None:
    """The waiter thread: takes slots while anyone waits, hands each over."""
    sem = waiters.sem
    # Signals go to the threads that handle them (Python runs handlers on
    # the main thread, whose own waits a signal ends at once), not here.
    signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    try:
        while True:
            with _lock:
                _drop_dead(waiters.queue)
                if not waiters.queue:
                    del _semaphore_waiters[id(sem)]
                    return
            if not sem.acquire(True, WAITER_SLICE):
                continue
            with _lock:
                _drop_dead(waiters.queue)
                entry = waiters.queue.popleft() if waiters.queue else None
            if entry is None or not _call_soon(entry[0], _hand_over, sem, entry[1]):
                sem.release()
    except BaseException as error:  # noqa: BLE001 - every waiter must hear whatever ended the thread
        # The handle was closed (or worse): every waiter hears it.
        with _lock:
            del _semaphore_waiters[id(sem)]
            entries = list(waiters.queue)
            waiters.queue.clear()
        for loop, future in entries:
            _call_soon(loop, _fail, future, error)


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[..., object], *args: object) -> bool:
    """Schedules `callback` on `loop` from another thread; False if the loop is closed."""
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:
        return False
    return True


def _hand_over(sem: Acquirable, future: asyncio.Future[bool]) -> None:
    """On the waiter's loop: the slot is the waiter's if it still waits,
    else the semaphore's again."""
    if future.done():
        sem.release()
    else:
        future.set_result(True)


def _fail(future: asyncio.Future[bool], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)


def _time_up(future: asyncio.Future[bool]) -> None:
    if not future.done():
        future.set_result(False)


async def acquire_async(sem: Acquirable, timeout: float | None) -> bool:
    """Takes one slot of `sem`: True when taken, False when `timeout`
    seconds (None: no limit, already checked to be >= 0) pass first.
    Cancelling the wait, at any point, leaves no slot taken."""
    # The first try takes no thread; skipped while earlier waiters queue,
    # so that this object's async waiters are served in arrival order.
    if timeout == 0 or not _has_waiters(sem):
        if sem.acquire(False):
            return True
        if timeout == 0:
            return False
    loop = asyncio.get_running_loop()
    future: asyncio.Future[bool] = loop.create_future()
    timer = None if timeout is None else loop.call_later(timeout, _time_up, future)
    _enqueue(sem, loop, future)
    try:
        return await future
    except BaseException:
        # Cancelled (or closed) just after the hand-over: the slot goes back.
        if future.done() and not future.cancelled() and future.exception() is None and future.result():
            sem.release()
        raise
    finally:
        if timer is not None:
            timer.cancel()


async def aenter(sem: S) -> S:
    """``async with sem``: waits as long as it takes for a slot."""
    await acquire_async(sem, None)
    return sem


async def aexit(sem: Acquirable) -> None:
    sem.release()


# --- message queues ------------------------------------------------------------


class _Readiness:
    """Waiters for one queue handle to become readable (or writable) on one
    loop. The descriptor is watched while someone waits and nobody woken is
    still trying, and each readiness wakes one waiter, the oldest; one that
    finds nothing to take waits again at the front. Level-triggered polling
    reports a ready queue again, so no readiness is lost."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: Queue, writable: bool, key: tuple[Any, ...]) -> None:
        self.loop = loop
        self.queue = queue  # keeps the handle, and so its id in `key`, alive
        self.writable = writable
        self.key = key
        # Our own descriptor: the loop's registration stays valid even if the
        # handle is closed meanwhile and its number reused.
        self.fd = os.dup(queue.mqd)
        self.waiting: collections.deque[asyncio.Future[bool]] = collections.deque()
        self.woken: asyncio.Future[bool] | None = None
        self.watched = False

    def wait(self, front: bool) -> asyncio.Future[bool]:
        future: asyncio.Future[bool] = self.loop.create_future()
        if front:
            self.waiting.appendleft(future)
        else:
            self.waiting.append(future)
        try:
            self._update()
        except BaseException:
            self.waiting.remove(future)
            self._update()
            raise
        return future

    def done_with(self, future: asyncio.Future[bool]) -> None:
        """`future`'s waiter has tried again, given up, or been cancelled."""
        if self.woken is future:
            self.woken = None
        else:
            try:
                self.waiting.remove(future)
            except ValueError:
                pass
        self._update()

    def _ready(self) -> None:
        while self.waiting and self.waiting[0].done():
            self.waiting.popleft()
        if self.waiting:
            self.woken = self.waiting.popleft()
            self.woken.set_result(True)
        self._update()

    def _update(self) -> None:
        if self.fd < 0:
            return  # given up already
        live = any(not f.done() for f in self.waiting)
        want = live and self.woken is None
        if want and not self.watched:
            if self.writable:
                self.loop.add_writer(self.fd, self._ready)
            else:
                self.loop.add_reader(self.fd, self._ready)
        elif not want and self.watched:
            if self.writable:
                self.loop.remove_writer(self.fd)
            else:
                self.loop.remove_reader(self.fd)
        self.watched = want
        if not live and self.woken is None:
            with _lock:
                if _readiness.get(self.key) is self:
                    del _readiness[self.key]
            os.close(self.fd)
            self.fd = -1
            self.waiting.clear()


# (loop, id(handle), writable) -> the waiters; several loops may run in several threads.
_readiness: dict[tuple[Any, ...], _Readiness] = {}


def _readiness_for(loop: asyncio.AbstractEventLoop, queue: Queue, writable: bool) -> _Readiness:
    key = (loop, id(queue), writable)
    with _lock:
        readiness = _readiness.get(key)
        if readiness is None:
            readiness = _readiness[key] = _Readiness(loop, queue, writable, key)
        return readiness


async def _transfer(queue: Queue, timeout: float | None, writable: bool, attempt: Callable[[float | None], T]) -> T:
    """Runs `attempt(0)` (a send or receive that does not wait) until it
    moves a message, waiting for the queue's descriptor on the running loop."""
    try:
        return attempt(0)
    except BusyError:
        if timeout == 0:
            raise
    if not queue.block:
        # A handle with block=False never waits; the sync call says so.
        return attempt(timeout)
    if queue.mqd < 0:
        return attempt(0)  # closed by another thread meanwhile: ExistentialError
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    readiness = _readiness_for(loop, queue, writable)
    future = readiness.wait(front=False)
    try:
        while True:
            timer = None if deadline is None else loop.call_at(deadline, _time_up, future)
            try:
                ready = await future
            finally:
                if timer is not None:
                    timer.cancel()
            try:
                return attempt(0)
            except BusyError:
                if not ready:
                    raise _timed_out(queue, writable, timeout) from None
            # Another waiter (or process) took it: wait again, first in line.
            previous, future = future, readiness.wait(front=True)
            readiness.done_with(previous)
    finally:
        readiness.done_with(future)


def _timed_out(queue: Queue, writable: bool, timeout: float | None) -> BusyError:
    state = "full" if writable else "empty"
    return BusyError(
        f"message queue '{queue.name}' is {state} and stayed {state} for the whole timeout ({timeout:.3f} s)"
    )


async def send_async(queue: Queue, message: bytes, priority: int, timeout: float | None) -> None:
    """Sends `message` (bytes) with `priority`, waiting at most `timeout`
    seconds (None: no limit) for room; BusyError when the queue stays full."""
    await _transfer(queue, timeout, True, lambda t: queue.send(message, t, priority))


async def receive_async(queue: Queue, timeout: float | None) -> tuple[bytes, int]:
    """Receives (message, priority), waiting at most `timeout` seconds
    (None: no limit) for one; BusyError when the queue stays empty."""
    return await _transfer(queue, timeout, False, queue.receive)
