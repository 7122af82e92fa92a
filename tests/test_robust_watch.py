"""How a RobustSemaphore waiter learns of a holder's death without polling:
a watcher thread per waiting process, with every signal blocked, that polls
the pidfds of the holders — also of a holder that took its slot while the
process already waited — and ends when nobody waits; and releases that wake
every waiter, so that none is lost.

The debug build lets a test stretch the watcher's backstop (its look at
every holder once a second) with NAMEDIPC_WATCH_BACKSTOP_S, so that a slot
that comes back within the tests' bounded waits came back through a pidfd."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from namedipc import RobustSemaphore
from support.processes import read_line
from support.waiting import WAIT, poll_until, robust_waiters, wait_until_blocked

# Longer than any wait of these tests.
STRETCHED_BACKSTOP = {"NAMEDIPC_WATCH_BACKSTOP_S": "3600"}

# A waiting process: its SIGUSR1 handler says so and then waits for a line
# on stdin, so that the test can act while the process is inside its wait
# (its watcher engaged) but not looking at the slots.
WAITER = """
import signal, sys, namedipc
name, wait = sys.argv[1], float(sys.argv[2])
sem = namedipc.RobustSemaphore(name, handle_existence=namedipc.NamedSemaphore.Flags.RAISE_IF_NOT_EXISTS)
def pause(*_):
    print("in handler", flush=True)
    sys.stdin.readline()
signal.signal(signal.SIGUSR1, pause)
print("waiting", flush=True)
took = sem.acquire(timeout=wait)
print("took" if took else "timeout", flush=True)
if took:
    sem.release()
"""

# A process that takes a free slot at once and holds it until killed.
TAKER = """
import sys, namedipc
sem = namedipc.RobustSemaphore(sys.argv[1], handle_existence=namedipc.NamedSemaphore.Flags.RAISE_IF_NOT_EXISTS)
print("took" if sem.acquire(blocking=False) else "none free", flush=True)
sys.stdin.read()
"""

# A worker that takes and gives back the slot ROUNDS times, each take a
# bounded wait: a lost wake-up ends it with "lost".
WORKER = """
import sys, namedipc
name, rounds, wait = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
sem = namedipc.RobustSemaphore(name, handle_existence=namedipc.NamedSemaphore.Flags.RAISE_IF_NOT_EXISTS)
print("ready", flush=True)
sys.stdin.readline()
for i in range(rounds):
    if not sem.acquire(timeout=wait):
        print(f"lost at {i}", flush=True)
        sys.exit(1)
    sem.release()
print("done", flush=True)
"""


def start(script: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def stop(*procs: subprocess.Popen[str]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=WAIT)


def threads(pid: int) -> list[Path]:
    return sorted(Path(f"/proc/{pid}/task").iterdir())


def pidfds(pid: int) -> int:
    """How many pidfds the process `pid` has open."""
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            count += os.readlink(fd) == "anon_inode:[pidfd]"
        except FileNotFoundError:
            pass  # closed meanwhile
    return count


def wchan(task: Path) -> str:
    """Where in the kernel the thread `task` sleeps."""
    try:
        return (task / "wchan").read_text()
    except FileNotFoundError:
        return ""  # it ended meanwhile


def blocked_signals(task: Path) -> int:
    for line in (task / "status").read_text().splitlines():
        if line.startswith("SigBlk:"):
            return int(line.split()[1], 16)
    raise AssertionError(f"no SigBlk in {task}/status")


def test_a_holder_that_took_the_slot_while_others_waited_is_watched_and_its_death_ends_the_wait(
    robust_name: str,
) -> None:
    sem = RobustSemaphore(robust_name)
    sem.acquire()
    waiter = start(WAITER, robust_name, str(WAIT), env=STRETCHED_BACKSTOP)
    taker = None
    try:
        assert read_line(waiter) == "waiting"
        wait_until_blocked(robust_name, waiters=robust_waiters)
        # Past its grace the waiter has a watcher thread, watching this process.
        poll_until(lambda: len(threads(waiter.pid)) == 2 and pidfds(waiter.pid) == 1, what="the watcher")
        os.kill(waiter.pid, signal.SIGUSR1)
        assert read_line(waiter) == "in handler"
        # While the waiter is in its handler (still inside its wait), the slot
        # changes hands: a holder the watcher has never seen takes it.
        sem.release()
        taker = start(TAKER, robust_name)
        assert read_line(taker) == "took"
        assert waiter.stdin is not None
        waiter.stdin.write("go on\n")
        waiter.stdin.flush()
        # Woken by the release, it found no slot: its watcher looked again
        # and watches the new holder (this process holds no slot any more).
        poll_until(
            lambda: pidfds(waiter.pid) == 1 and robust_waiters(robust_name) == 1, what="the watcher on the new holder"
        )
        taker.kill()
        taker.communicate(timeout=WAIT)
        assert read_line(waiter) == "took"
    finally:
        stop(waiter, *([taker] if taker else []))
        sem.close()


def test_the_watcher_blocks_every_signal_and_ends_when_nobody_waits(robust_name: str) -> None:
    sem = RobustSemaphore(robust_name)
    sem.acquire()
    waiter = start(WAITER, robust_name, str(WAIT))
    try:
        assert read_line(waiter) == "waiting"
        poll_until(lambda: len(threads(waiter.pid)) == 2, what="the watcher thread")
        main, watcher = threads(waiter.pid)
        assert main.name == str(waiter.pid)
        mask = blocked_signals(watcher)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGCHLD, signal.SIGALRM):
            assert mask & (1 << (sig - 1)), f"{sig.name} is not blocked in the watcher: {mask:#x}"
        assert blocked_signals(main) & (1 << (signal.SIGINT - 1)) == 0
        sem.release()
        assert read_line(waiter) == "took"
    finally:
        stop(waiter)
        sem.close()


def test_the_watcher_thread_goes_once_the_wait_is_over(robust_name: str) -> None:
    code = (
        "import sys, threading, namedipc\n"
        "sem = namedipc.RobustSemaphore(sys.argv[1], handle_existence=2)\n"
        "print('waiting', flush=True)\n"
        "print('took' if sem.acquire(timeout=float(sys.argv[2])) else 'timeout', flush=True)\n"
        "sys.stdin.readline()\n"
    )
    sem = RobustSemaphore(robust_name)
    sem.acquire()
    proc = start(code, robust_name, str(WAIT))
    try:
        assert read_line(proc) == "waiting"
        poll_until(lambda: len(threads(proc.pid)) == 2, what="the watcher thread")
        sem.release()
        assert read_line(proc) == "took"
        poll_until(lambda: len(threads(proc.pid)) == 1 and pidfds(proc.pid) == 0, what="the watcher to end")
    finally:
        stop(proc)
        sem.close()


def test_no_wake_up_is_lost_across_many_releases(robust_name: str) -> None:
    """Four processes take turns on one slot a few hundred times each; a
    wake-up lost would leave one waiting until its bounded wait ends."""
    sem = RobustSemaphore(robust_name)
    workers = [start(WORKER, robust_name, "300", str(WAIT), env=STRETCHED_BACKSTOP) for _ in range(4)]
    try:
        for worker in workers:
            assert read_line(worker) == "ready"
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        assert [read_line(worker, timeout=60) for worker in workers] == ["done"] * 4
        assert sem.value == 1
    finally:
        stop(*workers)
        sem.close()


# A process whose thread waits (so it has a watcher) while its main thread
# forks; the thread's wait then times out, and the child waits on its own:
# it must get a watcher of its own (the parent's thread is not in it).
FORK_WHILE_WAITING = """
import os, sys, threading, time, namedipc
name, wait = sys.argv[1], float(sys.argv[2])
sem = namedipc.RobustSemaphore(name, handle_existence=namedipc.NamedSemaphore.Flags.RAISE_IF_NOT_EXISTS)
outcome = []
waiter = threading.Thread(target=lambda: outcome.append(sem.acquire(timeout=1.0)))
waiter.start()
deadline = time.monotonic() + wait
while len(os.listdir("/proc/self/task")) < 3:  # main, the waiting thread, its watcher
    assert time.monotonic() < deadline, "no watcher"
    time.sleep(0.001)
