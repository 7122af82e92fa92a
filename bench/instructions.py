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
and the loop's own bytecode stays in (the same for both libraries). Every process
runs with PYTHONHASHSEED=0, so that a count repeats exactly. ROW is
one of the names below (default: all); about 10 s a row (`pingpong` 20 s). Row 6 also counts
bench/pyo3_floor's class, plain and built with its feature `handle`, once
`bench/pyo3_floor/compare.py` has built them.
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
# `sem` an open semaphore of value 1; for the create rows, `fresh` a name
# nothing has, `O_CREX` the library's, and `shm_close` the method that
# closes a segment's handle (as bench.py's rows 5 and 9: namedipc's
# close(), posix_ipc's close_fd(), looked up once). The `-as-bench` rows
# make bench.py's own loop of rows 6 and 10 (bench/subjects/cycles.py):
# the class called with a tuple made once, `close(make(*args))`, and the
# close an unbound method, looked up once (`mq_close`), which is cheaper
# for posix_ipc's classes than the call above (type.__call__ takes the
# tuple as it is).
ROWS = {
    "sem-open": ("row 6a: Semaphore(existing name) + close()", "t = Sem(name); t.close()"),
    "shm-open": (
        "row 6: SharedMemory(existing name) + close_fd()",
        "t = Shm(name); t.close_fd()",
    ),
    "mq-open": ("row 10: MessageQueue(existing name) + close()", "t = Mq(name); t.close()"),
    "shm-open-as-bench": ("row 6 as bench.py: shm_close(Shm(*args))", "shm_close(Shm(*open_args))"),
    "mq-open-as-bench": ("row 10 as bench.py: mq_close(Mq(*args))", "mq_close(Mq(*open_args))"),
    "shm-create": (
        "row 5: SharedMemory(O_CREX, 4096) + close + unlink()",
        "t = Shm(fresh, O_CREX, 0o600, 4096); shm_close(t); t.unlink()",
    ),
    "mq-create": (
        "row 9: MessageQueue(O_CREX, 10, 8192) + close + unlink",
        "t = Mq(fresh, O_CREX, 0o600, 10, 8192); t.close(); t.unlink()",
    ),
    "acquire": ("row 1: acquire() + release(), uncontended", "sem.acquire(); sem.release()"),
    "acquire-timeout": ("row 1 with acquire(1.0), uncontended", "sem.acquire(1.0); sem.release()"),
    "pingpong": (
        "row 3: release() + an acquire() that sleeps",
        "ping_release(); pong_acquire()",
    ),
}

# Rows whose loop needs PARTNER: a second process, not counted, that takes
# each `ping` and posts `pong` a millisecond later, so that every acquire
# of `pong` finds no slot and sleeps, as it mostly does in bench.py's row 3
# (there the partner is as quick as the timed side; here the counted
# process runs under callgrind, tens of times slower, and would find `pong`
# posted). Its acquire gives up after 10 s, should the counted process die.
PARTNER_ROWS = {"pingpong"}

PARTNER = """
import sys, time
import posix_ipc
ping, pong = posix_ipc.Semaphore(sys.argv[1]), posix_ipc.Semaphore(sys.argv[2])
for _ in range(int(sys.argv[3])):
    ping.acquire(10)
    until = time.monotonic() + 0.001
    while time.monotonic() < until:
        pass
    pong.release()
"""

CHILD = """
import importlib.util, os, sys
m = __import__(sys.argv[1])
n = int(sys.argv[2])
Shm = m.SharedMemory
if len(sys.argv) > 3:
    # The PyO3 floor's SharedMemory, on a segment made with namedipc.
    spec = importlib.util.spec_from_file_location("pyo3_floor", sys.argv[3])
    floor = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(floor)
    Shm = floor.SharedMemory
name = "/namedipc-bench-%d-instr" % os.getpid()
made = []
def loop(Sem, Shm, Mq, name, sem, fresh, O_CREX, shm_close, mq_close, open_args, ping_release, pong_acquire, n):
    for _ in range(n):
        {body}
partner = None
try:
    sem = m.Semaphore(name, m.O_CREX, initial_value=1)
    made.append(lambda: (sem.unlink(), sem.close()))
    m.SharedMemory(name, m.O_CREX, size=4096).close_fd()
    made.append(lambda: m.unlink_shared_memory(name))
    mq = m.MessageQueue(name, m.O_CREX)
    made.append(lambda: (mq.unlink(), mq.close()))
    # namedipc's close(); posix_ipc's class, and the PyO3 floor's, have close_fd() alone.
    shm_close = getattr(Shm, "close", Shm.close_fd)
    fresh = name + "-new"
    def remove_fresh():
        # What a create row that failed halfway may have left.
        for unlink in (m.unlink_shared_memory, m.unlink_message_queue):
            try:
                unlink(fresh)
            except m.ExistentialError:
                pass
    made.append(remove_fresh)
    ping = m.Semaphore(name + "-ping", m.O_CREX)
    made.append(lambda: (ping.unlink(), ping.close()))
    pong = m.Semaphore(name + "-pong", m.O_CREX)
    made.append(lambda: (pong.unlink(), pong.close()))
    if {partner}:
        import subprocess
        partner = subprocess.Popen([sys.executable, "-c", {partner_script}, ping.name, pong.name, str(n)])
    loop(
        m.Semaphore, Shm, m.MessageQueue, name, sem, fresh, m.O_CREX, shm_close, m.MessageQueue.close, (name,),
        ping.release, pong.acquire, n,
    )
finally:
    if partner is not None:
        partner.kill()
        partner.wait()
    for remove in reversed(made):
        remove()
"""

