"""The idle waiter: what one process blocked in a wait costs while nothing
happens. After the rounds, one waiting process per subject (all at once,
each on its own object that nobody gives anything to) is watched for
IDLE_SECONDS: its voluntary context switches (its wake-ups) and the CPU time
of all its threads, from /proc, per second of waiting. Each wait runs with a
timeout (far beyond the measurement) and without one.
"""

from __future__ import annotations

import select
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.measure import Context, Part
from harness.session import Session

IDLE_SECONDS = 5.0
# A waiter is left alone this long before the measurement starts, so that
# starting to wait (a watcher thread, the first try) is not counted.
SETTLE_SECONDS = 0.5
WAKEUPS_TARGET_PER_S = 20.0
CPU_TARGET_PERCENT = 0.1
# The timeout of the timed waits: much longer than the measurement.
LONG_TIMEOUT_S = 3600

# The waiting process: opens the object, says "ready", then waits.
WAITER = """
import sys
kind, name, timed = sys.argv[1], sys.argv[2], sys.argv[3] == "timed"
timeout = float(sys.argv[4])
if kind.startswith("posix_ipc"):
    import posix_ipc as lib
else:
    import namedipc as lib
if kind == "NamedSemaphore":
    obj = lib.NamedSemaphore(name, handle_existence=lib.NamedSemaphore.Flags.RAISE_IF_NOT_EXISTS)
    wait = (lambda: obj.acquire(timeout=timeout)) if timed else obj.acquire
elif kind == "RobustSemaphore":
    obj = lib.RobustSemaphore(name, handle_existence=lib.NamedSemaphore.Flags.RAISE_IF_NOT_EXISTS)
    wait = (lambda: obj.acquire(timeout=timeout)) if timed else obj.acquire
elif kind.endswith("Semaphore"):
    obj = lib.Semaphore(name)
    wait = (lambda: obj.acquire(timeout)) if timed else obj.acquire
else:
    obj = lib.MessageQueue(name)
    wait = (lambda: obj.receive(timeout)) if timed else obj.receive
print("ready", flush=True)
wait()
print("woken", flush=True)
"""

# (label in the table, kind passed to WAITER: posix_ipc's start with "posix_ipc.")
SUBJECTS = [
    ("NamedSemaphore.acquire()", "NamedSemaphore"),
    ("RobustSemaphore.acquire()", "RobustSemaphore"),
    ("MessageQueue.receive()", "MessageQueue"),
    ("posix_ipc Semaphore.acquire()", "posix_ipc.Semaphore"),
    ("posix_ipc MessageQueue.receive()", "posix_ipc.MessageQueue"),
]


@dataclass
class Usage:
    """What /proc says about a process, summed over its threads now."""

    wakeups: int  # voluntary context switches
    cpu_ns: int


def usage(pid: int) -> Usage:
    wakeups = cpu_ns = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            status = (task / "status").read_text()
            schedstat = (task / "schedstat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue  # a thread that ended meanwhile
        for line in status.splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                wakeups += int(line.split()[1])
        cpu_ns += int(schedstat.split()[0])  # ns on the CPU
    return Usage(wakeups, cpu_ns)


@dataclass
class Result:
    label: str
    timed: bool
    wakeups_per_s: float
    cpu_percent: float

    @property
    def namedipc(self) -> bool:
        return not self.label.startswith("posix_ipc")

    @property
    def met(self) -> bool:
        return self.wakeups_per_s <= WAKEUPS_TARGET_PER_S and self.cpu_percent <= CPU_TARGET_PERCENT


def measure_idle(session: Session, namedipc: Any, posix_ipc: Any) -> list[Result]:
    """Starts every waiter, lets them settle, and watches them all over the
    same IDLE_SECONDS."""
    waiters: list[tuple[str, bool, subprocess.Popen[bytes]]] = []
    queues: list[Any] = []
    robust: list[Any] = []
    try:
        for label, kind in SUBJECTS:
            for timed in (False, True):
                tag = f"idle-{kind.replace('.', '-').lower()}-{'timed' if timed else 'untimed'}"
                if kind == "NamedSemaphore":
                    name = session.named_semaphore(namedipc, tag, 0).name
                elif kind == "RobustSemaphore":
                    sem = session.robust_semaphore(namedipc, tag)
                    sem.acquire()  # this process holds the only slot
                    robust.append(sem)
                    name = sem.name
                elif kind == "posix_ipc.Semaphore":
                    name = session.semaphore(posix_ipc, tag, 0).name
                else:
                    name = session.mq_name(tag)
                    # Small: the rows before it use most of RLIMIT_MSGQUEUE.
                    queues.append(posix_ipc.MessageQueue(name, posix_ipc.O_CREX, max_messages=1, max_message_size=64))
                argv = [sys.executable, "-c", WAITER, kind, name, "timed" if timed else "untimed", str(LONG_TIMEOUT_S)]
                # A session of its own keeps a terminal's Ctrl-C away from it.
                waiter = subprocess.Popen(argv, stdout=subprocess.PIPE, start_new_session=True)
                waiters.append((label, timed, waiter))
        for label, timed, waiter in waiters:
            assert waiter.stdout is not None
            ready = select.select([waiter.stdout], [], [], 60)[0] and waiter.stdout.readline()
            if ready != b"ready\n":
                raise RuntimeError(f"idle waiter ({label}, timed: {timed}) did not start waiting")
        time.sleep(SETTLE_SECONDS)
        started = time.monotonic()
        before = [usage(waiter.pid) for _, _, waiter in waiters]
        time.sleep(IDLE_SECONDS)
        after = [usage(waiter.pid) for _, _, waiter in waiters]
        elapsed = time.monotonic() - started
        results = []
        for (label, timed, waiter), b, a in zip(waiters, before, after, strict=True):
            if waiter.poll() is not None:
                raise RuntimeError(f"idle waiter ({label}, timed: {timed}) stopped waiting")
            results.append(
                Result(label, timed, (a.wakeups - b.wakeups) / elapsed, (a.cpu_ns - b.cpu_ns) / elapsed / 1e9 * 100)
            )
        return results
    finally:
        for _, _, waiter in waiters:
            waiter.kill()
            waiter.wait()
            if waiter.stdout is not None:
                waiter.stdout.close()
        for sem in robust:
            if sem.holders():
                sem.release()
        for queue in queues:
            queue.close()


def report(results: list[Result]) -> bool:
    """Prints the idle-waiter table; True if a namedipc waiter missed a target."""
    print(
        f"\nIdle waiter: one waiting process each, watched for {IDLE_SECONDS:.0f} s "
        f"(targets for namedipc: <= {WAKEUPS_TARGET_PER_S:.0f} wake-ups/s, <= {CPU_TARGET_PERCENT}% of a core)"
    )
    header = f"{'wait':<36} {'timeout':>8} {'wake-ups/s':>11} {'CPU %':>8}   target"
    print(header)
    print("-" * len(header))
    missed = False
    for r in results:
        verdict = ("met" if r.met else "NOT MET") if r.namedipc else "(peer)"
        missed |= r.namedipc and not r.met
        print(
            f"{r.label:<36} {'yes' if r.timed else 'no':>8} {r.wakeups_per_s:>11.1f} {r.cpu_percent:>8.3f}   {verdict}"
        )
    return missed


def subjects(session: Session, context: Context) -> Part:
    """No timed rows: the idle waiters are watched once the rounds are done."""

    def after_rounds() -> Any:
        results = measure_idle(session, context.namedipc, context.posix_ipc)
        return lambda: report(results)

    return Part(rows=[], groups=[], after_rounds=after_rounds)
