"""Rows 1 and 2, timed in this process: a semaphore's uncontended
acquire()+release(), and a non-blocking acquire that finds it unavailable,
each against the cheapest C method call the interpreter makes; row 1m, row
1 against multiprocessing.Semaphore; and row 2b, posix_ipc's
acquire(timeout=0) on both libraries, raising BusyError.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from harness.loops import pair_loop, private_copy
from harness.measure import Context, Part, Subject
from harness.report import ratio_text
from harness.rows import Row, Target
from harness.session import Session


def nonblocking_loop(acquire: Callable[..., object], n: int) -> int:
    start = time.perf_counter_ns()
    for _ in range(n):
        acquire(blocking=False)
    return time.perf_counter_ns() - start


def keyword_floor_loop(noop: Callable[..., object], n: int) -> int:
    # nonblocking_loop's shape, with a keyword that the no-op accepts.
    start = time.perf_counter_ns()
    for _ in range(n):
        noop(reverse=False)
    return time.perf_counter_ns() - start


def busy_loop(acquire: Callable[[int], object], busy: type[BaseException], n: int) -> int:
    start = time.perf_counter_ns()
    for _ in range(n):
        try:
            acquire(0)
        except busy:
            pass
    return time.perf_counter_ns() - start


def raising_floor_loop(pop: Callable[[int], object], missing: type[BaseException], n: int) -> int:
    # busy_loop's shape: a C call that makes an exception, caught.
    start = time.perf_counter_ns()
    for _ in range(n):
        try:
            pop(0)
        except missing:
            pass
    return time.perf_counter_ns() - start


def subjects(session: Session, context: Context) -> Part:
    """Rows 1 and 2; with the C floor, sem_wait+sem_post in a C loop too,
    timed with row 1 and shown in its notes."""
    plan, namedipc, posix_ipc = context.plan, context.namedipc, context.posix_ipc
    row1 = Row(
        "1",
        "1. acquire()+release(), uncontended",
        plan.uncontended_iters,
        "py",
        target=Target("namedipc", "posix_ipc", "<=", 0.60),
    )
    row2 = Row(
        "2",
        "2. non-blocking acquire, unavailable",
        plan.nonblocking_iters,
        "py",
        target=Target("namedipc", "posix_ipc", "<=", 0.20),
    )
    c_pair = Row("1c", "C sem_wait+sem_post", plan.uncontended_iters, "C")
    # Row 1 again, with CPython's own semaphore in the floor column.
    row1m = Row("1m", "1m. row 1 vs multiprocessing", plan.uncontended_iters, "mp")
    row2b = Row(
        "2b",
        "2b. acquire(timeout=0), BusyError",
        plan.nonblocking_iters,
        "py",
        target=Target("namedipc", "posix_ipc", "<=", 1.00),
    )

    # Row 1: the same kind of object from each library, value 1.
    nd_free = session.semaphore(namedipc, "free-nd", 1)
    pi_free = session.semaphore(posix_ipc, "free-pi", 1)
    # Row 2: value 0, so every acquire finds it unavailable.
    nd_busy = session.named_semaphore(namedipc, "busy-nd", 0)
    pi_busy = session.semaphore(posix_ipc, "busy-pi", 0)
    if nd_busy.acquire(blocking=False) is not False:
        raise RuntimeError("row 2: the namedipc semaphore is not unavailable")
    # Row 2b: posix_ipc's face of namedipc, value 0.
    nd_busy_pi = session.semaphore(namedipc, "busy-nd-pi", 0)

    # multiprocessing.Semaphore: CPython's own hand-written C semaphore, the
    # best a binding can hope for. Its name is unlinked as soon as it exists.
    import multiprocessing

    mp_free = multiprocessing.get_context("spawn").Semaphore(1)
    nd_pair, pi_pair, floor_pair, mp_pair = (private_copy(pair_loop) for _ in range(4))
    n1, n2 = plan.uncontended_iters, plan.nonblocking_iters
    # C methods of an empty list, which do nothing: what any call of a
    # C-implemented method costs the interpreter, so the floor of these rows.
    clear: Callable[[], object] = [].clear
    sort: Callable[..., object] = [].sort
    busy_error: type[BaseException] = posix_ipc.BusyError
    first = [
        Subject(row1, "namedipc", lambda: nd_pair(nd_free.acquire, nd_free.release, n1)),
        Subject(row1, "posix_ipc", lambda: pi_pair(pi_free.acquire, pi_free.release, n1)),
        Subject(row1, "floor", lambda: floor_pair(clear, clear, n1)),
        Subject(row1, "multiprocessing", lambda: mp_pair(mp_free.acquire, mp_free.release, n1)),
    ]
    second = [
        Subject(row2, "namedipc", lambda: nonblocking_loop(nd_busy.acquire, n2)),
        Subject(row2, "posix_ipc", lambda: busy_loop(pi_busy.acquire, busy_error, n2)),
        Subject(row2, "floor", lambda: keyword_floor_loop(sort, n2)),
    ]
    nd_pair_m, pi_pair_m, mp_pair_m = (private_copy(pair_loop) for _ in range(3))
    versus_mp = [
        Subject(row1m, "namedipc", lambda: nd_pair_m(nd_free.acquire, nd_free.release, n1)),
        Subject(row1m, "posix_ipc", lambda: pi_pair_m(pi_free.acquire, pi_free.release, n1)),
        Subject(row1m, "floor", lambda: mp_pair_m(mp_free.acquire, mp_free.release, n1)),
    ]
    nd_busy_loop, pi_busy_loop, raising_loop = private_copy(busy_loop), private_copy(busy_loop), raising_floor_loop
    nd_busy_error: type[BaseException] = namedipc.BusyError
    empty: dict[int, int] = {}
    pop: Callable[[int], object] = empty.pop
    busy_timeout = [
        Subject(row2b, "namedipc", lambda: nd_busy_loop(nd_busy_pi.acquire, nd_busy_error, n2)),
        Subject(row2b, "posix_ipc", lambda: pi_busy_loop(pi_busy.acquire, busy_error, n2)),
        Subject(row2b, "floor", lambda: raising_loop(pop, KeyError, n2)),
    ]
    if context.floor_binary is not None:
        c_sem = session.semaphore(posix_ipc, "free-c", 1)
        c_helper = session.helper("C uncontended", [str(context.floor_binary), "uncontended", c_sem.name])
        first.append(Subject(c_pair, "floor", lambda: int(c_helper.ask(n1))))

    def notes() -> None:
        # Row 1 in the terms that matter for a binding: what it adds on top
        # of the cheapest possible call, and how much room is left below it.
        nd, pi, floor = row1.median("namedipc"), row1.median("posix_ipc"), row1.median("floor")
        assert nd is not None and pi is not None and floor is not None
        print("\nrow 1 against the interpreter:")
        print(
            f"  above the py floor, namedipc adds {nd - floor:,.0f} ns per pair, "
            f"posix_ipc {pi - floor:,.0f} ns ({(nd - floor) / (pi - floor):.2f}x)"
        )
        mp = row1.median("multiprocessing")
        if mp is not None:
            print(
                f"  multiprocessing.Semaphore (hand-written C) takes {mp:,.0f} ns per pair, "
                f"{ratio_text(row1.ratios('multiprocessing', 'posix_ipc'))} posix_ipc; "
                f"namedipc is {ratio_text(row1.ratios('namedipc', 'multiprocessing'))} of it"
            )
        c_cost = c_pair.median("floor")
        if c_cost is not None:
            print(f"  sem_wait+sem_post cost {c_cost:,.0f} ns per pair in a C loop")

    return Part(rows=[row1, row1m, row2, row2b], groups=[first, versus_mp, second, busy_timeout], notes=notes)
