"""SIGKILL storm for RobustSemaphore, with an independent oracle.

Workers loop: acquire a slot, take a "seat", stay a moment, leave the seat,
release the slot. The driver SIGKILLs random workers every few milliseconds
and forks new ones. Checks:

- never more than SLOTS live processes inside at once: a worker that holds a
  slot must find a free seat. Seats are kernel flock(2) locks on SLOTS files
  (not namedipc). A seat whose holder (per /proc/locks) the driver killed
  counts as free — the driver marks a pid killed before it sends SIGKILL,
  and the kernel drops a dead process's locks in no set order — so the
  check has no false positives. ``--no-semaphore`` lets the workers in
  without the semaphore, to show that the oracle does catch over-admission;
- at the end, with every worker stopped, all SLOTS slots come back and
  nobody is listed as a holder;
- the storm made progress (acquisitions, kills of workers holding a slot).

Run by tests/test_robust.py for a few seconds; run it by hand for a
soak, e.g. ``python tests/robust_storm.py --seconds 60``. Exit status 0 when
every check passed; one line of statistics on stdout either way.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import random
import secrets
import signal
import sys
import tempfile
import time
from pathlib import Path

import namedipc

STOP = 0  # byte offset of the stop flag in the control file
KILLED = 1  # killed[pid] at offset KILLED + pid


def pid_max() -> int:
    return int(Path("/proc/sys/kernel/pid_max").read_text())


class Control:
    """A small (sparse) file shared by the driver and the workers: a stop
    flag and a 'killed' byte per pid, set by the driver before it SIGKILLs."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.ftruncate(self.fd, KILLED + pid_max() + 1)

    def stopped(self) -> bool:
        return os.pread(self.fd, 1, STOP) == b"\x01"

    def stop(self) -> None:
        os.pwrite(self.fd, b"\x01", STOP)

    def mark_killed(self, pid: int) -> None:
        os.pwrite(self.fd, b"\x01", KILLED + pid)

    def killed(self, pid: int) -> bool:
        return os.pread(self.fd, 1, KILLED + pid) == b"\x01"


def flock_holders(inodes: set[int]) -> list[int]:
    """The pids holding flock(2) locks on the files with these inodes."""
    pids = []
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 00:2f:5678 0 EOF"; "->" marks a blocked waiter.
        if len(fields) >= 6 and fields[1] == "FLOCK" and int(fields[5].rsplit(":", 1)[1]) in inodes:
            pids.append(int(fields[4]))
    return pids


def take_seat(seats: list[int], inodes: set[int], control: Control) -> int | None:
    """Takes a free seat and returns its index. None if every seat is held
    by a live worker (one the driver has not killed): SLOTS other processes
    are inside while this one is too. -1 if every seat is held but some by
    killed workers the kernel has not finished off yet: not a violation."""
    for _ in range(3):
        for j, fd in enumerate(seats):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            return j
        holders = flock_holders(inodes)
        if len(holders) >= len(seats) and not any(control.killed(pid) for pid in holders):
            return None
        time.sleep(0.001)
    return -1


def worker(args: argparse.Namespace, uid: int, seat_fds: list[int], control: Control) -> None:
    rng = random.Random(uid)
    sem = namedipc.RobustSemaphore(args.name, handle_existence=namedipc.NamedSemaphore.Flags.RAISE_IF_NOT_EXISTS)
    inodes = {os.fstat(fd).st_ino for fd in seat_fds}
    log = os.open(args.dir / "acquired", os.O_WRONLY | os.O_APPEND)
    violations = os.open(args.dir / "violations", os.O_WRONLY | os.O_APPEND)
    while not control.stopped():
        if not args.no_semaphore and not sem.acquire(timeout=2):
            continue
        os.write(log, b".")
        seat = take_seat(seat_fds, inodes, control)
        if seat is None:
            os.write(
                violations,
                f"worker {uid} (pid {os.getpid()}) holds a slot and found every seat held by a live worker\n".encode(),
            )
        time.sleep(rng.random() * 0.0003)
        if seat is not None and seat >= 0:
            fcntl.flock(seat_fds[seat], fcntl.LOCK_UN)
        if not args.no_semaphore:
            sem.release()
        if rng.random() < 0.25:
            time.sleep(rng.random() * 0.0001)
    sem.close()


