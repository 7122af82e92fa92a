"""The demo: two independent processes share one slot through a named
semaphore. Each takes the slot three times, works while holding it, and
gives it back; their lines never overlap inside the slot.

Run it with ./dev.sh demo (or python examples/demo.py once built).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time

import namedipc

WORKER = """
import sys, time, namedipc
name, who = sys.argv[1], sys.argv[2]
sem = namedipc.NamedSemaphore(name, handle_existence=namedipc.NamedSemaphore.Flags.RAISE_IF_NOT_EXISTS)
for round in range(1, 4):
    print(f"  {who}: waiting for the slot", flush=True)
    with sem:
        print(f"  {who}: got the slot (round {round}), working...", flush=True)
        time.sleep(0.2)
        print(f"  {who}: done, giving the slot back", flush=True)
"""


def main() -> int:
    name = f"/namedipc-demo-{os.getpid()}-{secrets.token_hex(3)}"
    # This handle creates the semaphore, so closing it removes the name.
    with_slot = namedipc.NamedSemaphore(name, initial_value=1)
    print(f"created {with_slot!r}: one slot, two workers")
    try:
        workers = [
            subprocess.Popen([sys.executable, "-c", WORKER, name, who]) for who in ("worker A", "worker B")
        ]
        started = time.monotonic()
        codes = [w.wait(timeout=60) for w in workers]
        elapsed = time.monotonic() - started
        print(f"both workers finished in {elapsed:.1f} s (6 turns of 0.2 s, one at a time)")
        print(f"the slot is free again: value={with_slot.value}")
        return 0 if codes == [0, 0] else 1
    finally:
        with_slot.close()
        print(f"closed the creating handle, which removed {name}")


if __name__ == "__main__":
    sys.exit(main())
