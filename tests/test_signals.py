"""Signals during a blocking wait: Ctrl-C always gets through quickly;
posix_ipc's Semaphore raises SignalError for other signals, NamedSemaphore
resumes its wait (PEP 475)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import namedipc
from support.lines import reader_for
from support.processes import run_program
from support.waiting import WAIT, poll_until, wait_until_blocked

# A child that blocks on the semaphore in its main thread and reports (its
# SIGUSR1 handler says on stderr that it ran).
CHILD = """
import os, signal, sys, time, namedipc
name, face, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
handled = []
def on_usr1(*_):
    handled.append(time.monotonic())
    os.write(2, b"handled\\n")
signal.signal(signal.SIGUSR1, on_usr1)
if face == "Semaphore":
    sem = namedipc.Semaphore(name)
else:
    sem = namedipc.NamedSemaphore(name, handle_existence=namedipc.NamedSemaphore.Flags.RAISE_IF_NOT_EXISTS)
started = time.monotonic()
try:
    if face == "Semaphore":
        sem.acquire(timeout)
        outcome = "acquired"
    else:
        outcome = "acquired" if sem.acquire(timeout=timeout) else "timeout"
except KeyboardInterrupt:
    outcome = f"KeyboardInterrupt at {time.monotonic()!r}"
except namedipc.SignalError:
    outcome = "SignalError"
print(outcome, f"handled={len(handled)}", f"elapsed={time.monotonic() - started!r}", flush=True)
"""


def start_child(name: str, face: str, timeout: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, name, face, str(timeout)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def outcome(child: subprocess.Popen[str]) -> list[str]:
    assert child.stderr is not None
    read_ahead = reader_for(child.stderr).take()  # what a test read past
    out, err = child.communicate(timeout=WAIT)
    assert child.returncode == 0, read_ahead + err
    return out.split()


@pytest.mark.parametrize("face", ["Semaphore", "NamedSemaphore"])
def test_sigint_raises_keyboard_interrupt_within_50_ms(sem_name: str, face: str) -> None:
    keep = namedipc.NamedSemaphore(sem_name, 0)  # noqa: F841 - the creating handle keeps the name alive
    child = start_child(sem_name, face, 30)
    try:
        wait_until_blocked(sem_name)
        sent = time.monotonic()
        os.kill(child.pid, signal.SIGINT)
        words = outcome(child)
    finally:
        child.kill()
    assert words[0] == "KeyboardInterrupt", words
    latency = float(words[2]) - sent
    assert 0 <= latency < 0.05, f"KeyboardInterrupt took {latency * 1000:.1f} ms"


def test_other_signal_raises_signal_error_for_semaphore(sem_name: str) -> None:
    keep = namedipc.NamedSemaphore(sem_name, 0)  # noqa: F841 - the creating handle keeps the name alive
    child = start_child(sem_name, "Semaphore", 30)
    try:
        wait_until_blocked(sem_name)
        os.kill(child.pid, signal.SIGUSR1)
        words = outcome(child)
    finally:
        child.kill()
    assert words[:2] == ["SignalError", "handled=1"], words


# A child that waits on the semaphore again and again, each wait with a
# deadline far away, and says how each ended.
ROUNDS = """
import signal, sys, namedipc
signal.signal(signal.SIGUSR1, lambda *_: None)
sem = namedipc.Semaphore(sys.argv[1])
for _ in range(int(sys.argv[2])):
    try:
        sem.acquire(30)
        print("acquired", flush=True)
    except namedipc.SignalError:
        print("SignalError", flush=True)
