"""NamedSemaphore: threading.Semaphore's manners, existence flags, and the
creator's clean-up."""

from __future__ import annotations

import gc
import re
import threading
import time
from pathlib import Path

import pytest

import namedipc
from namedipc import NamedSemaphore
from support.waiting import WAIT, wait_until_blocked

Flags = NamedSemaphore.Flags


def exists(name: str) -> bool:
    return (Path("/dev/shm") / f"sem.{name.lstrip('/')}").exists()


def test_flags_is_an_int_enum_on_the_class() -> None:
    assert [f.name for f in Flags] == ["RAISE_IF_EXISTS", "LINK_OR_CREATE", "RAISE_IF_NOT_EXISTS", "UNLINK_AND_CREATE"]
    assert namedipc.Flags is Flags


def test_link_or_create_creates_then_links(sem_name: str) -> None:
    first = NamedSemaphore(sem_name, 2)
    second = NamedSemaphore(sem_name, 5)
    assert (first.created, second.created) == (True, False)
    assert second.value == 2


def test_raise_if_exists(sem_name: str) -> None:
    sem = NamedSemaphore(sem_name, handle_existence=Flags.RAISE_IF_EXISTS)
    assert sem.created
    with pytest.raises(FileExistsError) as info:
        NamedSemaphore(sem_name, handle_existence=Flags.RAISE_IF_EXISTS)
    assert isinstance(info.value, namedipc.ExistentialError)
    assert info.value.errno == 17
    assert sem_name in str(info.value)


def test_raise_if_not_exists(sem_name: str) -> None:
    with pytest.raises(FileNotFoundError) as info:
        NamedSemaphore(sem_name, handle_existence=Flags.RAISE_IF_NOT_EXISTS)
    assert isinstance(info.value, namedipc.ExistentialError)
    assert "does not exist" in str(info.value)
    assert not exists(sem_name)


def test_unlink_and_create_replaces(sem_name: str) -> None:
    old = NamedSemaphore(sem_name, 3, unlink_on_close=False)
    new = NamedSemaphore(sem_name, 1, Flags.UNLINK_AND_CREATE)
    assert new.created and new.value == 1
    assert old.value == 3  # the old one lives on, unnamed, for its holders
    old.release()
    assert new.value == 1


