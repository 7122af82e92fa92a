"""A holder for bench.py's kill-to-acquire measurement: opens the robust
semaphore NAME, takes a slot, prints "held", then waits for stdin to close
(bench.py SIGKILLs it first)."""

from __future__ import annotations

import sys

import namedipc


def main() -> int:
    flags = namedipc.NamedSemaphore.Flags
    sem = namedipc.RobustSemaphore(sys.argv[1], handle_existence=flags.RAISE_IF_NOT_EXISTS)
    if not sem.acquire(timeout=60):
        return 1
    print("held", flush=True)
    sys.stdin.read()
    return 0


if __name__ == "__main__":
    sys.exit(main())
