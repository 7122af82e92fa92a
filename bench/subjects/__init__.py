"""The benchmark's subjects, one module per kind of thing timed. Each has
`subjects(session, context) -> Part` (harness/measure.py); bench.py sets them
up in the order of SUBJECTS, and shows and times their rows by number.
"""

from __future__ import annotations

from collections.abc import Callable

from harness.measure import Context, Part
from harness.session import Session
from subjects import cycles, idle, mqueue, pingpong, robust, semaphore, shm
from subjects import imports as import_time

SUBJECTS: list[Callable[[Session, Context], Part]] = [
    semaphore.subjects,  # rows 1, 1m, 2 and 2b
    pingpong.subjects,  # row 3
    shm.subjects,  # row 4
    cycles.subjects,  # rows 5, 5a, 6, 6a, 9 and 10
    mqueue.subjects,  # rows 7 and 8
    robust.subjects,  # row 11, and the kill-to-acquire latency
    import_time.subjects,  # row 0
    idle.subjects,  # the idle waiters' wake-ups and CPU time
]