pid = os.fork()
if pid == 0:
    print(f"child waiting {os.getpid()}", flush=True)
    took = sem.acquire(timeout=wait)
    print("child took" if took else "child timeout", flush=True)
    if took:
        sem.release()
    os._exit(0)
waiter.join()
print("parent thread took" if outcome[0] else "parent thread timeout", flush=True)
_, status = os.waitpid(pid, 0)
print(f"child exit {os.waitstatus_to_exitcode(status)}", flush=True)
"""


def test_a_child_forked_while_its_parent_waits_watches_on_its_own(robust_name: str) -> None:
    sem = RobustSemaphore(robust_name)
    holder = start(TAKER, robust_name)
    proc = None
    try:
        assert read_line(holder) == "took"
        proc = start(FORK_WHILE_WAITING, robust_name, str(WAIT), env=STRETCHED_BACKSTOP)
        said, child = read_line(proc).rsplit(maxsplit=1)
        assert said == "child waiting"
        child_pid = int(child)
        # The parent's watcher has no waiter left; the child's wait has one.
        assert read_line(proc) == "parent thread timeout"
        poll_until(lambda: len(threads(child_pid)) == 2 and pidfds(child_pid) >= 1, what="the child's watcher")
        holder.kill()
        holder.communicate(timeout=WAIT)
        assert read_line(proc) == "child took"
        assert read_line(proc) == "child exit 0"
    finally:
        stop(holder, *([proc] if proc else []))
        sem.close()


def in_new_pid_namespace() -> list[str] | None:
    """The command prefix that runs a program as pid 1 of a new PID
    namespace (killed with the prefix's process), or None where this user
    may not make one."""
    prefix = ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc"]
    try:
        done = subprocess.run([*prefix, "true"], capture_output=True, timeout=WAIT, check=False)
    except FileNotFoundError:
        return None
    return prefix if done.returncode == 0 else None


def test_a_holder_in_another_pid_namespace_is_not_taken_for_the_process_its_pid_names_here(
    robust_name: str,
) -> None:
    """Its pid (1, in its namespace) names another process here (init): the
    waiter must not watch that one, or the holder's death would wait for
    the backstop."""
    prefix = in_new_pid_namespace()
    if prefix is None:
        pytest.skip("this user cannot create a PID namespace (unshare --pid)")
    sem = RobustSemaphore(robust_name)
    holder = subprocess.Popen(
        [*prefix, sys.executable, "-c", TAKER, robust_name], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    waiter = None
    try:
        assert read_line(holder) == "took"
        assert [h.pid for h in sem.holders()] == [1]
        waiter = start(WAITER, robust_name, str(WAIT), env=STRETCHED_BACKSTOP)
        assert read_line(waiter) == "waiting"
        wait_until_blocked(robust_name, waiters=robust_waiters)
        # The watcher has looked at the holder and sleeps in poll().
        poll_until(
            lambda: len(threads(waiter.pid)) == 2 and "poll" in wchan(threads(waiter.pid)[1]), what="the watcher"
        )
        holder.kill()  # unshare, and with it (--kill-child) the holder
        holder.communicate(timeout=WAIT)
        assert read_line(waiter) == "took"
    finally:
        stop(holder, *([waiter] if waiter else []))
        sem.close()