def spawn(args: argparse.Namespace, uid: int, control: Control) -> int:
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            seats = [os.open(args.dir / f"seat{j}", os.O_RDWR) for j in range(args.slots)]
            worker(args, uid, seats, control)
        except BaseException as e:  # noqa: BLE001 - a worker must never fall back into the driver
            print(f"worker {uid}: {e!r}", file=sys.stderr)
            code = 3
        os._exit(code)
    return pid


def storm(args: argparse.Namespace) -> dict[str, object]:
    control = Control(args.dir / "control")
    for j in range(args.slots):
        (args.dir / f"seat{j}").write_bytes(b"\0" * 8)
    for f in ("acquired", "violations"):
        (args.dir / f).write_bytes(b"")
    # The driver stays attached for the whole run, so the semaphore lives on
    # while workers come and go.
    sem = namedipc.RobustSemaphore(args.name, args.slots, namedipc.NamedSemaphore.Flags.RAISE_IF_EXISTS)
    rng = random.Random(args.seed)
    next_uid = 1
    workers: dict[int, int] = {}  # pid -> uid
    for _ in range(args.workers):
        workers[spawn(args, next_uid, control)] = next_uid
        next_uid += 1
    kills = 0
    failed_workers = 0
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        time.sleep(rng.uniform(0.001, args.max_kill_interval))
        pid = rng.choice(list(workers))
        workers.pop(pid)
        control.mark_killed(pid)
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        if not (os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL):
            failed_workers += 1
        kills += 1
        workers[spawn(args, next_uid, control)] = next_uid
        next_uid += 1
    control.stop()
    stop_by = time.monotonic() + 10
    for pid in list(workers):
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
                    failed_workers += 1
                break
            if time.monotonic() > stop_by:
                control.mark_killed(pid)
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                failed_workers += 1
                break
            time.sleep(0.005)
    # Every slot comes back: taking them all reclaims those of dead workers.
    back = 0
    for _ in range(args.slots):
        if sem.acquire(timeout=10):
            back += 1
    holders_after = [h for h in sem.holders() if h.pid != os.getpid()]
    for _ in range(back):
        sem.release()
    free_at_end = sem.value
    sem.close()
    violations = (args.dir / "violations").read_text().splitlines()
    return {
        "seconds": args.seconds,
        "slots": args.slots,
        "workers": args.workers,
        "kills": kills,
        "acquisitions": len((args.dir / "acquired").read_bytes()),
        "violations": len(violations),
        "violation_examples": violations[:3],
        "slots_back_at_end": back,
        "free_at_end": free_at_end,
        "other_holders_at_end": len(holders_after),
        "failed_workers": failed_workers,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--slots", type=int, default=3)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument(
        "--max-kill-interval", type=float, default=0.008, help="seconds between kills: uniform in [1 ms, this]"
    )
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--no-semaphore", action="store_true", help="workers do not acquire: the oracle must report violations"
    )
    parser.add_argument("--name", default=None, help="semaphore name (default: a unique one)")
    args = parser.parse_args(argv)
    if args.seed is None:
        args.seed = secrets.randbits(32)
    if args.name is None:
        args.name = f"/namedipc-storm-{os.getpid()}-{secrets.token_hex(4)}"
    with tempfile.TemporaryDirectory(prefix="namedipc-storm-") as tmp:
        args.dir = Path(tmp)
        try:
            result = storm(args)
        finally:
            try:
                namedipc.RobustSemaphore(
                    args.name, handle_existence=namedipc.NamedSemaphore.Flags.RAISE_IF_NOT_EXISTS
                ).unlink()
            except namedipc.Error:
                pass
    result["seed"] = args.seed
    print(json.dumps(result))
    ok = (
        result["violations"] == 0
        and result["slots_back_at_end"] == args.slots
        and result["free_at_end"] == args.slots
        and result["other_holders_at_end"] == 0
        and result["failed_workers"] == 0
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
