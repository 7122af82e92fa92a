"""A creating NamedSemaphore removes its name, and a RobustSemaphore
detaches (its last user removing the file), at a normal end of the program,
also when a thread still holds the handle then and it is never collected
(issue 13, item 8): the package closes such handles with atexit."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from support.names import Names, robust_file, semaphore_file
from support.processes import run_program

PROGRAM = """
import asyncio, sys, threading, namedipc
kind, name, how = sys.argv[1:4]
sem = getattr(namedipc, kind)(name, 1)
if how == "daemon":
    # The last thing the program does: leave a daemon thread blocked on the handle.
    sem.acquire()
    threading.Thread(target=sem.acquire, daemon=True).start()
else:
    # The last thing the program does: an acquire_async() that had to wait.
    async def main():
        sem.acquire()
        waiter = asyncio.ensure_future(sem.acquire_async())
        await asyncio.sleep(0)
        asyncio.get_running_loop().call_soon(sem.release)
        assert await asyncio.wait_for(waiter, 10)
    asyncio.run(main())
print("ending", flush=True)
"""


def file_of(kind: str, name: str) -> Path:
    return semaphore_file(name) if kind == "NamedSemaphore" else robust_file(name)


@pytest.mark.parametrize("how", ["daemon", "async"])
@pytest.mark.parametrize("kind", ["NamedSemaphore", "RobustSemaphore"])
def test_the_object_is_gone_after_a_normal_exit(kind: str, how: str, names: Names, robust_names: Names) -> None:
    name = (names if kind == "NamedSemaphore" else robust_names)()
    done = run_program(sys.executable, "-c", PROGRAM, kind, name, how)
    assert (done.returncode, done.stdout, done.stderr) == (0, "ending\n", "")
    assert not file_of(kind, name).exists()
