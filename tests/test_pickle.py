"""Every handle pickles by name and reopens the same object in another
process, whatever the start method (spawn, forkserver, fork) and whether it
travels as a Process argument, through a pipe, or to a ProcessPoolExecutor;
the other process's handles never remove what they did not create."""

from __future__ import annotations

import multiprocessing
import os
import pickle
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.context import ForkContext, ForkServerContext, SpawnContext

import pytest

import namedipc
from namedipc import MessageQueue, NamedSemaphore, RobustSemaphore, SharedMemory
from support.names import Names
from support.waiting import WAIT

START_METHODS = ["spawn", "forkserver", "fork"]

# Python 3.12+ warns when forking a process that has threads; the children
# here only touch the handles they were given.
fork_warning = pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")


class TaggedSemaphore(NamedSemaphore):
    """A subclass with state: the state travels with the handle."""

    tag = ""


@dataclass
class Handles:
    """One handle of each kind, plus read-only ones, on objects the parent created."""

    compat: namedipc.Semaphore
    named: TaggedSemaphore
    shm: SharedMemory
    shm_reader: SharedMemory
    mq: MessageQueue
    mq_reader: MessageQueue
    robust: RobustSemaphore  # 2 slots, one held by the parent

    def report(self) -> list[object]:
        """What a process sees through the handles (taken by use_handles, checked by the test)."""
        return [
            [type(h).__name__ for h in (self.compat, self.named, self.shm, self.mq, self.robust)],
            self.named.tag,
            self.named.created,
            self.shm.size,
            self.shm_reader.buf.readonly,
        ]


@pytest.fixture
def handles(names: Names, shm_names: Names, mq_names: Names, robust_name: str) -> Iterator[Handles]:
    named = TaggedSemaphore(names(), 0)
    named.tag = "travels"
    # The random names are tracked as soon as they exist, so that they are
    # removed whatever fails next.
    shm_reader = SharedMemory(None, namedipc.O_CREX, size=16)
    shm_names.track(shm_reader.name)
    mq_reader = MessageQueue(None, namedipc.O_CREX, max_messages=1, max_message_size=16, write=False)
    mq_names.track(mq_reader.name)
    made = Handles(
        compat=namedipc.Semaphore(names(), namedipc.O_CREX),
        named=named,
        shm=SharedMemory(shm_names(), namedipc.O_CREX, size=4096),
        shm_reader=shm_reader,
        mq=MessageQueue(mq_names(), namedipc.O_CREX, max_messages=2, max_message_size=64),
        mq_reader=mq_reader,
        robust=RobustSemaphore(robust_name, 2),
    )
    assert made.robust.acquire(blocking=False)
    made.shm_reader = SharedMemory(made.shm_reader.name, read_only=True)
    yield made
    made.shm.close()


def use_handles(handles: Handles) -> list[object]:
    """What the other process does: one visible change through each handle."""
    handles.compat.release()
    handles.named.release()
    handles.shm.buf[:5] = b"hello"
    handles.mq.send(b"from the child", priority=3)
    try:
        handles.mq_reader.send(b"refused")
        refused = False
    except namedipc.PermissionsError:
        refused = True
    # The other slot of the robust semaphore is this process's to take and
    # give back; the parent's is not its to release.
    took = handles.robust.acquire(blocking=False)
    handles.robust.release()
    try:
        handles.robust.release()
        released_parents = True
    except ValueError:
        released_parents = False
    report = [*handles.report(), refused, took, released_parents]
    handles.shm.close()  # the child's own mapping; the segment stays
    return report


def child_with_args(conn: Connection, handles: Handles) -> None:
    conn.send(use_handles(handles))


def child_with_pipe(conn: Connection) -> None:
    conn.send(use_handles(conn.recv()))


def expected(start_method: str, passed_as: str) -> list[object]:
    # A fork child given the handles as arguments has the parent's very
    # objects (nothing is pickled): there named.created is still True.
    inherited = start_method == "fork" and passed_as == "args"
    return [
        ["Semaphore", "TaggedSemaphore", "SharedMemory", "MessageQueue", "RobustSemaphore"],
        "travels",
        inherited,
        4096,
        True,
        True,
        True,
        False,
    ]


