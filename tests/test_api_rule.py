"""Every primitive follows the API rule of docs/conventions.md: how a handle
is named, created and closed, `created`, `closed`, `unlink`, the slot count's
names, `release(n)`, and what the package exports."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import namedipc
from namedipc import MessageQueue, NamedSemaphore, RobustSemaphore, Semaphore, SharedMemory
from support.names import Names


def test_flags_and_every_unlink_function_are_exported() -> None:
    assert "Flags" in namedipc.__all__
    assert NamedSemaphore.Flags is namedipc.Flags is RobustSemaphore.Flags
    for kind in ("semaphore", "shared_memory", "message_queue", "robust_semaphore"):
        assert f"unlink_{kind}" in namedipc.__all__
    assert set(namedipc.__all__) <= set(dir(namedipc))


Opener = Callable[[str], Any]

OPENERS: dict[str, tuple[str, Opener]] = {
    "Semaphore": ("names", lambda name: Semaphore(name, namedipc.O_CREX)),
    "NamedSemaphore": ("names", lambda name: NamedSemaphore(name, 1, NamedSemaphore.Flags.RAISE_IF_EXISTS)),
    "RobustSemaphore": ("robust_names", lambda name: RobustSemaphore(name, 1, RobustSemaphore.Flags.RAISE_IF_EXISTS)),
    "SharedMemory": ("shm_names", lambda name: SharedMemory(name, namedipc.O_CREX, size=64)),
    "MessageQueue": ("mq_names", lambda name: MessageQueue(name, namedipc.O_CREX)),
}
UNLINK: dict[str, Callable[[str], None]] = {
    "Semaphore": namedipc.unlink_semaphore,
    "NamedSemaphore": namedipc.unlink_semaphore,
    "RobustSemaphore": namedipc.unlink_robust_semaphore,
    "SharedMemory": namedipc.unlink_shared_memory,
    "MessageQueue": namedipc.unlink_message_queue,
}


@pytest.fixture(params=sorted(OPENERS))
def made(request: pytest.FixtureRequest) -> tuple[str, str, Opener]:
    kind = request.param
    fixture, opener = OPENERS[kind]
    names: Names = request.getfixturevalue(fixture)
    return kind, names(), opener


def test_every_handle_says_whether_it_created_its_object(made: tuple[str, str, Opener]) -> None:
    kind, name, opener = made
    first = opener(name)
    other = type(first)(name)  # opens what exists
    try:
        assert (first.created, other.created) == (True, False), kind
        assert (first.closed, other.closed) == (False, False)
    finally:
        other.close()
        first.unlink()
        first.close()
    # What describes a handle stays readable after close().
    assert (first.name, first.created, first.closed) == (name, True, True)


def test_every_kind_is_removed_by_name_with_its_unlink_function(made: tuple[str, str, Opener]) -> None:
    kind, name, opener = made
    handle = opener(name)
    UNLINK[kind](name)
    with pytest.raises(namedipc.NotFoundError):
        UNLINK[kind](name)
    cls = type(handle)
    # flags=0 opens what exists; the threading-style classes say it with a flag.
    existing = {"handle_existence": cls.Flags.RAISE_IF_NOT_EXISTS} if hasattr(cls, "Flags") else {}
    with pytest.raises(namedipc.NotFoundError):
        cls(name, **existing)
    handle.close()


@pytest.mark.parametrize("cls", [NamedSemaphore, RobustSemaphore])
def test_a_name_is_shown_with_one_leading_slash(cls: type[Any], names: Names, robust_names: Names) -> None:
    name = (robust_names if cls is RobustSemaphore else names)()
    sem = cls(name.lstrip("/"), 1)
    try:
        assert sem.name == name
    finally:
        sem.unlink()
        sem.close()


def test_named_semaphore_takes_value_and_initial_value(sem_name: str) -> None:
    assert NamedSemaphore(sem_name, value=3).value == 3  # the creator removes it at once
    assert NamedSemaphore(sem_name, initial_value=2).value == 2
    with pytest.raises(TypeError, match="not both"):
        NamedSemaphore(sem_name, 1, initial_value=1)


def test_robust_release_n_gives_back_all_or_none(robust_name: str) -> None:
    sem = RobustSemaphore(robust_name, 3)
    try:
        assert sem.acquire() and sem.acquire()
        with pytest.raises(ValueError):
            sem.release(3)  # holds two
        assert sem.value == 1
        sem.release(2)
        assert sem.value == 3
        with pytest.raises(ValueError):
            sem.release(0)
        with pytest.raises(TypeError):
            sem.release("1")  # type: ignore[arg-type]
    finally:
        sem.close()


def test_robust_release_n_as_cpython_lock_tests_multirelease(robust_name: str) -> None:
    """CPython's lock_tests.BaseSemaphoreTests.test_multirelease, through RobustSemaphore."""
    sem = RobustSemaphore(robust_name, 7)
    try:
        sem.acquire()
        sem.acquire()
        sem.acquire()
        sem.release(3)
        assert sem.value == 7
        for _ in range(7):
            assert sem.acquire(blocking=False)
        assert not sem.acquire(blocking=False)
        sem.release(7)
        assert sem.value == 7
    finally:
        sem.close()


def test_message_queue_created_also_for_a_random_name(mq_names: Names) -> None:
    queue = MessageQueue(None, namedipc.O_CREX)
    mq_names.track(queue.name)
    try:
        assert queue.created
    finally:
        queue.unlink()
        queue.close()
