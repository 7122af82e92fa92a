"""Rows 7 and 8: a message queue ping-pong between two processes, by default
on two CPUs, with a small and a large message; the sides are mq_partner.py
for each library and floor.c for the C floor. floor.c also makes the calls
namedipc makes (its "wait floor", timed in the same rounds and shown in the
notes): a queue wait that close() can end costs something in C too.
"""

from __future__ import annotations

import sys

from harness.build import BENCH_DIR
from harness.helper import round_trips
from harness.measure import Context, Part, Subject
from harness.report import ratio_text
from harness.rows import Row, Target
from harness.session import Session

MQ_PARTNER = BENCH_DIR / "mq_partner.py"
# The subject that runs floor.c making namedipc's calls: a send or receive
# that does not wait and, where the queue is full or empty, a second such
# try (the binding's, then the core's), a ppoll on the queue and on an
# eventfd, then the send or receive again.
WAIT_FLOOR = "wait floor"


def size_text(size: int) -> str:
    return f"{size // 1024} KiB" if size >= 1024 and size % 1024 == 0 else f"{size} B"


def mq_pingpong_subjects(
    session: Session, context: Context, row: Row, size: int, cpus: tuple[int, int]
) -> list[Subject]:
    """Rows 7 and 8: side a (on cpus[0]) sends a message of `size` bytes on
    Q1 and receives it back from Q2; side b (on cpus[1]) receives from Q1
    and sends what it got on Q2. A fresh pair of queues per implementation
    and size, so that a stray message in one's run cannot reach another's."""
    posix_ipc, floor_binary = context.posix_ipc, context.floor_binary
    cpu_a, cpu_b = (str(cpu) for cpu in cpus)
    # Ping-pong never has more than one message in a queue; room for one
    # keeps the twelve queues of these rows far below RLIMIT_MSGQUEUE
    # (800 KiB by default), which counts max_messages * max_message_size.
    limits = {"max_messages": 1, "max_message_size": context.plan.mq_max_message_size}
    subjects = []
    for subject in ("namedipc", "posix_ipc", "floor", WAIT_FLOOR):
        if subject in ("floor", WAIT_FLOOR) and floor_binary is None:
            continue
        queues = []
        for tag in ("1", "2"):
            name = session.mq_name(f"mq-ping-{size}-{subject}-{tag}")
            posix_ipc.MessageQueue(name, posix_ipc.O_CREX, **limits).close()
            queues.append(name)
        if subject in ("floor", WAIT_FLOOR):
            mode = "mq-pingpong-wait" if subject == WAIT_FLOOR else "mq-pingpong"
            argv_a = [str(floor_binary), f"{mode}-a", *queues, cpu_a, str(size)]
            argv_b = [str(floor_binary), f"{mode}-b", *queues, cpu_b]
        else:
            partner = [sys.executable, str(MQ_PARTNER), subject]
            argv_a = [*partner, "a", *queues, cpu_a, str(size)]
            argv_b = [*partner, "b", *queues, cpu_b]
        side_a = session.helper(f"{subject} mq ping-pong a, {size} B", argv_a)
        side_b = session.helper(f"{subject} mq ping-pong b, {size} B", argv_b)
        subjects.append(Subject(row, subject, round_trips(side_a, side_b, context.plan.mq_trips)))

        def check(queues: list[str] = queues) -> None:
            # Every round trip takes out what it put in.
            for name in queues:
                queue = posix_ipc.MessageQueue(name)
                try:
                    if queue.current_messages:
                        raise RuntimeError(
                            f"row {row.key}: {name} holds {queue.current_messages} message(s) after the run"
                        )
                finally:
                    queue.close()

        session.after_run(check)
    return subjects


def subjects(session: Session, context: Context) -> Part:
    """Rows 7 and 8, one per message size; without two CPUs to run on (no
    --mq-cpus), they are in the table with no subjects."""
    plan, mq_cpus = context.plan, context.mq_cpus
    # --mq-cpus N,N puts both sides on one CPU, as in row 3: then no
    # cross-CPU wake-up is in the round trip, for a look at the libraries alone.
    mq_cpu_text = "1 CPU" if mq_cpus is not None and mq_cpus[0] == mq_cpus[1] else "2 CPUs"
    rows = [
        Row(
            key,
            f"{key}. mq round trip, {size_text(size)}, {mq_cpu_text}",
            plan.mq_trips,
            "C",
            target=Target("namedipc", "posix_ipc", "<=", 1.00),
        )
        for key, size in zip(("7", "8"), plan.mq_message_sizes, strict=True)
    ]
    if mq_cpus is None:
        return Part(rows=rows, groups=[])
    groups = [
        mq_pingpong_subjects(session, context, row, size, mq_cpus)
        for row, size in zip(rows, plan.mq_message_sizes, strict=True)
    ]

    def notes() -> None:
        # What the design costs (a wait that close() can end: ppoll on the
        # queue and an eventfd, where posix_ipc blocks in mq_receive), apart
        # from what the binding adds on top of it.
        if not any(row.median(WAIT_FLOOR) for row in rows):
            return
        print("\nrows 7 and 8 against namedipc's calls in C (two receives that do not wait, then")
        print("ppoll on the queue and an eventfd, then the receive; C's floor blocks in mq_receive):")
        for row in rows:
            wait_floor = row.median(WAIT_FLOOR)
            if wait_floor is None:
                continue
            print(
                f"  row {row.key}: {wait_floor:,.0f} ns, "
                f"{ratio_text(row.ratios(WAIT_FLOOR, 'floor'))} the C floor; "
                f"namedipc is {ratio_text(row.ratios('namedipc', WAIT_FLOOR))} of it, "
                f"posix_ipc {ratio_text(row.ratios('posix_ipc', 'floor'))} of the C floor"
            )

    return Part(rows=rows, groups=groups, notes=notes)
