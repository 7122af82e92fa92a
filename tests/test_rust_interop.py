"""A Rust program (the core crate's `semctl` example) and Python work on one
named semaphore, both ways. Every Rust process is a separate, real process."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import namedipc
from support.build import cargo_build
from support.names import Names
from support.processes import Background, Helper, Peer, program_ok, read_line, run_program
from support.waiting import WAIT, wait_until_blocked

Flags = namedipc.NamedSemaphore.Flags


@pytest.fixture(scope="session")
def semctl() -> Path:
    """The `semctl` example, built once per session."""
    binary = cargo_build("the semctl example", "--example", "semctl")
    assert binary.name == "semctl" and binary.parent.name == "examples", binary
    assert os.access(binary, os.X_OK), binary
    return binary


def opened(name: str) -> namedipc.NamedSemaphore:
    return namedipc.NamedSemaphore(name, handle_existence=Flags.RAISE_IF_NOT_EXISTS)


def test_python_sees_the_value_rust_created(semctl: Path, sem_name: str) -> None:
    assert program_ok(semctl, "create", sem_name, "3") == "created"
    # The Rust process has exited; the semaphore lives on under its name.
    sem = opened(sem_name)
    try:
        assert not sem.created
        assert sem.value == 3
        assert sem.acquire(blocking=False)
        assert program_ok(semctl, "value", sem_name) == "2"
        sem.release(2)
        assert program_ok(semctl, "value", sem_name) == "4"
        assert program_ok(semctl, "post", sem_name) == "posted"
        assert sem.value == 5
    finally:
        sem.close()
    # Closing a handle that did not create it leaves the name in place.
    assert program_ok(semctl, "value", sem_name) == "5"


def test_rust_wait_sees_python_hold_and_release(semctl: Path, sem_name: str) -> None:
    sem = namedipc.NamedSemaphore(sem_name, 1, Flags.RAISE_IF_EXISTS)
    try:
        assert sem.created
        assert sem.acquire(timeout=WAIT)
        # Python holds the only slot: Rust cannot get it.
        assert program_ok(semctl, "wait", sem_name, "0.2") == "timeout"
        assert program_ok(semctl, "value", sem_name) == "0"
        sem.release()
        # Released: Rust gets it at once, and it is gone for Python.
        assert program_ok(semctl, "wait", sem_name, str(WAIT)) == "acquired"
        assert sem.value == 0
        assert not sem.acquire(blocking=False)
    finally:
        sem.close()


def test_python_release_wakes_a_blocked_rust_waiter(semctl: Path, sem_name: str, programs: type[Peer]) -> None:
    sem = namedipc.NamedSemaphore(sem_name, 0, Flags.RAISE_IF_EXISTS)
    try:
        waiter = programs(semctl, "wait", sem_name, str(WAIT))
        wait_until_blocked(sem_name)
        sem.release()
        assert waiter.finish().strip() == "acquired"
        assert sem.value == 0, "the Rust waiter took the released slot"
    finally:
        sem.close()


def test_rust_post_wakes_a_python_acquire(semctl: Path, sem_name: str) -> None:
    assert program_ok(semctl, "create", sem_name, "0") == "created"
    sem = opened(sem_name)
    try:
        assert not sem.acquire(timeout=0.1)
        waiter = Background(lambda: sem.acquire(timeout=WAIT))
        wait_until_blocked(sem_name)
        assert program_ok(semctl, "post", sem_name) == "posted"
        outcome = waiter.join(WAIT + 5)
        assert outcome is True, outcome
        assert program_ok(semctl, "value", sem_name) == "0"
    finally:
        sem.close()


def test_rust_waits_for_an_independent_python_holder(semctl: Path, sem_name: str, helper: type[Helper]) -> None:
    assert program_ok(semctl, "create", sem_name, "1") == "created"
    holder = helper("hold", sem_name)
    assert read_line(holder.proc) == "held"
    assert program_ok(semctl, "wait", sem_name, "0.2") == "timeout"
    holder.send("go")
    assert read_line(holder.proc) == "released"
    holder.finish()
    assert program_ok(semctl, "wait", sem_name, str(WAIT)) == "acquired"
    assert program_ok(semctl, "value", sem_name) == "0"


def test_rust_errors_are_clear_and_exit_1(semctl: Path, names: Names) -> None:
    missing = names("missing")
    done = run_program(semctl, "value", missing)
    assert done.returncode == 1
    assert missing in done.stderr and "does not exist" in done.stderr, done.stderr
    assert done.stdout == ""

    taken = names("taken")
    with namedipc.NamedSemaphore(taken, 1, Flags.RAISE_IF_EXISTS):
        done = run_program(semctl, "create", taken, "1")
        assert done.returncode == 1
        assert taken in done.stderr and "already exists" in done.stderr, done.stderr

    done = run_program(semctl, "wait", missing, "not-a-number")
    assert done.returncode == 1
    assert "TIMEOUT_SECS" in done.stderr, done.stderr

    done = run_program(semctl, "frobnicate")
    assert done.returncode == 1
    assert "usage" in done.stderr, done.stderr
