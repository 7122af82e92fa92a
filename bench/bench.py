"""namedipc vs posix_ipc vs a floor (the bare interpreter, C, or a plain mmap),
side by side in one run, with interleaved rounds so that a noisy machine hits
all alike.
Run from the repository root: `.venv/bin/python bench/bench.py [--quick]`;
bench/README.md says what each row measures and how to read the table.
"""

from __future__ import annotations

import gc
import importlib
import os
import platform
import statistics
import sys
import time
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# bench/ is sys.path[0]
from harness.build import POSIX_IPC_VERSION, build_floor, import_or_exit, looks_like_debug_build
from harness.helper import round_trips
from harness.plan import MIB, Plan, parse_options
from harness.report import print_tables, ratio_text, report_targets
from harness.rows import Row, Target
from harness.session import Session, shm_path
from shm_partner import MARKER, PATTERN

BENCH_DIR = Path(__file__).resolve().parent
PARTNER = BENCH_DIR / "pingpong_partner.py"
MQ_PARTNER = BENCH_DIR / "mq_partner.py"
SHM_PARTNER = BENCH_DIR / "shm_partner.py"
ROBUST_HOLDER = BENCH_DIR / "robust_holder.py"

# Rows 3 and 5 to 10: namedipc at most 10% slower than the same work in C.
NEAR_C = Target("namedipc", "floor", "<=", 1.10)
# Kill-to-acquire: the median latency, in ms, from SIGKILL of the holder to
# a waiting process taking its slot.
KILL_TO_ACQUIRE_TARGET_MS = 1.0


# --------------------------------------------------------------------------
# Timed loops. Each is a plain function, so that its loop variables are fast
# locals; the caller binds methods once, so what is timed is the call itself,
# the same way for every library and for the floor.


def pair_loop(first: Callable[[], object], second: Callable[[], object], n: int) -> int:
    start = time.perf_counter_ns()
    for _ in range(n):
        first()
        second()
    return time.perf_counter_ns() - start


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


def create_cycle_loop(
    make: Callable[..., Any],
    args: tuple[Any, ...],
    close: Callable[[Any], object],
    unlink: Callable[[Any], object],
    n: int,
) -> int:
    # make is the class itself and close/unlink its unbound methods, so the
    # loop holds no Python-level wrapper that the C floor does not pay for.
    start = time.perf_counter_ns()
    for _ in range(n):
        obj = make(*args)
        close(obj)
        unlink(obj)
    return time.perf_counter_ns() - start


def open_cycle_loop(
    make: Callable[..., Any], args: tuple[Any, ...], close: Callable[[Any], object], n: int
) -> int:
    start = time.perf_counter_ns()
    for _ in range(n):
        close(make(*args))
    return time.perf_counter_ns() - start


def private_copy(loop: Callable[..., int]) -> Callable[..., int]:
    """`loop` with a code object of its own. CPython >= 3.11 specialises each
    call site for the callable it last saw: subjects sharing one loop would
    undo each other's specialisation, favouring whichever ran last."""
    return types.FunctionType(loop.__code__.replace(), loop.__globals__, loop.__name__)


# --------------------------------------------------------------------------
# Samples and what is printed from them.


def report(rows: list[Row], c_pair: Row) -> None:
    print_tables(rows)

    # Row 1 in the terms that matter for a binding: what it adds on top of
    # the cheapest possible call, and how much room is left below it.
    row1 = rows[0]
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


# --------------------------------------------------------------------------
# The crash-safe semaphore.


def robust_subjects(session: Session, namedipc: Any, posix_ipc: Any, plan: Plan, row: Row) -> list[Subject]:
    """Row 11: RobustSemaphore's uncontended pair against namedipc.Semaphore's
    (the floor column) and posix_ipc's, in this process."""
    robust = session.robust_semaphore(namedipc, "robust-free")
    nd_free = session.semaphore(namedipc, "robust-row-nd", 1)
    pi_free = session.semaphore(posix_ipc, "robust-row-pi", 1)
    robust_pair, nd_pair, pi_pair = (private_copy(pair_loop) for _ in range(3))
    n = plan.uncontended_iters

    def check() -> None:
        if robust.value != 1 or robust.holders():
            raise RuntimeError("row 11: the robust semaphore did not end with its slot free")

    session.after_run(check)
    return [
        Subject(row, "namedipc", lambda: robust_pair(robust.acquire, robust.release, n)),
        Subject(row, "floor", lambda: nd_pair(nd_free.acquire, nd_free.release, n)),
        Subject(row, "posix_ipc", lambda: pi_pair(pi_free.acquire, pi_free.release, n)),
    ]


