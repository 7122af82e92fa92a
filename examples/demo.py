"""The demo: five jobs started independently, at most two at a time, through
`namedipc run`; one of them is killed with SIGKILL while it holds a slot,
and its slot comes back to a waiting job at once. `namedipc ls` shows the
holders along the way; nothing is left behind.

Run it with ./dev.sh demo (or python examples/demo.py once built).
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SLOTS = 2
WORK_SECONDS = 1.5
LABELS = ["A", "B", "C", "D", "E"]
VICTIM = "B"
WAIT = 10.0  # no step of the demo waits longer than this

# What each job runs while it holds its slot: it notes in a shared log when
# it starts and stops working (under a file lock), and works for a while.
JOB = """
import fcntl, sys, time
label, log, work = sys.argv[1], sys.argv[2], float(sys.argv[3])
def note(event):
    with open(log, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write(f"{time.monotonic()} {event} {label}\\n")
note("enter")
print("got a slot, working", flush=True)
time.sleep(work)
note("leave")
print("done, gives its slot back", flush=True)
"""


def namedipc_command() -> list[str]:
    """The `namedipc` command: on PATH once the package is installed."""
    found = shutil.which("namedipc")
    return [found] if found else [sys.executable, "-m", "namedipc"]


class Jobs:
    """The jobs, each in its own session (as if started from separate
    terminals), and one thread per job that passes its output lines on."""

    def __init__(self, name: str, log: Path) -> None:
        self.name = name
        self.log = log
        self.started = time.monotonic()
        self.procs: dict[str, subprocess.Popen[str]] = {}
        self.lines: queue.Queue[tuple[float, str, str]] = queue.Queue()

    def say(self, text: str, at: float | None = None) -> None:
        elapsed = (time.monotonic() if at is None else at) - self.started
        print(f"{elapsed:6.2f}s  {text}", flush=True)

    def start(self, label: str) -> None:
        proc = subprocess.Popen(
            [
                *namedipc_command(),
                *("run", self.name, "-n", str(SLOTS), "--"),
                *(sys.executable, "-c", JOB, label, str(self.log), str(WORK_SECONDS)),
            ],
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.procs[label] = proc
        threading.Thread(target=self._read, args=(label, proc), daemon=True).start()

    def _read(self, label: str, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.put((time.monotonic(), label, line.strip()))

    def expect(self, wanted: str, label: str | None = None) -> tuple[float, str]:
        """Prints job output as it comes until a job (`label`, or any) says
        `wanted`; returns when and which job said it."""
        deadline = time.monotonic() + WAIT
        while True:
            try:
                at, who, line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise RuntimeError(f"no job said {wanted!r} within {WAIT} s") from None
            self.say(f"job {who}: {line}", at)
            if line.startswith(wanted) and label in (None, who):
                return at, who

    def show(self, *args: str) -> None:
        """Runs `namedipc ARGS` and shows it as typed in a terminal."""
        print(f"\n$ namedipc {' '.join(args)}", flush=True)
        done = subprocess.run([*namedipc_command(), *args], capture_output=True, text=True, timeout=WAIT, check=False)
        print((done.stdout + done.stderr).rstrip() + "\n", flush=True)

    def attached(self) -> int:
        done = subprocess.run(
            [*namedipc_command(), "info", self.name, "--type", "robust", "--json"],
            capture_output=True,
            text=True,
            timeout=WAIT,
            check=False,
        )
        objects = json.loads(done.stdout)["objects"] if done.returncode == 0 else []
        return int(objects[0]["attached"]) if objects and objects[0]["attached"] is not None else 0

    def wait_attached(self, count: int) -> None:
        deadline = time.monotonic() + WAIT
        while self.attached() < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{count} jobs never attached to {self.name}")
            time.sleep(0.02)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(WAIT)


def most_inside(log: Path, killed: tuple[float, str]) -> int:
    """The most jobs the log shows working at once. The killed job never
    wrote its "leave": it left when it was killed."""
    events = [line.split() for line in log.read_text().splitlines()]
    events.append([str(killed[0]), "leave", killed[1]])
    inside = most = 0
    for _, event, _ in sorted(events, key=lambda e: float(e[0])):
        inside += 1 if event == "enter" else -1
        most = max(most, inside)
    return most


def main() -> int:
    name = f"/namedipc-demo-{os.getpid()}-{secrets.token_hex(3)}"
    print(f"namedipc demo: {len(LABELS)} jobs, at most {SLOTS} at a time, one killed while it holds a slot.\n")
    print("Each job is started on its own, as if from a separate terminal:")
    print(f'  $ namedipc run {name} -n {SLOTS} -- python -c "$JOB" A')
    print(f"namedipc run waits for one of the {SLOTS} slots of the crash-safe semaphore {name}")
    print(f"(created by the first job), runs the job while holding it ({WORK_SECONDS} s of work), and")
    print("gives it back when the job ends.\n")
    with tempfile.TemporaryDirectory(prefix="namedipc-demo-") as tmp:
        log = Path(tmp) / "log"
        log.touch()
        jobs = Jobs(name, log)
        killed_at = 0.0
        try:
            for label in LABELS[:SLOTS]:
                jobs.say(f"start job {label}")
                jobs.start(label)
                jobs.expect("got a slot", label)
            waiting = LABELS[SLOTS:]
            jobs.say(f"start jobs {', '.join(waiting)}: no slot is free, so they wait")
            for label in waiting:
                jobs.start(label)
            jobs.wait_attached(len(LABELS))

            jobs.show("ls", "--type", "robust")
            holders = [f"{label}'s is pid {jobs.procs[label].pid}" for label in LABELS[:SLOTS]]
            print(f"The holders are the jobs' `namedipc run` processes: job {', job '.join(holders)}.\n")

            victim = jobs.procs[VICTIM]
            jobs.say(f"kill -KILL job {VICTIM} (its namedipc run and its command) while it holds a slot")
            os.killpg(victim.pid, signal.SIGKILL)
            killed_at = time.monotonic()
            at, who = jobs.expect("got a slot")
            print(
                f"        job {who} got job {VICTIM}'s slot {1000 * (at - killed_at):.0f} ms after the kill "
                "(most of it is starting Python for the job)"
            )
            jobs.show("ls", "--type", "robust")
            print(
                f"Job {VICTIM}'s slot (pid {victim.pid}, dead) now belongs to job {who} (pid {jobs.procs[who].pid}).\n"
            )

            for proc in jobs.procs.values():
                while proc.poll() is None:
                    try:
                        at, who, line = jobs.lines.get(timeout=0.05)
                        jobs.say(f"job {who}: {line}", at)
                    except queue.Empty:
                        pass
                proc.wait(WAIT)
            while not jobs.lines.empty():
                at, who, line = jobs.lines.get()
                jobs.say(f"job {who}: {line}", at)
        finally:
            jobs.stop_all()

        codes = {label: proc.returncode for label, proc in jobs.procs.items()}
        survivors_ok = all(code == 0 for label, code in codes.items() if label != VICTIM)
        print("\nexit codes: " + ", ".join(f"{label} {code}" for label, code in codes.items()))
        print(f"(job {VICTIM}: -9, killed by SIGKILL; the others: 0, their commands' status)")
        most = most_inside(log, (killed_at, VICTIM))
        print(f"The jobs' own log shows at most {most} of them working at once.")
        jobs.show("ls", "--type", "robust")
        robust_file = Path("/dev/shm") / f"namedipc-robust.{name[1:]}"
        gone = not robust_file.exists()
        if gone:
            print(f"{name} is gone: the last job removed it when it ended. Nothing is left behind.")
        else:
            robust_file.unlink()
            print(f"{name} was still there; the demo removed it.")
        return 0 if survivors_ok and codes[VICTIM] == -signal.SIGKILL and most <= SLOTS and gone else 1


if __name__ == "__main__":
    sys.exit(main())
