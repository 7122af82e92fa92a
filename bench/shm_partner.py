"""The second process of bench.py's shared memory bandwidth row.

bench.py creates three segments of SIZE bytes, fills them with a known
pattern, and starts this script once with their names. It opens each one
the way a user of that library would:

  namedipc   namedipc.SharedMemory(name).buf, the API under test
  posix_ipc  posix_ipc.SharedMemory(name), then mmap.mmap of its descriptor
             (posix_ipc has no .buf; this is what its documentation shows)
  floor      an ordinary file in /dev/shm, os.open + mmap.mmap: plain mmap

Protocol: a line "SUBJECT N" on stdin runs N passes over that subject's
segment and answers with the elapsed nanoseconds; EOF ends the process.
A pass reads the whole segment into a private buffer and writes it back:
two memcpy calls of SIZE bytes each (memoryview slice assignment between
contiguous buffers), so what is timed is memory bandwidth through the
mapping, not the interpreter. Every subject uses the same buffer, in the
same process, on the same CPU, so the mapping is the only difference.
"""

from __future__ import annotations

import argparse
import importlib
import mmap
import os
import sys
import time
from collections.abc import Callable
from typing import Any

# What bench.py fills every segment with; the partner checks that it sees it.
PATTERN = bytes(range(256))
# Written at offset 0 of every segment: bench.py checks at the end that it
# is there, so a mapping whose writes never reach the segment (a private
# copy) cannot pass for one that works.
MARKER = b"partner!"


def copy_passes(segment: memoryview, scratch: memoryview, n: int) -> int:
    start = time.perf_counter_ns()
    for _ in range(n):
        scratch[:] = segment  # read all of it
        segment[:] = scratch  # write all of it back (the same bytes)
    return time.perf_counter_ns() - start


def open_all(args: argparse.Namespace) -> dict[str, tuple[memoryview, Callable[[], None]]]:
    """Each subject's view of its segment, and how to close it at the end."""
    # Imported here, as in pingpong_partner.py, so that subjects/shm.py can
    # take the constants above without either library.
    namedipc: Any = importlib.import_module("namedipc")
    posix_ipc: Any = importlib.import_module("posix_ipc")

    views: dict[str, tuple[memoryview, Callable[[], None]]] = {}

    nd: Any = namedipc.SharedMemory(args.namedipc)
    nd_view = nd.buf

    def close_nd() -> None:
        nd_view.release()  # close() refuses while a view is alive
        nd.close()

    views["namedipc"] = (nd_view, close_nd)

    pi: Any = posix_ipc.SharedMemory(args.posix_ipc)
    pi_map = mmap.mmap(pi.fd, pi.size)
    pi.close_fd()
    pi_view = memoryview(pi_map)

    def close_pi() -> None:
        pi_view.release()
        pi_map.close()

    views["posix_ipc"] = (pi_view, close_pi)

    fd = os.open(args.floor, os.O_RDWR)
    try:
        floor_map = mmap.mmap(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)  # the mapping keeps the file
    floor_view = memoryview(floor_map)

    def close_floor() -> None:
        floor_view.release()
        floor_map.close()

    views["floor"] = (floor_view, close_floor)
    return views


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("size", type=int, help="the size of every segment, in bytes")
    parser.add_argument("cpu", type=int, help="the CPU to run on")
    parser.add_argument("namedipc", help="name of the segment opened with namedipc")
    parser.add_argument("posix_ipc", help="name of the segment opened with posix_ipc")
    parser.add_argument("floor", help="path of the ordinary file in /dev/shm")
    args = parser.parse_args()

    # One CPU for the whole run, so that no sample pays for a migration and
    # its cold caches halfway through a copy.
    os.sched_setaffinity(0, {args.cpu})

    views = open_all(args)
    # Allocated (and zero-filled, so faulted in) once, for every subject.
    scratch = memoryview(bytearray(args.size))
    for subject, (view, _) in views.items():
        if len(view) != args.size or view[-len(PATTERN) :] != PATTERN:
            print(f"shm_partner: {subject}: not the segment bench.py filled", file=sys.stderr)
            return 2
        view[: len(MARKER)] = MARKER
        # One untimed pass: the first touch of each page through a new
        # mapping is a page fault (the pages exist, bench.py wrote them, but
        # this process's page tables do not map them yet). Without this
        # pass, the first sample of each subject would time the faults.
        copy_passes(view, scratch, 1)

    for line in sys.stdin:
        subject, count = line.split()
        view, _ = views[subject]
        print(copy_passes(view, scratch, int(count)), flush=True)

    scratch.release()
    for _view, close in views.values():
        close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
