"""Rows 5, 6, 9 and 10: create+close+unlink and open+close cycles of shared
memory segments and of message queues, and rows 5a and 6a, the same for
semaphores, timed in this process for each library and in C by floor.c.
A new type of object is one more Kind.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.loops import private_copy
from harness.measure import Context, Part, Subject
from harness.plan import Plan
from harness.rows import Row, Target
from harness.session import Session

# Every row's (issue 14): at or ahead of posix_ipc, measured in the same run.
AT_OR_AHEAD = Target("namedipc", "posix_ipc", "<=", 1.00)


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


def create_unlink_first_loop(
    make: Callable[..., Any],
    args: tuple[Any, ...],
    close: Callable[[Any], object],
    unlink: Callable[[Any], object],
    n: int,
) -> int:
    # create_cycle_loop for a type whose close() ends unlink(): posix_ipc's
    # Semaphore.unlink() raises once the handle is closed.
    start = time.perf_counter_ns()
    for _ in range(n):
        obj = make(*args)
        unlink(obj)
        close(obj)
    return time.perf_counter_ns() - start


def open_cycle_loop(make: Callable[..., Any], args: tuple[Any, ...], close: Callable[[Any], object], n: int) -> int:
    start = time.perf_counter_ns()
    for _ in range(n):
        close(make(*args))
    return time.perf_counter_ns() - start


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
    unlink_before_close: bool = False  # the create cycle unlinks, then closes


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


def sem_kind() -> Kind:
    return Kind(
        tag="sem",
        class_name="Semaphore",
        create_args=(0o600, 0),
        floor_create_args=(),
        close_method={"namedipc": "close", "posix_ipc": "close"},
        unlink_function="unlink_semaphore",
        unlink_before_close=True,
    )


def create_job(
    make: Callable[..., Any],
    args: tuple[Any, ...],
    close: Callable[[Any], object],
    unlink: Callable[[Any], object],
    n: int,
    unlink_before_close: bool = False,
) -> Callable[[], int]:
    loop = private_copy(create_unlink_first_loop if unlink_before_close else create_cycle_loop)
    return lambda: loop(make, args, close, unlink, n)


def open_job(
    make: Callable[..., Any], args: tuple[Any, ...], close: Callable[[Any], object], n: int
) -> Callable[[], int]:
    loop = private_copy(open_cycle_loop)
    return lambda: loop(make, args, close, n)


def cycle_subjects(
    session: Session,
    context: Context,
    kind: Kind,
    create_row: Row,
    create_cycles: int,
    open_row: Row,
    open_cycles: int,
) -> tuple[list[Subject], list[Subject]]:
    """The create+close+unlink and open+close cycle rows for `kind`, timed
    in this process for each library, and in C by floor.c."""
    posix_ipc = context.posix_ipc
    libs = {"namedipc": context.namedipc, "posix_ipc": posix_ipc}
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
            Subject(
                create_row, label, create_job(cls, create_args, close, unlink, create_cycles, kind.unlink_before_close)
            )
        )
        reopen.append(Subject(open_row, label, open_job(cls, (existing,), close, open_cycles)))
        create_names.append(name)
        open_names.append(existing)

    if context.floor_binary is not None:
        floor = str(context.floor_binary)
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


def subjects(session: Session, context: Context) -> Part:
    """Rows 5 and 6 (shared memory), 5a and 6a (semaphores), and 9 and 10
    (message queues)."""
    plan = context.plan
    rows = [
        Row(
            "5",
            f"5. shm create+close+unlink, {plan.shm_cycle_size // 1024} KiB",
            plan.shm_create_cycles,
            "C",
            target=AT_OR_AHEAD,
        ),
        Row("6", "6. shm open+close", plan.shm_open_cycles, "C", target=AT_OR_AHEAD),
        Row("9", "9. mq create+close+unlink", plan.mq_create_cycles, "C", target=AT_OR_AHEAD),
        Row("10", "10. mq open+close", plan.mq_open_cycles, "C", target=AT_OR_AHEAD),
    ]
    fifth, sixth = cycle_subjects(
        session,
        context,
        shm_kind(plan),
        rows[0],
        plan.shm_create_cycles,
        rows[1],
        plan.shm_open_cycles,
    )
    ninth, tenth = cycle_subjects(
        session,
        context,
        mq_kind(plan),
        rows[2],
        plan.mq_create_cycles,
        rows[3],
        plan.mq_open_cycles,
    )
    sem_rows = [
        Row("5a", "5a. sem create+unlink+close", plan.shm_create_cycles, "C", target=AT_OR_AHEAD),
        Row("6a", "6a. sem open+close", plan.shm_open_cycles, "C", target=AT_OR_AHEAD),
    ]
    sem_create, sem_open = cycle_subjects(
        session,
        context,
        sem_kind(),
        sem_rows[0],
        plan.shm_create_cycles,
        sem_rows[1],
        plan.shm_open_cycles,
    )
    return Part(rows=rows + sem_rows, groups=[fifth, sixth, ninth, tenth, sem_create, sem_open])
