"""What `namedipc run` hands CMD cannot be used against the slot: CMD gets
one read-only open file description of the semaphore's file, holding a
read lock on run's liveness byte, and nothing of run's own (close-on-exec)
description. CMD that unlocks, closes, truncates or writes what it inherited
changes nothing for anybody else: the slot stays held while CMD runs (and,
if run is SIGKILLed, until CMD ends)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from support.names import robust_file
from support.processes import Peer
from support.tamper import TAMPER
from support.waiting import WAIT

SCRIPT = Path(sys.executable).parent / "namedipc"


# CMD: says it holds, and holds on until it reads a line.
HOLD = """
import os, sys
print("holding", os.getpid(), flush=True)
sys.stdin.readline()
print("released", flush=True)
"""


def cli() -> list[str]:
    if not SCRIPT.exists():
        pytest.fail(f"{SCRIPT} is missing: install the package into this virtualenv (maturin develop)")
    return [str(SCRIPT)]


def run_once(name: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """`namedipc run NAME --timeout T -- true`, to completion (bounded)."""
    return subprocess.run(
        [*cli(), "run", name, "--timeout", str(timeout), "--", "true"],
        capture_output=True,
        text=True,
        timeout=WAIT + timeout,
        check=False,
    )


def info(name: str) -> dict[str, Any]:
    done = subprocess.run([*cli(), "info", "--json", name], capture_output=True, text=True, timeout=WAIT, check=False)
    assert done.returncode == 0, done.stderr
    (obj,) = json.loads(done.stdout)["objects"]
    assert isinstance(obj, dict)
    return obj


def test_cmd_gets_one_read_only_description_with_a_read_lock_and_cannot_free_the_slot(
    robust_name: str, programs: type[Peer]
) -> None:
    path = robust_file(robust_name)
    job = programs(*cli(), "run", robust_name, "-n", "1", "--", sys.executable, "-c", TAMPER, str(path))
    report = json.loads(job.expect("{"))
    # One descriptor: not run's own (close-on-exec), but a read-only one of
    # the same file, holding a read lock of its own description.
    assert len(report["fds"]) == 1, report
    assert report["read_only"] == [True], report
    (locks,) = report["locks"]
    assert len(locks) == 1 and "OFDLCK" in locks[0] and "READ" in locks[0], report
    assert report["truncate"][0] in ("EINVAL", "EBADF"), report
    assert report["write"] == ["EBADF"], report
    # CMD unlocked and closed it: run's own lock still keeps the one slot.
    size = path.stat().st_size
    busy = run_once(robust_name, 0.3)
    assert busy.returncode == 75, busy.stderr
    held = info(robust_name)
    assert held["free"] == 0 and [h["alive"] for h in held["holders"]] == [True], held
    assert path.stat().st_size == size
    job.send("go")
    job.expect("released")
    job.finish()
    # The slot came back; run, the last user, removed the semaphore.
    assert not path.exists()
    assert run_once(robust_name, 0).returncode == 0


def test_a_sigkilled_run_leaves_the_slot_with_cmds_read_lock_until_cmd_ends(
    robust_name: str, programs: type[Peer]
) -> None:
    job = programs(*cli(), "run", robust_name, "--", sys.executable, "-c", HOLD)
    job.expect("holding")
    # A waiter that is waiting when run dies: its watcher sees run's pidfd
    # fire, and must find the lock of CMD's description held.
    waiter = programs(*cli(), "run", robust_name, "--timeout", "1.5", "--", "true")
    job.proc.send_signal(signal.SIGKILL)
    assert job.proc.wait(WAIT) == -signal.SIGKILL
    _, err = waiter.communicate(timeout=WAIT)
    assert waiter.proc.returncode == 75, err
    held = info(robust_name)
    assert held["free"] == 0 and [h["alive"] for h in held["holders"]] == [True], held
    job.send("go")
    job.expect("released")
    # CMD is gone too: the slot comes back to the next taker.
    assert run_once(robust_name, WAIT).returncode == 0
    assert not robust_file(robust_name).exists()