def check_parent_sees_the_changes(handles: Handles) -> None:
    assert handles.compat.value == 1
    assert handles.named.value == 1
    assert bytes(handles.shm.buf[:5]) == b"hello"
    assert handles.mq.receive(0) == (b"from the child", 3)
    assert handles.mq.current_messages == 0
    assert handles.robust.value == 1
    assert [h.pid for h in handles.robust.holders()] == [os.getpid()]
    # The child's handles did not create anything, so they removed nothing.
    assert_all_exist(handles)


def assert_all_exist(handles: Handles) -> None:
    for sem in (handles.compat, handles.named):
        assert NamedSemaphore(sem.name, handle_existence=namedipc.Flags.RAISE_IF_NOT_EXISTS).value == 1
    for shm in (handles.shm, handles.shm_reader):
        assert SharedMemory(shm.name).size == shm.size
    for mq in (handles.mq, handles.mq_reader):
        MessageQueue(mq.name).close()
    assert RobustSemaphore(handles.robust.name, handle_existence=namedipc.Flags.RAISE_IF_NOT_EXISTS).slots == 2


def context(start_method: str) -> SpawnContext | ForkServerContext | ForkContext:
    ctx = multiprocessing.get_context(start_method)
    assert isinstance(ctx, (SpawnContext, ForkServerContext, ForkContext))
    return ctx


def run_child(process: multiprocessing.process.BaseProcess, conn: Connection) -> list[object]:
    process.start()
    try:
        assert conn.poll(WAIT * 3), "the child sent no report"
        report: list[object] = conn.recv()
        process.join(WAIT)
    finally:
        if process.is_alive():
            process.kill()
            process.join(WAIT)
    assert process.exitcode == 0
    return report


@fork_warning
@pytest.mark.parametrize("start_method", START_METHODS)
def test_handles_as_process_arguments(start_method: str, handles: Handles) -> None:
    ctx = context(start_method)
    ours, theirs = ctx.Pipe()
    report = run_child(ctx.Process(target=child_with_args, args=(theirs, handles)), ours)
    assert report == expected(start_method, "args")
    check_parent_sees_the_changes(handles)


@fork_warning
@pytest.mark.parametrize("start_method", START_METHODS)
def test_handles_through_a_pipe(start_method: str, handles: Handles) -> None:
    ctx = context(start_method)
    ours, theirs = ctx.Pipe()
    process = ctx.Process(target=child_with_pipe, args=(theirs,))
    ours.send(handles)  # pickled whatever the start method
    report = run_child(process, ours)
    assert report == expected(start_method, "pipe")
    check_parent_sees_the_changes(handles)


@fork_warning
@pytest.mark.parametrize("start_method", START_METHODS)
def test_handles_to_a_process_pool(start_method: str, handles: Handles) -> None:
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context(start_method)) as pool:
        report = pool.submit(use_handles, handles).result(timeout=WAIT * 3)
        assert report == expected(start_method, "pool")
        check_parent_sees_the_changes(handles)
        # And back: a handle the worker opens pickles to the parent.
        sem = pool.submit(NamedSemaphore, handles.named.name).result(timeout=WAIT)
    assert type(sem) is NamedSemaphore and sem.name == handles.named.name and not sem.created
    # The pool's workers have exited, closing their handles; everything is still there.
    assert_all_exist(handles)


def test_unpickling_a_removed_semaphore_raises(sem_name: str) -> None:
    data = pickle.dumps(NamedSemaphore(sem_name, 1))  # the creator is gone at once: removed
    with pytest.raises(FileNotFoundError, match=sem_name):
        pickle.loads(data)


@pytest.mark.parametrize("mode", [-1, 2**64, 0o10000])
def test_a_tampered_shared_memory_pickle_gets_a_value_error(shm_name: str, mode: int) -> None:
    with SharedMemory(shm_name, namedipc.O_CREX, size=16) as shm:
        function, args = shm.__reduce__()[:2]
        tampered = (args[0], args[1], mode, *args[3:])
        with pytest.raises(ValueError, match="mode must be between 0 and 4095"):
            function(*tampered)
        shm.unlink()


def test_a_tampered_shared_memory_pickle_with_a_bad_type_gets_a_type_error(shm_name: str) -> None:
    with SharedMemory(shm_name, namedipc.O_CREX, size=16) as shm:
        function, args = shm.__reduce__()[:2]
        with pytest.raises(TypeError, match="mode must be an int"):
            function(args[0], args[1], "0o600", *args[3:])
        shm.unlink()
