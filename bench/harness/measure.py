"""The shape every subject module has (it is given a Context and the Session,
and gives back a Part: its rows and the Subjects to time), and the
interleaved rounds that time them all.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.plan import Plan
from harness.rows import Row


@dataclass(frozen=True)
class Context:
    """What a subject module is given, besides the session."""

    plan: Plan
    namedipc: Any
    posix_ipc: Any
    floor_binary: Path | None  # floor.c compiled; None without gcc: no C floor
    cpu: int  # the CPU of both ping-pong processes and the shm partner
    # The CPUs of the queue ping-pong's sides a and b; None: rows 7 and 8
    # have no subjects.
    mq_cpus: tuple[int, int] | None


@dataclass(frozen=True)
class Subject:
    """One thing to time: `job` runs one sample and returns the elapsed ns."""

    row: Row
    name: str  # "namedipc", "posix_ipc" or "floor"
    job: Callable[[], int]


@dataclass(frozen=True)
class Part:
    """What a subject module adds to a run: `subjects(session, context)`
    returns one. Every object, file and process it makes is the session's."""

    # Its rows of the tables, with their targets; they are shown, and timed,
    # in the order of their numbers, whichever module they come from.
    rows: list[Row]
    # Each group is timed in turn once per round, in its first subject's
    # row's place: usually a row's subjects, one group per row.
    groups: list[list[Subject]]
    # Prints notes under the tables.
    notes: Callable[[], None] | None = None
    # Measures something else once the rounds are done (before the session's
    # checks), and returns what prints it after the targets: a function that
    # returns True if its target was missed.
    after_rounds: Callable[[], Callable[[], bool]] | None = None


def row_order(key: str) -> tuple[int, str]:
    """Where the row `key` goes: by its number, and a row such as "6a"
    (one that belongs with row 6) right after the row of that number."""
    digits = len(key) - len(key.lstrip("0123456789"))
    return int(key[:digits]), key[digits:]


def arrange(parts: list[Part]) -> tuple[list[Row], list[list[Subject]]]:
    """All the parts' rows in the order of their numbers, and their groups in
    the order of those rows: the table and each round go 1, 2, 3, ..."""
    rows = sorted((row for part in parts for row in part.rows), key=lambda row: row_order(row.key))
    position = {row.key: i for i, row in enumerate(rows)}
    groups = [group for part in parts for group in part.groups if group]
    groups.sort(key=lambda group: position[group[0].row.key])
    return rows, groups


def measure(groups: list[list[Subject]], plan: Plan) -> None:
    # The cycle collector is kept out of the timed loops, as timeit does.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        total = plan.warmup_rounds + plan.rounds
        for r in range(total):
            # Every row in every round, so that a burst of load from other
            # users of the machine spreads over all rows instead of spoiling
            # one; within a row, a different subject goes first each round,
            # so that none always follows the same neighbour.
            for group in groups:
                shift = r % len(group)
                for subject in group[shift:] + group[:shift]:
                    elapsed = subject.job()
                    if r >= plan.warmup_rounds:
                        subject.row.add(subject.name, elapsed)
            if sys.stderr.isatty():
                print(f"\rround {r + 1}/{total}", end="", file=sys.stderr, flush=True)
        if sys.stderr.isatty():
            print("\r" + " " * 20 + "\r", end="", file=sys.stderr, flush=True)
    finally:
        if gc_was_enabled:
            gc.enable()
