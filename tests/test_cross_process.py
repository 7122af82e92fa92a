"""Independent processes (separate interpreters started with subprocess)
coordinating through one name."""

from __future__ import annotations

from pathlib import Path

import namedipc
from namedipc import NamedSemaphore
from support.names import Names
from support.processes import Helper, run_helper
from support.waiting import WAIT, wait_until_blocked

Flags = NamedSemaphore.Flags


def test_a_slot_held_by_another_process(sem_name: str, helper: type[Helper]) -> None:
    sem = NamedSemaphore(sem_name, 1)
    holder = helper("hold", sem_name)
    holder.expect("held")
    assert sem.acquire(blocking=False) is False
    holder.send("go")
    holder.expect("released")
    assert sem.acquire(timeout=WAIT) is True
    holder.finish()


def test_release_in_one_process_wakes_a_waiter_in_another(sem_name: str, helper: type[Helper]) -> None:
    sem = NamedSemaphore(sem_name, 0)
    waiter = helper("acquire", sem_name, str(WAIT))
    wait_until_blocked(sem_name)
    sem.release()
    waiter.expect("acquired")
    waiter.finish()
    assert sem.value == 0


def test_timeout_in_another_process(sem_name: str) -> None:
    keep = NamedSemaphore(sem_name, 0)  # noqa: F841 - the creating handle keeps the name alive
    result = run_helper("acquire", sem_name, "0.3")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "timeout"


def test_posix_ipc_face_sees_the_same_semaphore(sem_name: str) -> None:
    named = NamedSemaphore(sem_name, 0)
    compat = namedipc.Semaphore(sem_name)
    result = run_helper("release", sem_name, "2")
    assert result.returncode == 0, result.stderr
    assert compat.value == 2 and named.value == 2


def test_link_or_create_race_has_exactly_one_creator(names: Names, helper: type[Helper]) -> None:
    target, gate_name = names("target"), names("gate")
    gate = NamedSemaphore(gate_name, 0)
    racers = [helper("link-or-create", target, gate_name) for _ in range(8)]
    for r in racers:
        r.expect("at the gate")
    gate.release(len(racers))  # let them all go at once
    outcomes = sorted(r.expect("") for r in racers)
    assert outcomes == ["created"] + ["linked"] * 7
    for r in racers:
        r.send("done")
        r.finish()


def test_mutual_exclusion_across_processes(sem_name: str, tmp_path: Path, helper: type[Helper]) -> None:
    # Unprotected read-increment-write of a file loses updates when two
    # processes interleave; the final count is the oracle.
    counter = tmp_path / "counter"
    counter.write_text("0")
    keep = NamedSemaphore(sem_name, 1)  # noqa: F841 - the creating handle keeps the name alive
    workers, rounds = 4, 200
    procs = [helper("count", sem_name, str(counter), str(rounds)) for _ in range(workers)]
    for p in procs:
        p.expect("done")
        p.finish()
    assert int(counter.read_text()) == workers * rounds
