"""A C program using the C library's own sem_open/sem_wait/sem_timedwait/
sem_post/sem_getvalue and namedipc work on one named semaphore, both ways.

The C peer (tests/helpers/sem_c_peer.c) is compiled once per session with
gcc; every C process is a separate, real process."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

import namedipc
from support.build import compile_c
from support.names import Names
from support.processes import HELPERS, Background, Peer, program_ok, run_program
from support.waiting import WAIT, wait_until_blocked

SOURCE = HELPERS / "sem_c_peer.c"


@pytest.fixture(scope="session")
def c_peer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The compiled C peer (sem_open and friends)."""
    return compile_c(SOURCE, tmp_path_factory.mktemp("c_peer"))


def test_python_opens_a_semaphore_c_created(c_peer: Path, sem_name: str) -> None:
    assert program_ok(c_peer, "create", sem_name, "3") == "created"

    sem = namedipc.Semaphore(sem_name)  # flags=0: open an existing one
    try:
        assert sem.name == sem_name
        assert sem.value == 3
        sem.acquire(0)
        assert program_ok(c_peer, "value", sem_name) == "2"
        sem.release()
        sem.release()
        assert program_ok(c_peer, "value", sem_name) == "4"
    finally:
        sem.close()

    named = namedipc.NamedSemaphore(sem_name, handle_existence=namedipc.NamedSemaphore.Flags.RAISE_IF_NOT_EXISTS)
    try:
        assert not named.created
        assert named.value == 4
    finally:
        named.close()


def test_c_sees_values_python_sets(c_peer: Path, sem_name: str) -> None:
    sem = namedipc.Semaphore(sem_name, namedipc.O_CREX, initial_value=5)
    try:
        assert program_ok(c_peer, "value", sem_name) == "5"
        for _ in range(3):
            sem.acquire(0)
        assert program_ok(c_peer, "value", sem_name) == "2"
        assert program_ok(c_peer, "post", sem_name) == "posted"
        assert sem.value == 3
    finally:
        sem.close()


def test_python_release_wakes_a_c_waiter(c_peer: Path, sem_name: str, programs: type[Peer]) -> None:
    sem = namedipc.Semaphore(sem_name, namedipc.O_CREX, initial_value=0)
    try:
        # Nothing free: C times out, and takes nothing.
        assert program_ok(c_peer, "wait", sem_name, "0.2") == "timeout"
        assert sem.value == 0

        waiter = programs(c_peer, "wait", sem_name, str(WAIT))
        wait_until_blocked(sem_name)
        sem.release()
        assert waiter.finish().strip() == "acquired"
        assert sem.value == 0, "the C waiter took the released slot"
    finally:
        sem.close()


def test_c_post_wakes_a_python_acquire(c_peer: Path, sem_name: str) -> None:
    assert program_ok(c_peer, "create", sem_name, "0") == "created"
    sem = namedipc.Semaphore(sem_name)
    try:
        with pytest.raises(namedipc.BusyError):
            sem.acquire(0)
        with pytest.raises(namedipc.BusyError):
            sem.acquire(0.1)

        waiter = Background(lambda: sem.acquire(WAIT))
        wait_until_blocked(sem_name)
        assert program_ok(c_peer, "post", sem_name) == "posted"
        outcome = waiter.join(WAIT + 5)
        assert outcome is None, outcome
        assert program_ok(c_peer, "value", sem_name) == "0"
    finally:
        sem.close()


def test_c_holder_and_python_exclude_each_other(c_peer: Path, sem_name: str, programs: type[Peer]) -> None:
    sem = namedipc.Semaphore(sem_name, namedipc.O_CREX, initial_value=1)
    try:
        holder = programs(c_peer, "hold", sem_name)
        # Returns once C's sem_wait has taken the one slot.
        holder.expect("held")
        assert sem.value == 0
        with pytest.raises(namedipc.BusyError):
            sem.acquire(0.1)
        holder.send("go")
        assert holder.finish().strip() == "released"
        sem.acquire(WAIT)
        assert sem.value == 0
        sem.release()
    finally:
        sem.close()


def test_unlink_from_python_is_seen_by_c(c_peer: Path, names: Names) -> None:
    name = names("unlinked")
    assert program_ok(c_peer, "create", name, "1") == "created"
    # C's O_EXCL create on a taken name fails with EEXIST.
    again = run_program(c_peer, "create", name, "1")
    assert again.returncode == 1
    assert f"(errno {errno.EEXIST})" in again.stderr, again.stderr
    # posix_ipc's create-exclusive from Python fails the same way.
    with pytest.raises(namedipc.ExistsError):
        namedipc.Semaphore(name, namedipc.O_CREX)

    namedipc.unlink_semaphore(name)
    gone = run_program(c_peer, "value", name)
    assert gone.returncode == 1
    assert f"(errno {errno.ENOENT})" in gone.stderr, gone.stderr
    with pytest.raises(namedipc.ExistentialError):
        namedipc.Semaphore(name)
