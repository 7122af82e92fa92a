"""What is printed from the samples: the two tables (times, throughputs) with
their ratio columns, and each row's target with its verdict.
"""

from __future__ import annotations

import statistics

from harness.rows import Row


def ratio_text(values: list[float], spread: bool = False) -> str:
    if not values:
        return "n/a"
    text = f"{statistics.median(values):.2f}x"
    if spread and len(values) >= 4:
        q1, _, q3 = statistics.quantiles(values, n=4)
        text += f" [{q1:.2f}-{q3:.2f}]"
    return text


def print_table(rows: list[Row], what: str) -> None:
    header = (
        f"{'row':<38} {'namedipc':>11} {'posix_ipc':>11} {'floor':>18}   "
        f"{'namedipc/posix_ipc':<20} {'namedipc/floor':>14} {'posix_ipc/floor':>15}"
    )
    print(f"\n{what}")
    print(header)
    print("-" * len(header))
    for row in rows:
        floor = row.median("floor")
        floor_text = "n/a" if floor is None else f"{row.value_text(floor)} ({row.floor_label})"
        print(
            f"{row.title:<38} {row.value_text(row.median('namedipc')):>11} "
            f"{row.value_text(row.median('posix_ipc')):>11} {floor_text:>18}   "
            f"{ratio_text(row.ratios('namedipc', 'posix_ipc'), spread=True):<20} "
            f"{ratio_text(row.ratios('namedipc', 'floor'), spread=row.throughput):>14} "
            f"{ratio_text(row.ratios('posix_ipc', 'floor')):>15}"
        )


def print_tables(rows: list[Row]) -> None:
    print("medians over rounds; ratio = median of per-round ratios [interquartile range]")
    print_table([r for r in rows if not r.throughput], "time per iteration (lower is better)")
    print_table(
        [r for r in rows if r.throughput],
        "throughput, bytes read + bytes written (higher is better)",
    )


def report_targets(rows: list[Row]) -> bool:
    """Prints the verdict of each row's target; True if any was missed."""
    print("\ntargets (median of per-round ratios):")
    missed = False
    for row in rows:
        if row.target is None:
            continue
        top, bottom, comparison, limit = (
            row.target.top,
            row.target.bottom,
            row.target.comparison,
            row.target.limit,
        )
        values = row.ratios(top, bottom)
        label = f"{row.key}. {top} / {row.floor_name() if bottom == 'floor' else bottom}"
        if not values:
            print(f"  {label:<27} {comparison} {limit:.2f}x   n/a")
            continue
        value = statistics.median(values)
        met = value <= limit if comparison == "<=" else value >= limit
        missed |= not met
        print(f"  {label:<27} {comparison} {limit:.2f}x   {value:.2f}x   {'met' if met else 'NOT MET'}")
    return missed
