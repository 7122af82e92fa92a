"""An independent process for the tests: does one thing to a named
semaphore and reports on stdout, one line per event.

    semctl.py open NAME                   print the value, then exit
    semctl.py acquire NAME TIMEOUT        NamedSemaphore.acquire; print "acquired" or "timeout"
    semctl.py release NAME [N]            release N slots
    semctl.py hold NAME                   acquire, print "held", wait for a stdin line, release
    semctl.py link-or-create NAME [GATE]  (after taking a slot of GATE) LINK_OR_CREATE NAME;
                                          print "created" or "linked", wait for a stdin line
    semctl.py count NAME FILE ROUNDS      ROUNDS times: acquire, increment the number in FILE, release
"""

from __future__ import annotations

import sys
from pathlib import Path

import namedipc

Flags = namedipc.NamedSemaphore.Flags


def opened(name: str) -> namedipc.NamedSemaphore:
    return namedipc.NamedSemaphore(name, handle_existence=Flags.RAISE_IF_NOT_EXISTS)


def main(argv: list[str]) -> int:
    command, name, *rest = argv
    if command == "open":
        print(opened(name).value, flush=True)
    elif command == "acquire":
        sem = opened(name)
        print("acquired" if sem.acquire(timeout=float(rest[0])) else "timeout", flush=True)
    elif command == "release":
        opened(name).release(int(rest[0]) if rest else 1)
        print("released", flush=True)
    elif command == "hold":
        sem = opened(name)
        sem.acquire()
        print("held", flush=True)
        sys.stdin.readline()
        sem.release()
        print("released", flush=True)
    elif command == "link-or-create":
        if rest:
            print("at the gate", flush=True)
            if not opened(rest[0]).acquire(timeout=10):
                return 3
        sem = namedipc.NamedSemaphore(name, 0, Flags.LINK_OR_CREATE, unlink_on_close=False)
        print("created" if sem.created else "linked", flush=True)
        sys.stdin.readline()
    elif command == "count":
        path, rounds = Path(rest[0]), int(rest[1])
        sem = opened(name)
        for _ in range(rounds):
            with sem:
                path.write_text(str(int(path.read_text()) + 1))
        print("done", flush=True)
    else:
        print(f"unknown command {command!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
