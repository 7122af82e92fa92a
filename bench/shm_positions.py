"""Row 4 asked the other way round: does copy bandwidth through a mapping
depend on the library that made it, or on where the mapping lands?

    .venv/bin/python bench/shm_positions.py [--order nd,pi|pi,nd] [--rounds N] [--mib N]

from the repository root, with namedipc and posix_ipc 1.3.2 in .venv. Two
segments (A and B) are made and filled; each is then mapped through both
libraries as bench/shm_partner.py maps them (namedipc: `.buf`; posix_ipc:
`mmap.mmap` of its descriptor), one library's two mappings first, in the
order given, so four mappings in all, made one after another. Every
mapping is faulted in by an untimed pass, and then each round times three
passes (read all into one private buffer, write it back) through every
mapping in turn, on CPU 0. It prints each mapping's median time per pass
and its median per-round ratio to the first mapping made. If the ratios
follow the place in the order rather than the library (swap --order and
see), row 4's ratio says where the partner's mappings landed, not what
either library does. About half a minute; removes its segments.
"""

from __future__ import annotations

import argparse
import mmap
import os
import statistics
import time
from collections.abc import Callable

import posix_ipc

import namedipc

MIB = 1 << 20


def namedipc_view(name: str) -> tuple[memoryview, Callable[[], None]]:
    shm = namedipc.SharedMemory(name)
    view = shm.buf

    def close() -> None:
        view.release()
        shm.close()

    return view, close


def posix_ipc_view(name: str) -> tuple[memoryview, Callable[[], None]]:
    shm = posix_ipc.SharedMemory(name)
    mapping = mmap.mmap(shm.fd, shm.size)
    shm.close_fd()
    view = memoryview(mapping)

    def close() -> None:
        view.release()
        mapping.close()

    return view, close


OPENERS = {"nd": namedipc_view, "pi": posix_ipc_view}


def passes(view: memoryview, scratch: memoryview, n: int) -> int:
    start = time.perf_counter_ns()
    for _ in range(n):
        scratch[:] = view
        view[:] = scratch
    return time.perf_counter_ns() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--order", default="nd,pi", choices=["nd,pi", "pi,nd"], help="which library maps first")
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds (default 15)")
    parser.add_argument("--mib", type=int, default=64, help="segment size in MiB (default 64, as row 4)")
    args = parser.parse_args()
    if args.rounds < 1 or args.mib < 1:
        parser.error("--rounds and --mib must be at least 1")
    size = args.mib * MIB
    os.sched_setaffinity(0, {0})
    names = [f"/namedipc-bench-positions-{os.getpid()}-{segment}" for segment in "AB"]
    made: list[str] = []
    closers: list[Callable[[], None]] = []
    try:
        for name in names:
            shm = namedipc.SharedMemory(name, namedipc.O_CREX, size=size)
            made.append(name)
            os.pwrite(shm.fd, b"\x5a" * size, 0)
            shm.close()
        scratch = memoryview(bytearray(size))
        views: dict[str, memoryview] = {}
        for library in args.order.split(","):
            for segment, name in zip("AB", names, strict=True):
                view, close = OPENERS[library](name)
                closers.append(close)
                views[f"{len(views) + 1}. {library} {segment}"] = view
        for view in views.values():
            passes(view, scratch, 1)  # the page faults, untimed
        times: dict[str, list[int]] = {label: [] for label in views}
        for _ in range(args.rounds):
            for label, view in views.items():
                times[label].append(passes(view, scratch, 3))
        first = times[next(iter(times))]
        print(f"{args.mib} MiB, {args.rounds} rounds of 3 passes, mappings in the order made:")
        for label, values in times.items():
            ratio = statistics.median(v / f for v, f in zip(values, first, strict=True))
            print(f"  {label:<8} {statistics.median(values) / 3 / 1e6:7.2f} ms/pass   {ratio:.3f}x the first")
        scratch.release()
    finally:
        for close in reversed(closers):
            close()
        for name in made:
            namedipc.unlink_shared_memory(name)


if __name__ == "__main__":
    main()