def kill_to_acquire(session: Session, namedipc: Any, kills: int) -> tuple[list[float], list[float]]:
    """Latencies (ms) from SIGKILL of a holder process, and from its death
    (when waitpid returns: the kernel has torn it down, which for a Python
    process takes about a millisecond here), to this process taking its slot
    while it waits in acquire(). The kill lands at a random moment of the
    waiter's 1 ms poll, as a real crash would."""
    import random
    import signal
    import threading

    sem = session.robust_semaphore(namedipc, "robust-kill")
    from_kill, from_death = [], []
    for _ in range(kills):
        holder = session.helper("robust holder", [sys.executable, str(ROBUST_HOLDER), sem.name])
        if holder.read_line() != "held":
            raise RuntimeError("the robust holder did not take the slot")
        acquired: list[float] = []
        waiter = threading.Thread(
            target=lambda: acquired.append(time.perf_counter() if sem.acquire(timeout=10) else -1.0)
        )
        waiter.start()
        time.sleep(random.uniform(0.005, 0.015))  # the waiter is blocked by now
        killed = time.perf_counter()
        holder.kill()  # SIGKILL, then waitpid
        dead = time.perf_counter()
        waiter.join(15)
        if not acquired or acquired[0] < 0:
            raise RuntimeError("the killed holder's slot never came back")
        from_kill.append((acquired[0] - killed) * 1e3)
        from_death.append((acquired[0] - dead) * 1e3)
        sem.release()
    return from_kill, from_death


def report_kill_to_acquire(from_kill: list[float], from_death: list[float]) -> bool:
    """Prints the kill-to-acquire figures; True if the target was missed."""

    def spread(values: list[float]) -> str:
        return f"min {min(values):.2f}, median {statistics.median(values):.2f}, max {max(values):.2f} ms"

    median = statistics.median(from_death)
    met = median <= KILL_TO_ACQUIRE_TARGET_MS
    print(f"\nRobustSemaphore: {len(from_kill)} holder processes SIGKILLed while the harness waits")
    print(f"  kill to acquire:  {spread(from_kill)}")
    print(f"  death to acquire: {spread(from_death)} (death: waitpid returned)")
    print(
        f"  target: median after death <= {KILL_TO_ACQUIRE_TARGET_MS:.1f} ms: "
        f"{'met' if met else 'NOT MET'}"
    )
    return not met


# --------------------------------------------------------------------------
# The run.


@dataclass(frozen=True)
class Subject:
    """One thing to time: `job` runs one sample and returns the elapsed ns."""

    row: Row
    name: str  # "namedipc", "posix_ipc" or "floor"
    job: Callable[[], int]


def in_process_subjects(
    session: Session, namedipc: Any, posix_ipc: Any, plan: Plan, row1: Row, row2: Row
) -> tuple[list[Subject], list[Subject]]:
    """Rows 1 and 2, timed in this process."""
    # Row 1: the same kind of object from each library, value 1.
    nd_free = session.semaphore(namedipc, "free-nd", 1)
    pi_free = session.semaphore(posix_ipc, "free-pi", 1)
    # Row 2: value 0, so every acquire finds it unavailable.
    nd_busy = session.named_semaphore(namedipc, "busy-nd", 0)
    pi_busy = session.semaphore(posix_ipc, "busy-pi", 0)
    if nd_busy.acquire(blocking=False) is not False:
        raise RuntimeError("row 2: the namedipc semaphore is not unavailable")

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
    return first, second


