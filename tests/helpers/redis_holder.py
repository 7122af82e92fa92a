"""An independent holder of a RedisSemaphore, for the Redis tests.

    redis_holder.py URL NAME SLOTS LEASE

Opens the semaphore, says "ready", then answers one line per command on stdin:

    acquire [TIMEOUT]  -> "acquired FENCE SLOT" | "timeout"
    release            -> "released" | "lost" (LeaseLost) | "error CLASS MESSAGE"
    lost               -> "lost True" | "lost False"
    value              -> "value N"
    exit               -> closes the handle and exits

    redis_holder.py --work URL NAME SLOTS LEASE LOG SECONDS

Worker mode, for the kill storm: for SECONDS, acquires a slot, appends
"start FENCE SLOT T PID" to LOG (T: time.monotonic(), the same clock in every
process on the machine), works for a few milliseconds, appends
"end FENCE SLOT T LOST", releases, and again. Lines are written with
O_APPEND in one write each, so lines of several workers never mix.
"""

from __future__ import annotations

import os
import random
import sys
import time

import namedipc


def serve(url: str, name: str, slots: int, lease: float) -> None:
    sem = namedipc.RedisSemaphore(name, slots, url=url, lease=lease)
    print("ready", flush=True)
    for line in sys.stdin:
        command, *args = line.split()
        if command == "acquire":
            timeout = float(args[0]) if args else None
            if sem.acquire(timeout=timeout):
                print(f"acquired {sem.fence} {sem.slot}", flush=True)
            else:
                print("timeout", flush=True)
        elif command == "release":
            try:
                sem.release()
                print("released", flush=True)
            except namedipc.LeaseLost:
                print("lost", flush=True)
            except Exception as e:  # noqa: BLE001 - reported to the test
                print(f"error {type(e).__name__} {e}", flush=True)
        elif command == "lost":
            print(f"lost {sem.lost}", flush=True)
        elif command == "value":
            print(f"value {sem.value}", flush=True)
        elif command == "exit":
            break
    sem.close()


def work(url: str, name: str, slots: int, lease: float, log: str, seconds: float) -> None:
    sem = namedipc.RedisSemaphore(name, slots, url=url, lease=lease)
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    print("ready", flush=True)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        assert sem.acquire(timeout=30)
        fence, slot = sem.fence, sem.slot
        os.write(fd, f"start {fence} {slot} {time.monotonic()} {os.getpid()}\n".encode())
        time.sleep(random.uniform(0.001, 0.02))
        lost = sem.lost
        os.write(fd, f"end {fence} {slot} {time.monotonic()} {lost}\n".encode())
        try:
            sem.release()
        except namedipc.LeaseLost:
            pass
    sem.close()
    os.close(fd)


if __name__ == "__main__":
    if sys.argv[1] == "--work":
        url, name, slots, lease, log, seconds = sys.argv[2:8]
        work(url, name, int(slots), float(lease), log, float(seconds))
    else:
        url, name, slots, lease = sys.argv[1:5]
        serve(url, name, int(slots), float(lease))
