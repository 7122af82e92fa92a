"""namedipc vs posix_ipc vs a floor (the bare interpreter, C, or a plain mmap),
side by side in one run, with interleaved rounds so that a noisy machine hits
all alike.
Run from the repository root: `.venv/bin/python bench/bench.py [--quick]`;
bench/README.md says what each row measures and how to read the table.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

# bench/ is sys.path[0]: the harness, the subjects and the partner scripts.
from harness.build import POSIX_IPC_VERSION, build_floor, import_or_exit, looks_like_debug_build
from harness.measure import Context, Part, arrange, measure
from harness.plan import Options, parse_options
from harness.report import print_tables, report_targets
from harness.session import Session
from subjects import SUBJECTS


def run(options: Options) -> int:
    plan, cpu, mq_cpus = options.plan, options.cpu, options.mq_cpus
    posix_ipc = import_or_exit("posix_ipc", f"{sys.executable} -m pip install posix_ipc=={POSIX_IPC_VERSION}")
    namedipc = import_or_exit("namedipc", "maturin develop --release (from the repository root)")
    extension = Path(importlib.import_module("namedipc._namedipc").__file__ or "")
    floor_binary = build_floor()

    print(
        f"namedipc {namedipc.__version__} vs posix_ipc {posix_ipc.VERSION} | "
        f"CPython {platform.python_version()}, Linux {platform.release()}, {os.cpu_count()} CPUs"
    )
    pinning = f"ping-pong processes and the shm partner pinned to CPU {cpu}"
    if mq_cpus is not None:
        pinning += f"; queue ping-pong sides to CPUs {mq_cpus[0]} and {mq_cpus[1]}"
    print(f"{plan.rounds} rounds (+{plan.warmup_rounds} warm-up), interleaved; {pinning}")
    if posix_ipc.VERSION != POSIX_IPC_VERSION:
        print(f"WARNING: posix_ipc is {posix_ipc.VERSION}; the targets assume {POSIX_IPC_VERSION}")
    if looks_like_debug_build(extension):
        print(f"WARNING: {extension} looks like a debug build: use maturin develop --release")
    if floor_binary is None:
        print("WARNING: gcc not found, so there is no C floor")
    if mq_cpus is None:
        print("WARNING: this process may run on one CPU only, so rows 7 and 8 are not run")
    print(flush=True)

    context = Context(plan, namedipc, posix_ipc, floor_binary, cpu, mq_cpus)
    parts: list[Part] = []
    session = Session(posix_ipc)
    try:
        for subjects in SUBJECTS:
            parts.append(subjects(session, context))
        rows, groups = arrange(parts)
        measure(groups, plan)
        reports: list[Callable[[], bool]] = [part.after_rounds() for part in parts if part.after_rounds is not None]
        session.check()
    finally:
        session.close()

    print_tables(rows)
    for part in parts:
        if part.notes is not None:
            part.notes()
    missed = report_targets(rows)
    for report in reports:
        missed |= report()
    leftovers = session.leftovers()
    if leftovers:
        print(f"\nERROR: left behind: {', '.join(leftovers)}")
        return 1
    print(
        f"\ncleanup: nothing named {session.prefix[1:]}* left in /dev/shm, and none "
        f"of the {session.probed()} queue and segment names used opens any more"
    )
    return 1 if options.check and missed else 0


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv, __doc__)
    try:
        return run(options)
    except KeyboardInterrupt:
        print("\ninterrupted; everything this run created was removed", file=sys.stderr)
        return 130
    except RuntimeError as e:
        # A helper failed or a sanity check did not hold: the figures would
        # be wrong, so there are none.
        print(f"\nbench: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