def pingpong_subject(
    session: Session,
    posix_ipc: Any,
    plan: Plan,
    row3: Row,
    subject: str,
    argv: list[str],
    cpu: int,
) -> Subject:
    """Row 3 for one implementation: two helper processes, sides a and b,
    on a fresh pair of semaphores, so that a stray post in one
    implementation's run cannot leak into another's."""
    s1 = session.semaphore(posix_ipc, f"ping-{subject}-1", 0)
    s2 = session.semaphore(posix_ipc, f"ping-{subject}-2", 0)
    roles = ("pingpong-a", "pingpong-b") if subject == "floor" else ("a", "b")
    side_a, side_b = (
        session.helper(f"{subject} ping-pong {role}", [*argv, role, s1.name, s2.name, str(cpu)])
        for role in roles
    )

    return Subject(row3, subject, round_trips(side_a, side_b, plan.pingpong_trips))


def mq_pingpong_subjects(
    session: Session,
    posix_ipc: Any,
    plan: Plan,
    row: Row,
    size: int,
    floor_binary: Path | None,
    cpus: tuple[int, int],
) -> list[Subject]:
    """Rows 7 and 8: side a (on cpus[0]) sends a message of `size` bytes on
    Q1 and receives it back from Q2; side b (on cpus[1]) receives from Q1
    and sends what it got on Q2. A fresh pair of queues per implementation
    and size, so that a stray message in one's run cannot reach another's."""
    cpu_a, cpu_b = (str(cpu) for cpu in cpus)
    # Ping-pong never has more than one message in a queue; room for one
    # keeps the twelve queues of these rows far below RLIMIT_MSGQUEUE
    # (800 KiB by default), which counts max_messages * max_message_size.
    limits = {"max_messages": 1, "max_message_size": plan.mq_max_message_size}
    subjects = []
    for subject in ("namedipc", "posix_ipc", "floor"):
        if subject == "floor" and floor_binary is None:
            continue
        queues = []
        for tag in ("1", "2"):
            name = session.mq_name(f"mq-ping-{size}-{subject}-{tag}")
            posix_ipc.MessageQueue(name, posix_ipc.O_CREX, **limits).close()
            queues.append(name)
        if subject == "floor":
            argv_a = [str(floor_binary), "mq-pingpong-a", *queues, cpu_a, str(size)]
            argv_b = [str(floor_binary), "mq-pingpong-b", *queues, cpu_b]
        else:
            partner = [sys.executable, str(MQ_PARTNER), subject]
            argv_a = [*partner, "a", *queues, cpu_a, str(size)]
            argv_b = [*partner, "b", *queues, cpu_b]
        side_a = session.helper(f"{subject} mq ping-pong a, {size} B", argv_a)
        side_b = session.helper(f"{subject} mq ping-pong b, {size} B", argv_b)
        subjects.append(Subject(row, subject, round_trips(side_a, side_b, plan.mq_trips)))

        def check(queues: list[str] = queues) -> None:
            # Every round trip takes out what it put in.
            for name in queues:
                queue = posix_ipc.MessageQueue(name)
                try:
                    if queue.current_messages:
                        raise RuntimeError(
                            f"row {row.key}: {name} holds {queue.current_messages} "
                            "message(s) after the run"
                        )
                finally:
                    queue.close()

        session.after_run(check)
    return subjects


def size_text(size: int) -> str:
    return f"{size // 1024} KiB" if size >= 1024 and size % 1024 == 0 else f"{size} B"




