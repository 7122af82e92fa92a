"""Row 4: shared memory bandwidth through each library's mapping, read and
written from a second process (shm_partner.py) holding all three segments,
against a plain mmap of an ordinary file in /dev/shm.
"""

from __future__ import annotations

import os
import sys

from harness.build import BENCH_DIR
from harness.measure import Context, Part, Subject
from harness.plan import MIB
from harness.rows import Row, Target
from harness.session import Session, shm_path
from shm_partner import MARKER, PATTERN

SHM_PARTNER = BENCH_DIR / "shm_partner.py"


def fill(fd: int, size: int) -> None:
    """Writes shm_partner's PATTERN over the first `size` bytes of `fd`."""
    chunk = PATTERN * (MIB // len(PATTERN))
    offset = 0
    while offset < size:
        # Byte i of the file is PATTERN[i % 256], also after a short write.
        start = offset % len(chunk)
        offset += os.pwrite(fd, chunk[start : start + size - offset], offset)


def subjects(session: Session, context: Context) -> Part:
    """Row 4: one partner process (shm_partner.py) holding three segments of
    the same size, and copying all of one of them in and out per sample."""
    plan, namedipc, posix_ipc = context.plan, context.namedipc, context.posix_ipc
    size = plan.shm_bandwidth_size
    row = Row(
        "4",
        f"4. shm {size // MIB} MiB read+write, 2nd process",
        plan.shm_passes,
        "mmap",
        bytes_per_iter=2 * size,
        target=Target("namedipc", "posix_ipc", ">=", 1.00),
    )
    # Each segment made by its own library, the floor's as an ordinary file
    # (open + ftruncate), and all filled here: their pages then exist in
    # tmpfs before the partner maps them, so no side pays for allocating
    # them. The partner's own page faults are taken in an untimed pass.
    nd = namedipc.SharedMemory(session.shm_name("bw-nd"), namedipc.O_CREX, size=size)
    try:
        fill(nd.fd, size)
    finally:
        nd.close()
    pi = posix_ipc.SharedMemory(session.shm_name("bw-pi"), posix_ipc.O_CREX, size=size)
    try:
        fill(pi.fd, size)
    finally:
        pi.close_fd()
    floor_path = session.plain_file("bw-floor")
    fd = os.open(floor_path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.ftruncate(fd, size)
        fill(fd, size)
    finally:
        os.close(fd)

    cpu = str(context.cpu)
    partner = session.helper(
        "shm partner",
        [sys.executable, str(SHM_PARTNER), str(size), cpu, nd.name, pi.name, str(floor_path)],
    )

    def check() -> None:
        # The passes write back what they read, and the partner stamped
        # MARKER through each mapping: anything else in a segment means a
        # copy went wrong, or writes through a mapping never reached it.
        expected = MARKER + (PATTERN * (size // len(PATTERN)))[len(MARKER) :]
        for path in (shm_path(nd.name), shm_path(pi.name), floor_path):
            if path.read_bytes() != expected:
                raise RuntimeError(f"row 4: {path} does not hold what the partner wrote")

    session.after_run(check)

    def subject(name: str) -> Subject:
        command = f"{name} {plan.shm_passes}"
        return Subject(row, name, lambda: int(partner.ask(command)))

    return Part(rows=[row], groups=[[subject(name) for name in ("namedipc", "posix_ipc", "floor")]])