def test_bad_flag_and_arguments(sem_name: str) -> None:
    with pytest.raises(ValueError, match="handle_existence must be between 0 and 3"):
        NamedSemaphore(sem_name, handle_existence=7)
    with pytest.raises(ValueError, match="value must be between 0 and 2147483647"):
        NamedSemaphore(sem_name, -1)
    with pytest.raises(TypeError, match="value must be an int"):
        NamedSemaphore(sem_name, "1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="NUL"):
        NamedSemaphore("/x\0y")
    assert not exists(sem_name)


def test_acquire_like_threading(sem_name: str) -> None:
    sem = NamedSemaphore(sem_name, 1)
    assert sem.acquire() is True
    assert sem.acquire(blocking=False) is False
    assert sem.acquire(timeout=0) is False
    assert sem.acquire(timeout=-5) is False  # threading: a negative timeout does not wait
    started = time.monotonic()
    assert sem.acquire(timeout=0.2) is False
    assert 0.2 <= time.monotonic() - started < 2.0
    with pytest.raises(ValueError, match="can't specify timeout for non-blocking acquire"):
        sem.acquire(False, 1)
    with pytest.raises(ValueError, match="finite number of seconds"):
        sem.acquire(timeout=float("nan"))
    sem.release()
    assert sem.acquire(timeout=1) is True


def test_release_n(sem_name: str) -> None:
    sem = NamedSemaphore(sem_name, 0)
    sem.release(3)
    assert sem.value == 3
    for bad in (0, -1):
        with pytest.raises(ValueError, match="n must be between 1 and"):
            sem.release(bad)
    with pytest.raises(TypeError, match="n must be an int"):
        sem.release(1.0)  # type: ignore[arg-type]


def test_release_beyond_the_maximum(sem_name: str) -> None:
    sem = NamedSemaphore(sem_name, namedipc.SEMAPHORE_VALUE_MAX - 1)
    with pytest.raises(ValueError, match="maximum value"):
        sem.release(2)
    # All or none: a release that fails gives nothing back (issue 13, item 7).
    assert sem.value == namedipc.SEMAPHORE_VALUE_MAX - 1


def test_context_manager_returns_self_and_releases_on_error(sem_name: str) -> None:
    sem = NamedSemaphore(sem_name, 1)
    with pytest.raises(RuntimeError), sem as entered:  # noqa: PT012 - the with block is what is tested
        assert entered is sem and sem.value == 0
        raise RuntimeError("boom")
    assert sem.value == 1


def test_wakes_when_another_thread_releases(sem_name: str) -> None:
    sem = NamedSemaphore(sem_name, 0)
    results: list[bool] = []
    t = threading.Thread(target=lambda: results.append(sem.acquire(timeout=WAIT)))
    t.start()
    wait_until_blocked(sem_name)
    sem.release()
    t.join(WAIT)
    assert results == [True]


def test_creator_unlinks_on_close_and_opener_does_not(sem_name: str) -> None:
    creator = NamedSemaphore(sem_name)
    opener = NamedSemaphore(sem_name)
    opener.close()
    assert exists(sem_name)
    creator.close()
    assert not exists(sem_name)
    assert creator.closed
    creator.close()  # twice is harmless


def test_creator_unlinks_when_garbage_collected(sem_name: str) -> None:
    NamedSemaphore(sem_name)
    gc.collect()
    assert not exists(sem_name)


def test_unlink_on_close_false_keeps_the_semaphore(sem_name: str) -> None:
    sem = NamedSemaphore(sem_name, 4, unlink_on_close=False)
    sem.close()
    assert exists(sem_name)
    assert NamedSemaphore(sem_name, handle_existence=Flags.RAISE_IF_NOT_EXISTS).value == 4


def test_closed_handle_raises(sem_name: str) -> None:
    sem = NamedSemaphore(sem_name)
    sem.close()
    for action in (sem.acquire, sem.release, lambda: sem.value):
        with pytest.raises(namedipc.ExistentialError, match="has been closed"):
            action()
    # What describes the handle stays readable (docs/conventions.md).
    assert (sem.name, sem.created, sem.closed) == (sem_name, True, True)


def test_explicit_unlink(sem_name: str) -> None:
    sem = NamedSemaphore(sem_name)
    sem.unlink()
    assert not exists(sem_name)
    assert sem.acquire(blocking=False)  # the handle still works
    with pytest.raises(FileNotFoundError):
        sem.unlink()


def test_repr_in_threading_style(sem_name: str) -> None:
    sem = NamedSemaphore(sem_name, 2)
    assert re.fullmatch(rf"<namedipc\.NamedSemaphore '{sem_name}' at 0x[0-9a-f]+: value=2>", repr(sem)), repr(sem)
    sem.close()
    assert repr(sem).endswith(": closed>")


def test_subclass(sem_name: str) -> None:
    class Gpu(NamedSemaphore):
        def __init__(self, name: str) -> None:
            super().__init__(name, 2)

    sem = Gpu(sem_name)
    assert sem.value == 2 and repr(sem).startswith(f"<{__name__}.")


def test_creator_close_leaves_a_replacement_alone(sem_name: str) -> None:
    creator = NamedSemaphore(sem_name, 1)
    replacement = NamedSemaphore(sem_name, 7, Flags.UNLINK_AND_CREATE, unlink_on_close=False)
    creator.close()
    assert exists(sem_name)
    assert NamedSemaphore(sem_name, handle_existence=Flags.RAISE_IF_NOT_EXISTS).value == 7
    replacement.unlink()


def test_init_twice_is_refused(sem_name: str) -> None:
    sem = NamedSemaphore(sem_name)
    with pytest.raises(TypeError, match="already initialised"):
        sem.__init__(sem_name)  # type: ignore[misc]
    assert sem.value == 1


FORK_CHILD_CLOSES = """
import os, sys, namedipc
sem = namedipc.NamedSemaphore(sys.argv[1], 1, namedipc.NamedSemaphore.Flags.RAISE_IF_EXISTS)
pid = os.fork()
if pid == 0:
    sem.close()  # a copy of the creator's handle, in another process
    os._exit(0)
os.waitpid(pid, 0)
still = namedipc.NamedSemaphore(sys.argv[1], handle_existence=namedipc.NamedSemaphore.Flags.RAISE_IF_NOT_EXISTS)
print("kept" if still.value == 1 else "changed")
sem.close()
"""


def test_a_forked_child_closing_the_creators_handle_leaves_the_name(sem_name: str) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", FORK_CHILD_CLOSES, sem_name], capture_output=True, text=True, timeout=WAIT, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "kept"