# Rows that also count bench/pyo3_floor's class (the least a PyO3 class can
# do for them), when compare.py has built it.
FLOOR_ROWS = {"shm-open"}
FLOOR_MODULE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "out", "pyo3_floor.abi3.so")
# The floor built with its feature `handle`: plus what a trustworthy handle
# must check and keep (bench/pyo3_floor/src/lib.rs).
HANDLE_MODULE = os.path.join(os.path.dirname(FLOOR_MODULE), "pyo3_floor_handle.abi3.so")

REFS = re.compile(r"I\s+refs:\s+([\d,]+)")


def count(
    valgrind: str, module: str, body: str, loops: int, out_dir: str, floor: str | None = None, partner: bool = False
) -> int:
    """The instructions of one process running `body` `loops` times (with
    `floor`, the PyO3 floor module at that path, as `Shm`; with `partner`,
    PARTNER beside it)."""
    child = CHILD.replace("{body}", body).replace("{partner_script}", repr(PARTNER))
    child = child.replace("{partner}", repr(partner))
    out = os.path.join(out_dir, "callgrind.out")
    done = subprocess.run(
        [
            valgrind,
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            "-c",
            child,
            module,
            str(loops),
            *([floor] if floor else []),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        # One hash seed for every process: with a random one, the same build
        # counted up to 120 instructions apart from run to run (dict and set
        # lookups take other paths), as much as a change measured.
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    found = REFS.search(done.stderr)
    if done.returncode != 0 or found is None:
        sys.exit(f"instructions.py: the {module} run failed:\n{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def per_op(
    valgrind: str, module: str, body: str, loops: int, out_dir: str, floor: str | None = None, partner: bool = False
) -> float:
    """`body`'s instructions per iteration: `loops` iterations less none."""
    none = count(valgrind, module, body, 0, out_dir, floor, partner)
    some = count(valgrind, module, body, loops, out_dir, floor, partner)
    return (some - none) / loops


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
    loops: int = args.loops
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        sys.exit("instructions.py: valgrind is needed (apt-get install valgrind)")
    print(f"instructions per operation (callgrind, {loops} loops less 0, the loop included)")
    floor = FLOOR_MODULE if os.path.exists(FLOOR_MODULE) else None
    handle = HANDLE_MODULE if os.path.exists(HANDLE_MODULE) else None
    print(f"{'row':50} {'namedipc':>9} {'posix_ipc':>9} {'ratio':>6} {'PyO3 floor':>10} {'floor+handle':>12}")
    with tempfile.TemporaryDirectory(prefix="namedipc-instr-") as out_dir:
        for key in args.rows or ROWS:
            label, body = ROWS[key]
            partner = key in PARTNER_ROWS
            ours, theirs = (
                per_op(valgrind, module, body, loops, out_dir, partner=partner) for module in ("namedipc", "posix_ipc")
            )
            floor_text = ""
            if key in FLOOR_ROWS:
                for module, width in ((floor, 10), (handle, 12)):
                    if module:
                        floor_text += f"{per_op(valgrind, 'namedipc', body, loops, out_dir, module):{width}.0f} "
                    else:
                        floor_text += " " * width + " "
            print(f"{label:50} {ours:9.0f} {theirs:9.0f} {ours / theirs:5.2f}x {floor_text}")
    if floor is None or handle is None:
        print("(the PyO3 floor columns need bench/out/pyo3_floor*.abi3.so: run bench/pyo3_floor/compare.py once)")


if __name__ == "__main__":
    main()