def fill(fd: int, size: int) -> None:
    """Writes shm_partner's PATTERN over the first `size` bytes of `fd`."""
    chunk = PATTERN * (MIB // len(PATTERN))
    offset = 0
    while offset < size:
        # Byte i of the file is PATTERN[i % 256], also after a short write.
        start = offset % len(chunk)
        offset += os.pwrite(fd, chunk[start : start + size - offset], offset)


def shm_bandwidth_subjects(
    session: Session, namedipc: Any, posix_ipc: Any, plan: Plan, row: Row, cpu: int
) -> list[Subject]:
    """Row 4: one partner process (shm_partner.py) holding three segments of
    the same size, and copying all of one of them in and out per sample."""
    size = plan.shm_bandwidth_size
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

    partner = session.helper(
        "shm partner",
        [sys.executable, str(SHM_PARTNER), str(size), str(cpu), nd.name, pi.name, str(floor_path)],
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

    return [subject(name) for name in ("namedipc", "posix_ipc", "floor")]


@dataclass(frozen=True)
class Kind:
    """A type of IPC object, as the create and open cycle rows use it: both
    libraries have a class of the same name, made with (name, O_CREX,
    *create_args), closed by a method each, and removed with .unlink()."""

    tag: str  # in names, and floor.c's modes "<tag>-create" and "<tag>-open"
    class_name: str
    create_args: tuple[Any, ...]  # after (name, O_CREX)
    floor_create_args: tuple[str, ...]  # after floor.c's "<tag>-create NAME"
    close_method: dict[str, str]  # library -> the method that closes a handle
    unlink_function: str  # posix_ipc's function removing a name, for cleanup


def shm_kind(plan: Plan) -> Kind:
    size = plan.shm_cycle_size
    return Kind(
        tag="shm",
        class_name="SharedMemory",
        create_args=(0o600, size),
        floor_create_args=(str(size),),
        # posix_ipc has no close(); close_fd() is all a handle holds there.
        close_method={"namedipc": "close", "posix_ipc": "close_fd"},
        unlink_function="unlink_shared_memory",
    )


def mq_kind(plan: Plan) -> Kind:
    max_messages, max_message_size = plan.mq_cycle_limits
    return Kind(
        tag="mq",
        class_name="MessageQueue",
        create_args=(0o600, max_messages, max_message_size),
        floor_create_args=(str(max_messages), str(max_message_size)),
        close_method={"namedipc": "close", "posix_ipc": "close"},
        unlink_function="unlink_message_queue",
    )


def create_job(
    make: Callable[..., Any],
    args: tuple[Any, ...],
    close: Callable[[Any], object],
    unlink: Callable[[Any], object],
    n: int,
) -> Callable[[], int]:
    loop = private_copy(create_cycle_loop)
    return lambda: loop(make, args, close, unlink, n)


def open_job(
    make: Callable[..., Any], args: tuple[Any, ...], close: Callable[[Any], object], n: int
) -> Callable[[], int]:
    loop = private_copy(open_cycle_loop)
    return lambda: loop(make, args, close, n)


def cycle_subjects(
    session: Session,
    libs: dict[str, Any],
    floor_binary: Path | None,
    kind: Kind,
    create_row: Row,
    create_cycles: int,
    open_row: Row,
    open_cycles: int,
) -> tuple[list[Subject], list[Subject]]:
    """The create+close+unlink and open+close cycle rows for `kind`, timed
    in this process for each library in `libs`, and in C by floor.c."""
    posix_ipc = libs["posix_ipc"]
    remove = getattr(posix_ipc, kind.unlink_function)

    def exists(name: str) -> bool:
        try:
            handle = getattr(posix_ipc, kind.class_name)(name)
        except posix_ipc.ExistentialError:
            return False
        getattr(handle, kind.close_method["posix_ipc"])()
        return True

    def new_name(tag: str) -> str:
        # Checked by opening it after the run, as well: a message queue's
        # name shows up in no directory.
        return session.probed_name(tag, remove, exists)

    def make_existing(lib: Any, label: str, tag: str) -> str:
        """A new object for an open cycle to open, made by `lib`."""
        name = new_name(tag)
        handle = getattr(lib, kind.class_name)(name, lib.O_CREX, *kind.create_args)
        getattr(handle, kind.close_method[label])()
        return name

    create: list[Subject] = []
    reopen: list[Subject] = []
    create_names: list[str] = []
    open_names: list[str] = []
    for label, lib in libs.items():
        cls = getattr(lib, kind.class_name)
        # Unbound methods: the same call for every handle, looked up once.
        close = getattr(cls, kind.close_method[label])
        unlink = cls.unlink
        name = new_name(f"{kind.tag}-create-{label}")
        create_args = (name, lib.O_CREX, *kind.create_args)
        existing = make_existing(lib, label, f"{kind.tag}-open-{label}")
        create.append(
            Subject(create_row, label, create_job(cls, create_args, close, unlink, create_cycles))
        )
        reopen.append(Subject(open_row, label, open_job(cls, (existing,), close, open_cycles)))
        create_names.append(name)
        open_names.append(existing)

    if floor_binary is not None:
        floor = str(floor_binary)
        name = new_name(f"{kind.tag}-create-floor")
        existing = make_existing(posix_ipc, "posix_ipc", f"{kind.tag}-open-floor")
        c_create = session.helper(
            f"C {kind.tag} create cycle",
            [floor, f"{kind.tag}-create", name, *kind.floor_create_args],
        )
        c_open = session.helper(f"C {kind.tag} open cycle", [floor, f"{kind.tag}-open", existing])
        create.append(Subject(create_row, "floor", lambda: int(c_create.ask(create_cycles))))
        reopen.append(Subject(open_row, "floor", lambda: int(c_open.ask(open_cycles))))
        create_names.append(name)
        open_names.append(existing)

    def check() -> None:
        # Every create cycle removes what it made; every open cycle leaves
        # alone what it opened.
        for name in create_names:
            if exists(name):
                raise RuntimeError(f"row {create_row.key}: {name} still exists after the run")
        for name in open_names:
            if not exists(name):
                raise RuntimeError(f"row {open_row.key}: {name} is gone after the run")

    session.after_run(check)
    return create, reopen


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


def run(plan: Plan, cpu: int, mq_cpus: tuple[int, int] | None, check: bool) -> int:
    posix_ipc = import_or_exit(
        "posix_ipc", f"{sys.executable} -m pip install posix_ipc=={POSIX_IPC_VERSION}"
    )
    namedipc = import_or_exit("namedipc", "maturin develop --release (from the repository root)")
    extension = Path(importlib.import_module("namedipc._namedipc").__file__ or "")
    floor_binary = build_floor()

    print(
        f"namedipc {namedipc.__version__} vs posix_ipc {posix_ipc.VERSION} | "
        f"CPython {platform.python_version()}, Linux {platform.release()}, {os.cpu_count()} CPUs"
    )
    pinning = f"ping-pong processes and the shm partner pinned to CPU {cpu}"
    if mq_cpus is not None:
        pinning += f"; queue ping-pong sides to CPUs {mq_cpus[0]} and {mq_cpus[1]}"
    print(f"{plan.rounds} rounds (+{plan.warmup_rounds} warm-up), interleaved; {pinning}")
    if posix_ipc.VERSION != POSIX_IPC_VERSION:
        print(f"WARNING: posix_ipc is {posix_ipc.VERSION}; the targets assume {POSIX_IPC_VERSION}")
    if looks_like_debug_build(extension):
        print(f"WARNING: {extension} looks like a debug build: use maturin develop --release")
    if floor_binary is None:
        print("WARNING: gcc not found, so there is no C floor")
    if mq_cpus is None:
        print("WARNING: this process may run on one CPU only, so rows 7 and 8 are not run")
    print(flush=True)

    # --mq-cpus N,N puts both sides on one CPU, as in row 3: then no
    # cross-CPU wake-up is in the round trip, for a look at the libraries alone.
    mq_cpu_text = "1 CPU" if mq_cpus is not None and mq_cpus[0] == mq_cpus[1] else "2 CPUs"
    rows = [
        Row(
            "1",
            "1. acquire()+release(), uncontended",
            plan.uncontended_iters,
            "py",
            target=Target("namedipc", "posix_ipc", "<=", 0.55),
        ),
        Row(
            "2",
            "2. non-blocking acquire, unavailable",
            plan.nonblocking_iters,
            "py",
            target=Target("namedipc", "posix_ipc", "<=", 0.20),
        ),
        Row("3", "3. ping-pong round trip, 1 CPU", plan.pingpong_trips, "C", target=NEAR_C),
        Row(
            "4",
            f"4. shm {plan.shm_bandwidth_size // MIB} MiB read+write, 2nd process",
            plan.shm_passes,
            "mmap",
            bytes_per_iter=2 * plan.shm_bandwidth_size,
            target=Target("namedipc", "floor", ">=", 0.95),
        ),
        Row(
            "5",
            f"5. shm create+close+unlink, {plan.shm_cycle_size // 1024} KiB",
            plan.shm_create_cycles,
            "C",
            target=NEAR_C,
        ),
        Row("6", "6. shm open+close", plan.shm_open_cycles, "C", target=NEAR_C),
        *(
            Row(
                key,
                f"{key}. mq round trip, {size_text(size)}, {mq_cpu_text}",
                plan.mq_trips,
                "C",
                target=NEAR_C,
            )
            for key, size in zip(("7", "8"), plan.mq_message_sizes)
        ),
        Row("9", "9. mq create+close+unlink", plan.mq_create_cycles, "C", target=NEAR_C),
        Row("10", "10. mq open+close", plan.mq_open_cycles, "C", target=NEAR_C),
        Row(
            "11",
            "11. robust acquire()+release()",
            plan.uncontended_iters,
            "Semaphore",
            target=Target("namedipc", "floor", "<=", 1.20),
        ),
    ]
    c_pair = Row("1c", "C sem_wait+sem_post", plan.uncontended_iters, "C")
    session = Session(posix_ipc)
    try:
        first, second = in_process_subjects(session, namedipc, posix_ipc, plan, rows[0], rows[1])
        partner = [sys.executable, str(PARTNER)]
        third = [
            pingpong_subject(session, posix_ipc, plan, rows[2], lib, [*partner, lib], cpu)
            for lib in ("namedipc", "posix_ipc")
        ]
        if floor_binary is not None:
            floor = str(floor_binary)
            third.append(pingpong_subject(session, posix_ipc, plan, rows[2], "floor", [floor], cpu))
            c_sem = session.semaphore(posix_ipc, "free-c", 1)
            c_helper = session.helper("C uncontended", [floor, "uncontended", c_sem.name])
            n1 = plan.uncontended_iters
            first.append(Subject(c_pair, "floor", lambda: int(c_helper.ask(n1))))
        fourth = shm_bandwidth_subjects(session, namedipc, posix_ipc, plan, rows[3], cpu)
        fifth, sixth = cycle_subjects(
            session,
            {"namedipc": namedipc, "posix_ipc": posix_ipc},
            floor_binary,
            shm_kind(plan),
            rows[4],
            plan.shm_create_cycles,
            rows[5],
            plan.shm_open_cycles,
        )
        if mq_cpus is None:
            queue_rounds: list[list[Subject]] = []
        else:
            queue_rounds = [
                mq_pingpong_subjects(session, posix_ipc, plan, row, size, floor_binary, mq_cpus)
                for row, size in zip(rows[6:8], plan.mq_message_sizes)
            ]
        ninth, tenth = cycle_subjects(
            session,
            {"namedipc": namedipc, "posix_ipc": posix_ipc},
            floor_binary,
            mq_kind(plan),
            rows[8],
            plan.mq_create_cycles,
            rows[9],
            plan.mq_open_cycles,
        )
        eleventh = robust_subjects(session, namedipc, posix_ipc, plan, rows[10])
        measure(
            [first, second, third, fourth, fifth, sixth, *queue_rounds, ninth, tenth, eleventh],
            plan,
        )
        from_kill, from_death = kill_to_acquire(session, namedipc, plan.robust_kills)
        session.check()
    finally:
        session.close()

    report(rows, c_pair)
    missed = report_targets(rows)
    missed |= report_kill_to_acquire(from_kill, from_death)
    leftovers = session.leftovers()
    if leftovers:
        print(f"\nERROR: left behind: {', '.join(leftovers)}")
        return 1
    print(
        f"\ncleanup: nothing named {session.prefix[1:]}* left in /dev/shm, and none "
        f"of the {session.probed()} queue and segment names used opens any more"
    )
    return 1 if check and missed else 0


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv, __doc__)
    try:
        return run(options.plan, options.cpu, options.mq_cpus, options.check)
    except KeyboardInterrupt:
        print("\ninterrupted; everything this run created was removed", file=sys.stderr)
        return 130
    except RuntimeError as e:
        # A helper failed or a sanity check did not hold: the figures would
        # be wrong, so there are none.
        print(f"\nbench: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
