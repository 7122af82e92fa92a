"""Row 3: a semaphore ping-pong between two processes on one CPU, so that a
round trip is two context switches and nothing else; the sides are
pingpong_partner.py for each library and floor.c for the C floor.
"""

from __future__ import annotations

import sys

from harness.build import BENCH_DIR
from harness.helper import round_trips
from harness.measure import Context, Part, Subject
from harness.rows import Row, Target
from harness.session import Session

PARTNER = BENCH_DIR / "pingpong_partner.py"


def pingpong_subject(session: Session, context: Context, row3: Row, subject: str, argv: list[str]) -> Subject:
    """Row 3 for one implementation: two helper processes, sides a and b,
    on a fresh pair of semaphores, so that a stray post in one
    implementation's run cannot leak into another's."""
    posix_ipc = context.posix_ipc
    s1 = session.semaphore(posix_ipc, f"ping-{subject}-1", 0)
    s2 = session.semaphore(posix_ipc, f"ping-{subject}-2", 0)
    roles = ("pingpong-a", "pingpong-b") if subject == "floor" else ("a", "b")
    side_a, side_b = (
        session.helper(f"{subject} ping-pong {role}", [*argv, role, s1.name, s2.name, str(context.cpu)])
        for role in roles
    )

    return Subject(row3, subject, round_trips(side_a, side_b, context.plan.pingpong_trips))


def subjects(session: Session, context: Context) -> Part:
    row3 = Row(
        "3",
        "3. ping-pong round trip, 1 CPU",
        context.plan.pingpong_trips,
        "C",
        target=Target("namedipc", "posix_ipc", "<=", 1.00),
    )
    partner = [sys.executable, str(PARTNER)]
    third = [pingpong_subject(session, context, row3, lib, [*partner, lib]) for lib in ("namedipc", "posix_ipc")]
    if context.floor_binary is not None:
        third.append(pingpong_subject(session, context, row3, "floor", [str(context.floor_binary)]))
    return Part(rows=[row3], groups=[third])
