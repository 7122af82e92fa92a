"""One side of bench.py's message queue ping-pong, for namedipc or posix_ipc.

bench.py starts two of these (roles a and b) as independent processes, each
pinned to a CPU of its own, and drives them with the line protocol that
bench/floor.c's mq-pingpong modes also speak: a count N per line on stdin;
role a answers with the elapsed nanoseconds of N round trips (send a message
of SIZE bytes on Q1, receive the echo from Q2), role b answers "ready" and
then serves N round trips (receive from Q1, send the same bytes back on Q2).
EOF on stdin ends the process.
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
    parser.add_argument("q1", help="name of the queue side a sends on")
    parser.add_argument("q2", help="name of the queue side b sends on")
    parser.add_argument("cpu", type=int, help="the CPU this side runs on")
    parser.add_argument("size", type=int, nargs="?", help="message size (role a only)")
    args = parser.parse_args()
    if (args.role == "a") != (args.size is not None):
        parser.error("role a needs a message size, role b takes none")

    os.sched_setaffinity(0, {args.cpu})

    # Same class and calls for both libraries: namedipc.MessageQueue is a
    # drop-in for posix_ipc.MessageQueue, which is the point of the comparison.
    lib: Any = importlib.import_module(args.impl)
    q1 = lib.MessageQueue(args.q1)
    q2 = lib.MessageQueue(args.q2)

    # Bound methods looked up once, as in bench.py's in-process loops, so the
    # loop times the calls rather than attribute lookups.
    if args.role == "a":
        send, receive = q1.send, q2.receive
        message = b"x" * args.size
    else:
        receive, send = q1.receive, q2.send

    for line in sys.stdin:
        n = int(line)
        if args.role == "b":
            # Answer before serving so the stdin read is not in a's timing.
            print("ready", flush=True)
            for _ in range(n):
                send(receive()[0])
            continue
        reply = None
        start = time.perf_counter_ns()
        for _ in range(n):
            send(message)
            reply = receive()
        elapsed = time.perf_counter_ns() - start
        # Once per sample, outside the timing: the echo is what was sent.
        if reply != (message, 0):
            sys.exit(f"mq_partner: the echo is not the message sent ({args.impl})")
        print(elapsed, flush=True)

    q1.close()
    q2.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
