"""The no-argument methods of the posix_ipc classes that skip PyO3's call
path (crates/namedipc-python/src/fast_path.rs): `close()` and `unlink()` of
Semaphore and MessageQueue, `close_fd()`, `close()` and `unlink()` of
SharedMemory. They keep their signature and docs, check their instance and
arguments, and behave as the methods they replace, for subclasses too.
What closing does (waiters, callbacks, `.buf`) is tested with each class."""

from __future__ import annotations

import inspect
import os
from typing import Any

import pytest

import namedipc
from namedipc import MessageQueue, Semaphore, SharedMemory

METHODS = [
    (Semaphore, "close", "Closes this handle"),
    (Semaphore, "unlink", "Removes the semaphore's name"),
    (SharedMemory, "close_fd", "Closes the file descriptor"),
    (SharedMemory, "close", "Unmaps .buf and closes the file descriptor"),
    (SharedMemory, "unlink", "Removes the segment's name"),
    (MessageQueue, "close", "Closes this handle"),
    (MessageQueue, "unlink", "Removes the queue's name"),
]

IDS = [f"{cls.__name__}.{name}" for cls, name, _ in METHODS]

KINDS = {Semaphore: "semaphore", SharedMemory: "shared memory segment", MessageQueue: "message queue"}


def make(cls: type[Any], name: str) -> Any:
    """A new object of `cls` at `name`, created by this call."""
    if cls is SharedMemory:
        return cls(name, namedipc.O_CREX, 0o600, 4096)
    return cls(name, namedipc.O_CREX, 0o600)


def still_open(handle: Any) -> bool:
    """Whether `handle` is open, as its class tells."""
    if isinstance(handle, Semaphore):
        return not handle.closed
    if isinstance(handle, SharedMemory):
        return bool(handle.fd >= 0)
    return bool(handle.mqd >= 0)


@pytest.mark.parametrize(("cls", "name", "doc"), METHODS, ids=IDS)
def test_signature_and_docs_are_kept(cls: type[Any], name: str, doc: str) -> None:
    method = getattr(cls, name)
    assert str(inspect.signature(method)) == "(self, /)"
    assert (method.__doc__ or "").startswith(doc)
    assert method.__name__ == name
    assert method.__qualname__ == f"{cls.__name__}.{name}"


@pytest.mark.parametrize(("cls", "name", "doc"), METHODS, ids=IDS)
def test_they_take_no_arguments(cls: type[Any], name: str, doc: str, name_for: dict[type[Any], str]) -> None:
    handle = make(cls, name_for[cls])
    try:
        with pytest.raises(TypeError, match=rf"^{cls.__name__}.{name}\(\) takes no arguments \(1 given\)$"):
            getattr(handle, name)(1)
        with pytest.raises(TypeError, match="takes no keyword arguments"):
            getattr(handle, name)(now=True)
        # Nothing happened: the handle is open and the name is there.
        assert still_open(handle)
        again = cls(name_for[cls])
        assert still_open(again)
        again.close()
    finally:
        handle.unlink()
        handle.close()


@pytest.mark.parametrize(("cls", "name", "doc"), METHODS, ids=IDS)
def test_the_unbound_methods_check_their_instance(
    cls: type[Any], name: str, doc: str, name_for: dict[type[Any], str]
) -> None:
    other = Semaphore if cls is not Semaphore else MessageQueue
    stranger = make(other, name_for[other])
    try:
        with pytest.raises(TypeError, match=rf"descriptor '{name}' for 'namedipc.{cls.__name__}' objects"):
            getattr(cls, name)(stranger)
        with pytest.raises(TypeError):
            getattr(cls, name)(object())
    finally:
        stranger.unlink()
        stranger.close()


@pytest.mark.parametrize(("cls", "name", "doc"), METHODS, ids=IDS)
def test_an_uninitialised_handle_raises_type_error(cls: type[Any], name: str, doc: str) -> None:
    new: Any = cls.__new__
    blank = new(cls)
    with pytest.raises(TypeError, match=rf"^this {KINDS[cls]} was never initialised"):
        getattr(blank, name)()


@pytest.mark.parametrize("cls", [Semaphore, MessageQueue])
def test_unlink_then_close_then_close_again(cls: type[Any], name_for: dict[type[Any], str]) -> None:
    handle = make(cls, name_for[cls])
    assert handle.unlink() is None
    with pytest.raises(namedipc.NotFoundError):
        cls(name_for[cls])
    assert handle.close() is None
    with pytest.raises(namedipc.ExistentialError, match="has been closed"):
        handle.close()
    if cls is MessageQueue:
        with pytest.raises(namedipc.ExistentialError):
            handle.send(b"x")


def test_message_queue_close_after_its_queue_was_shared(mq_name: str) -> None:
    """A queue a call used outside the lock closes through the full path."""
    q = make(MessageQueue, mq_name)
    try:
        q.send(b"one", timeout=1)
        assert q.receive(timeout=1)[0] == b"one"
        q.request_notification(None)
    finally:
        q.unlink()
        assert q.close() is None
    with pytest.raises(namedipc.ExistentialError):
        q.receive(0)


def test_shared_memory_close_fd_then_close_twice(shm_name: str) -> None:
    m = make(SharedMemory, shm_name)
    fd = m.fd
    assert m.close_fd() is None
    assert m.close_fd() is None
    assert m.fd == -1
    with pytest.raises(OSError):
        os.fstat(fd)
    m.unlink()
    assert m.close() is None
    assert m.close() is None
    with pytest.raises(namedipc.ExistentialError):
        m.buf  # noqa: B018


def test_shared_memory_close_with_a_mapping_takes_the_full_path(shm_name: str) -> None:
    m = make(SharedMemory, shm_name)
    try:
        view = memoryview(m.buf)
        with pytest.raises(BufferError):
            m.close()
        view[0] = 7
        view.release()
        assert m.close() is None
        assert m.close() is None
    finally:
        namedipc.unlink_shared_memory(shm_name)


class CountingQueue(MessageQueue):
    """A subclass that overrides close and keeps unlink."""

    closes = 0

    def close(self) -> None:
        super().close()
        self.closes += 1


class Segment(SharedMemory):
    """A subclass that keeps every method."""


def test_subclasses_inherit_and_override(mq_name: str, shm_name: str) -> None:
    q = CountingQueue(mq_name, namedipc.O_CREX, 0o600)
    q.unlink()
    q.close()
    assert q.closes == 1
    with pytest.raises(namedipc.ExistentialError):
        q.close()
    m = Segment(shm_name, namedipc.O_CREX, 0o600, 4096)
    m.close_fd()
    assert m.fd == -1
    m.unlink()
    with pytest.raises(namedipc.NotFoundError):
        SharedMemory(shm_name)
    m.close()
    # Closing twice is harmless, through the base class's method too.
    SharedMemory.close(m)
