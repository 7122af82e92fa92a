"""How `Semaphore.acquire()` and `release()` take their arguments and report
errors, on the call path that skips PyO3's (crates/namedipc-python/src/fast_path.rs):
the same signature, docs, messages, errors and signal handling as any
other method, for instances of subclasses too."""

from __future__ import annotations

import ctypes
import inspect
import operator
import os
import signal
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pytest

import namedipc
from namedipc import Semaphore


@pytest.fixture
def sem(sem_name: str) -> Iterator[Semaphore]:
    s = Semaphore(sem_name, namedipc.O_CREX, 0o600, 1)
    try:
        yield s
    finally:
        if not s.closed:
            s.close()


def test_signature_and_docs_are_kept() -> None:
    assert str(inspect.signature(Semaphore.acquire)) == "(self, /, timeout=None)"
    assert str(inspect.signature(Semaphore.release)) == "(self, /)"
    assert (Semaphore.acquire.__doc__ or "").startswith("Takes the semaphore.")
    assert (Semaphore.release.__doc__ or "").startswith("Gives the semaphore back")
    assert Semaphore.acquire.__name__ == "acquire"
    assert Semaphore.release.__qualname__ == "Semaphore.release"


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((), {}), ((None,), {}), ((), {"timeout": None}), ((0,), {}), ((), {"timeout": 0}), ((0.5,), {})],
)
def test_every_spelling_of_the_timeout_takes_a_free_slot(
    sem: Semaphore, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    acquire: Callable[..., object] = sem.acquire
    release: Callable[[], object] = sem.release
    assert acquire(*args, **kwargs) is None
    assert sem.value == 0
    assert release() is None
    assert sem.value == 1


@pytest.mark.parametrize(("args", "kwargs"), [((0,), {}), ((), {"timeout": 0}), ((0.01,), {})])
def test_no_free_slot_is_busy_error(sem: Semaphore, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    sem.acquire()
    try:
        with pytest.raises(namedipc.BusyError, match="is busy"):
            sem.acquire(*args, **kwargs)
    finally:
        sem.release()


def test_busy_errors_are_alike_whichever_way_they_are_raised(sem: Semaphore) -> None:
    # The first BusyError of a handle takes the full path, later ones of
    # acquire(0) and acquire(timeout=0) the fast one; acquire(0.0) and
    # acquire(False) always take the full path.
    sem.acquire()
    try:
        seen = []
        calls = [partial(sem.acquire, 0)] * 3 + [partial(sem.acquire, timeout=0)] * 2
        calls += [partial(sem.acquire, 0.0), partial(sem.acquire, False), partial(sem.acquire, 0)]
        for call in calls:
            with pytest.raises(namedipc.BusyError) as raised:
                call()
            error = raised.value
            assert isinstance(error, TimeoutError)
            seen.append((type(error), error.args, error.errno, str(error)))
        assert len(set(seen)) == 1
        message = f"semaphore '{sem.name}' is busy: no slot was free in the time allowed"
        assert seen[0][1:] == ((message,), None, message)
        assert sem.value == 0
    finally:
        sem.release()


def test_acquire_none_waits_like_acquire(sem: Semaphore) -> None:
    sem.acquire(None)
    assert sem.value == 0
    sem.release()
    sem.acquire(timeout=None)
    assert sem.value == 0
    sem.release()


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((1, 2), {}, r"^Semaphore.acquire\(\) takes from 0 to 1 positional arguments but 2 were given$"),
        ((), {"block": True}, r"^Semaphore.acquire\(\) got an unexpected keyword argument 'block'$"),
        ((0,), {"timeout": 0}, r"^Semaphore.acquire\(\) got multiple values for argument 'timeout'$"),
        (("soon",), {}, r"timeout must be None"),
        ((), {"timeout": "soon"}, r"timeout must be None"),
    ],
)
def test_wrong_arguments_are_type_errors(
    sem: Semaphore, args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        sem.acquire(*args, **kwargs)
    assert sem.value == 1


def test_release_takes_no_arguments(sem: Semaphore) -> None:
    with pytest.raises(TypeError, match=r"takes no arguments \(1 given\)"):
        sem.release(1)  # type: ignore[call-arg]
    assert sem.value == 1


def test_a_closed_handle_raises_existential_error(sem: Semaphore) -> None:
    sem.close()
    for call in (sem.acquire, sem.release, partial(sem.acquire, 0)):
        with pytest.raises(namedipc.ExistentialError, match="has been closed"):
            call()


def test_an_uninitialised_handle_raises_type_error() -> None:
    blank = Semaphore.__new__(Semaphore)
    for call in (blank.acquire, blank.release, partial(blank.acquire, timeout=0)):
        with pytest.raises(TypeError, match="never initialised"):
            call()


def test_release_past_the_maximum_is_overflow(sem_name: str) -> None:
    s = Semaphore(sem_name, namedipc.O_CREX, 0o600, namedipc.SEMAPHORE_VALUE_MAX)
    try:
        with pytest.raises(namedipc.OverflowValueError):
            s.release()
        assert s.value == namedipc.SEMAPHORE_VALUE_MAX
    finally:
        s.close()


def test_the_unbound_methods_check_their_instance(sem: Semaphore) -> None:
    with pytest.raises(TypeError):
        Semaphore.acquire(object())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Semaphore.release(object())  # type: ignore[arg-type]
    Semaphore.acquire(sem)
    Semaphore.release(sem)
    assert sem.value == 1


class Counting(Semaphore):
    """A subclass that overrides release and keeps acquire."""

    released = 0

    def release(self) -> None:
        super().release()
        self.released += 1


def test_subclasses_inherit_and_override(sem_name: str) -> None:
    s = Counting(sem_name, namedipc.O_CREX, 0o600, 1)
    try:
        s.acquire()
        s.release()
        assert (s.released, s.value) == (1, 1)
        s.acquire()
        with pytest.raises(namedipc.BusyError):
            s.acquire(0)
        s.release()
        assert (s.released, s.value) == (2, 1)
    finally:
        s.close()


class Handled(Exception):
    """What the test's signal handler raises."""


def test_a_handler_that_raises_right_after_a_free_slot_was_taken_gives_it_back(sem: Semaphore) -> None:
    # C's kill() (through ctypes: os.kill runs the handler itself) and
    # acquire are called one right after the other from C (map), with no
    # bytecode between them at which the interpreter would run the handler:
    # the signal is pending when acquire takes the slot, acquire runs the
    # handler (which sees the slot taken), and its exception must leave the
    # slot in place.
    seen: list[int] = []

    def handler(signum: int, frame: object) -> None:
        seen.append(sem.value)
        raise Handled

    previous = signal.signal(signal.SIGUSR1, handler)
    try:
        kill = ctypes.CDLL(None, use_errno=True).kill
        calls: list[Callable[[], object]] = [partial(kill, os.getpid(), signal.SIGUSR1), sem.acquire]
        with pytest.raises(Handled):
            list(map(operator.call, calls))
        assert seen == [0]
        assert sem.value == 1
    finally:
        signal.signal(signal.SIGUSR1, previous)
    sem.acquire()
    sem.release()
    assert sem.value == 1
