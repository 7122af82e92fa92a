"""A row of the table (Row): its samples per subject, their medians and
per-round ratios, and the goal it is checked against (Target).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from harness.plan import GIB


@dataclass(frozen=True)
class Target:
    """The goal for a row: the median of the per-round ratios top/bottom,
    compared with limit. Ratios of times for most rows, so "<=" (namedipc at
    most that much slower); a throughput row's is a ratio of throughputs, so
    ">="."""

    top: str  # a subject: "namedipc", "posix_ipc" or "floor"
    bottom: str
    comparison: str  # "<=" or ">="
    limit: float


@dataclass
class Row:
    key: str  # "1", "2", ... as in the README; rows are shown in this order
    title: str
    iters: int  # iterations per sample
    # What the floor column holds: "py", "C", "mmap", or "Semaphore"
    # (namedipc.Semaphore: row 11 compares the crash-safe semaphore with it),
    # "mp" (multiprocessing.Semaphore, row 1m), "ext" (the import of a tiny
    # C extension of the standard library, row 0).
    floor_label: str
    # Non-zero for a throughput row: bytes each iteration moves. Its samples
    # are then GiB/s (higher is better); otherwise ns per iteration.
    bytes_per_iter: int = 0
    target: Target | None = None  # checked at the end of the output
    samples: dict[str, list[float]] = field(default_factory=dict)

    @property
    def throughput(self) -> bool:
        return self.bytes_per_iter > 0

    def add(self, subject: str, elapsed_ns: int) -> None:
        if self.throughput:
            value = self.bytes_per_iter * self.iters / elapsed_ns * 1e9 / GIB
        else:
            value = elapsed_ns / self.iters
        self.samples.setdefault(subject, []).append(value)

    def median(self, subject: str) -> float | None:
        values = self.samples.get(subject)
        return statistics.median(values) if values else None

    def ratios(self, top: str, bottom: str) -> list[float]:
        # Per-round ratios of samples taken moments apart: a slow drift in
        # machine load or clock speed hits both sides and cancels, which it
        # would not in a ratio of two medians taken over the whole run.
        tops, bottoms = self.samples.get(top, []), self.samples.get(bottom, [])
        if len(tops) != len(bottoms):
            return []
        return [t / b for t, b in zip(tops, bottoms, strict=True)]

    def value_text(self, value: float | None) -> str:
        if value is None:
            return "n/a"
        return f"{value:.2f} GiB/s" if self.throughput else f"{value:,.0f} ns"

    def floor_name(self) -> str:
        return {
            "py": "py floor",
            "C": "C floor",
            "mmap": "plain mmap",
            "Semaphore": "namedipc.Semaphore",
            "mp": "multiprocessing.Semaphore",
            "ext": "import _bisect",
        }[self.floor_label]
