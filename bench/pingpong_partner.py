"""One side of bench.py's cross-process ping-pong, for namedipc or posix_ipc.

bench.py starts two of these (roles a and b) as independent processes, and
drives them with the line protocol that bench/floor.c also speaks:
a count N per line on stdin; role a answers with the elapsed nanoseconds of N
round trips (post S1, wait S2), role b answers "ready" and then serves N round
trips (wait S1, post S2). EOF on stdin ends the process.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from typing import Any


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("impl", choices=["namedipc", "posix_ipc"])
    parser.add_argument("role", choices=["a", "b"])
    parser.add_argument("s1", help="name of the semaphore side a posts")
    parser.add_argument("s2", help="name of the semaphore side b posts")
    parser.add_argument("cpu", type=int, help="the CPU both sides share")
    args = parser.parse_args()

    # Both sides on one CPU: every round trip is then two context switches,
    # with no cross-core wake-up latency or idle-state exits to blur the cost
    # of the library itself.
    os.sched_setaffinity(0, {args.cpu})

    # Same class and calls for both libraries: namedipc.Semaphore is a
    # drop-in for posix_ipc.Semaphore, which is the point of the comparison.
    lib: Any = importlib.import_module(args.impl)
    s1 = lib.Semaphore(args.s1)
    s2 = lib.Semaphore(args.s2)

    # Bound methods looked up once, as in bench.py's in-process loops, so the
    # loop times the calls rather than attribute lookups.
    if args.role == "a":
        post, wait = s1.release, s2.acquire
    else:
        wait, post = s1.acquire, s2.release

    for line in sys.stdin:
        n = int(line)
        if args.role == "b":
            # Answer before serving so the stdin read is not in a's timing.
            print("ready", flush=True)
            for _ in range(n):
                wait()
                post()
            continue
        start = time.perf_counter_ns()
        for _ in range(n):
            post()
            wait()
        elapsed = time.perf_counter_ns() - start
        print(elapsed, flush=True)

    s1.close()
    s2.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