"""


def test_a_signal_at_any_moment_of_a_timed_wait_raises_signal_error(sem_name: str) -> None:
    """posix_ipc's one sem_timedwait ends with SignalError whenever the
    signal comes: here at 0 to 40 ms into each of 41 waits, across the
    moments at which a sliced wait's 10, 20 and 40 ms slices timed out. (A
    sliced wait took a signal handled just as a slice timed out for the
    timeout and went on; test_other_signal_raises_signal_error_for_semaphore
    is the one that caught that, on a loaded machine. A wait that misses a
    signal here fails the test at its readline deadline.)"""
    keep = namedipc.NamedSemaphore(sem_name, 0)  # noqa: F841 - the creating handle keeps the name alive
    rounds = 41
    child = subprocess.Popen([sys.executable, "-c", ROUNDS, sem_name, str(rounds)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        lines = reader_for(child.stdout)
        for delay_ms in range(rounds):
            wait_until_blocked(sem_name)
            time.sleep(delay_ms / 1000)  # where in the wait the signal lands, not a synchronisation
            os.kill(child.pid, signal.SIGUSR1)
            assert lines.readline() == "SignalError\n", f"signal {delay_ms} ms into the wait"
        assert child.wait(timeout=WAIT) == 0
    finally:
        child.kill()
        child.communicate(timeout=WAIT)


def test_other_signal_resumes_the_wait_for_named_semaphore(sem_name: str) -> None:
    sem = namedipc.NamedSemaphore(sem_name, 0)
    child = start_child(sem_name, "NamedSemaphore", 30)
    try:
        wait_until_blocked(sem_name)
        os.kill(child.pid, signal.SIGUSR1)
        # The handler ran (the wait had ended, so glibc no longer counts it
        # among the waiters), and then the child went back to waiting.
        assert child.stderr is not None
        assert reader_for(child.stderr).readline() == "handled\n"
        wait_until_blocked(sem_name)
        sem.release()
        words = outcome(child)
    finally:
        child.kill()
    assert words[:2] == ["acquired", "handled=1"], words


def test_resumed_wait_keeps_its_deadline(sem_name: str) -> None:
    keep = namedipc.NamedSemaphore(sem_name, 0)  # noqa: F841 - the creating handle keeps the name alive
    child = start_child(sem_name, "NamedSemaphore", 0.5)
    try:
        wait_until_blocked(sem_name)
        os.kill(child.pid, signal.SIGUSR1)
        words = outcome(child)
    finally:
        child.kill()
    assert words[:2] == ["timeout", "handled=1"], words
    elapsed = float(words[2].removeprefix("elapsed="))
    assert 0.5 <= elapsed < 2.0, elapsed


def test_exception_from_a_signal_handler_propagates(sem_name: str) -> None:
    code = (
        "import signal, namedipc, sys\n"
        "def boom(*_): raise RuntimeError('from handler')\n"
        "signal.signal(signal.SIGUSR1, boom)\n"
        "sem = namedipc.NamedSemaphore(sys.argv[1], handle_existence=2)\n"
        "try:\n    sem.acquire(timeout=30)\n"
        "except RuntimeError as e:\n    print('propagated', e)\n"
    )
    keep = namedipc.NamedSemaphore(sem_name, 0)  # noqa: F841 - the creating handle keeps the name alive
    child = subprocess.Popen([sys.executable, "-c", code, sem_name], stdout=subprocess.PIPE, text=True)
    try:
        wait_until_blocked(sem_name)
        os.kill(child.pid, signal.SIGUSR1)
        out, _ = child.communicate(timeout=WAIT)
    finally:
        child.kill()
    assert out.strip() == "propagated from handler"


STORM = Path(__file__).parent / "helpers" / "signal_storm.py"


def storm_losses(kind: str, name: str, rounds: int = 500) -> int:
    """Slots lost by `kind` in the signal storm (tests/helpers/signal_storm.py)."""
    done = run_program(sys.executable, STORM, kind, name, str(rounds), timeout=60)
    assert done.returncode == 0, done.stderr
    match = re.fullmatch(r"lost (\d+) of \d+ .*", done.stdout.strip())
    assert match, done.stdout
    return int(match.group(1))


@pytest.mark.parametrize("kind", ["NamedSemaphore", "Semaphore"])
def test_a_handler_that_raises_after_the_slot_was_taken_loses_no_slot(kind: str, sem_name: str) -> None:
    """A signal that arrives as the wait succeeds runs its handler inside
    acquire(); if it raises, the slot is given back before the exception
    propagates, as threading.Semaphore loses none (issue 13, item 17)."""
    assert storm_losses(kind, sem_name) == 0


def test_a_robust_semaphore_loses_no_slot_to_a_raising_handler(robust_name: str) -> None:
    assert storm_losses("RobustSemaphore", robust_name) == 0


def test_the_storm_sees_a_loss_where_there_is_one(sem_name: str) -> None:
    """posix_ipc loses slots in the same storm (so does multiprocessing): the storm can tell."""
    assert storm_losses("posix_ipc", sem_name) > 0


def test_the_storm_agrees_with_threading() -> None:
    assert storm_losses("threading", "-") == 0


RELEASER = """
import sys, time, namedipc
sem = namedipc.NamedSemaphore(sys.argv[1], handle_existence=namedipc.NamedSemaphore.Flags.RAISE_IF_NOT_EXISTS)
try:
    sem.release(namedipc.SEMAPHORE_VALUE_MAX)  # some 10 s of posts, one at a time
    print("released", flush=True)
except KeyboardInterrupt:
    print(f"interrupted at {time.monotonic()!r}", flush=True)
"""


def test_ctrl_c_ends_a_long_release_and_takes_back_what_it_gave(sem_name: str) -> None:
    """release(n) for a huge n runs in chunks, with the handlers run between
    them: Ctrl-C ends it promptly, and the slots given so far are taken back
    (issue 13, item 7)."""
    sem = namedipc.NamedSemaphore(sem_name, 0)
    child = subprocess.Popen([sys.executable, "-c", RELEASER, sem_name], stdout=subprocess.PIPE, text=True)
    try:
        poll_until(lambda: sem.value > 0, what="the release to have begun")
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)
        out, _ = child.communicate(timeout=WAIT)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate(timeout=WAIT)
    assert out.startswith("interrupted at "), out
    assert float(out.split()[-1]) - sent < 0.5
    assert sem.value == 0
    sem.close()
