"""Instructions per operation, namedipc beside posix_ipc, counted by
valgrind's callgrind: where a row of bench.py spends its time in user space,
without the run-to-run noise of a clock (the kernel's side of a system call
is not counted, so a call that one library makes and the other does not
shows only in bench.py's times and in strace).

    .venv/bin/python bench/instructions.py [--loops N] [ROW ...]

from the repository root, with a release build of namedipc in .venv (as
`./dev.sh bench` leaves it), posix_ipc 1.3.2 and valgrind. Each figure is
one process running the row's loop N times less one running it 0 times,
divided by N: the interpreter's start, the import and the set-up cancel out,
and the loop's own bytecode stays in (the same for both libraries). ROW is
one of the names below (default: all); about 10 s a row.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

# What each row does N times, on objects the set-up made: `Sem`, `Shm` and
# `Mq` are the library's classes (locals, as in bench.py: a module attribute
# lookup would add the same 300 instructions to both), `name` an existing
# object's name (a segment, a queue and a semaphore by that name exist),
# `sem` an open semaphore of value 1.
ROWS = {
    "sem-open": ("row 6a: Semaphore(existing name) + close()", "t = Sem(name); t.close()"),
    "shm-open": (
        "row 6: SharedMemory(existing name) + close_fd()",
        "t = Shm(name); t.close_fd()",
    ),
    "mq-open": ("row 10: MessageQueue(existing name) + close()", "t = Mq(name); t.close()"),
    "acquire": ("row 1: acquire() + release(), uncontended", "sem.acquire(); sem.release()"),
}

CHILD = """
import os, sys
m = __import__(sys.argv[1])
n = int(sys.argv[2])
name = "/namedipc-bench-%d-instr" % os.getpid()
sem = m.Semaphore(name, m.O_CREX, initial_value=1)
shm = m.SharedMemory(name, m.O_CREX, size=4096)
shm.close_fd()
mq = m.MessageQueue(name, m.O_CREX)
def loop(Sem, Shm, Mq, name, sem, n):
    for _ in range(n):
        {body}
try:
    loop(m.Semaphore, m.SharedMemory, m.MessageQueue, name, sem, n)
finally:
    sem.unlink(); sem.close()
    m.unlink_shared_memory(name)
    mq.unlink(); mq.close()
"""

REFS = re.compile(r"I\s+refs:\s+([\d,]+)")


def count(valgrind: str, module: str, body: str, loops: int, out_dir: str) -> int:
    """The instructions of one process running `body` `loops` times."""
    out = os.path.join(out_dir, "callgrind.out")
    done = subprocess.run(
        [
            valgrind,
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            "-c",
            CHILD.replace("{body}", body),
            module,
            str(loops),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    found = REFS.search(done.stderr)
    if done.returncode != 0 or found is None:
        sys.exit(f"instructions.py: the {module} run failed:\n{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rows", nargs="*", metavar="ROW", help="any of: " + ", ".join(ROWS))
    parser.add_argument("--loops", type=int, default=5000, help="iterations per row (default 5000)")
    args = parser.parse_args()
    unknown = [row for row in args.rows if row not in ROWS]
    if unknown:
        parser.error(f"unknown row {unknown[0]!r}; the rows are: {', '.join(ROWS)}")
    if args.loops < 1:
        parser.error(f"--loops must be at least 1, not {args.loops}")
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        sys.exit("instructions.py: valgrind is needed (apt-get install valgrind)")
    print(f"instructions per operation (callgrind, {args.loops} loops less 0, the loop included)")
    print(f"{'row':50} {'namedipc':>9} {'posix_ipc':>9} {'ratio':>6}")
    with tempfile.TemporaryDirectory(prefix="namedipc-instr-") as out_dir:
        for key in args.rows or ROWS:
            label, body = ROWS[key]
            per_op = {}
            for module in ("namedipc", "posix_ipc"):
                none = count(valgrind, module, body, 0, out_dir)
                some = count(valgrind, module, body, args.loops, out_dir)
                per_op[module] = (some - none) / args.loops
            ratio = per_op["namedipc"] / per_op["posix_ipc"]
            print(f"{label:50} {per_op['namedipc']:9.0f} {per_op['posix_ipc']:9.0f} {ratio:5.2f}x")


if __name__ == "__main__":
    main()
