"""namedipc.MessageQueue as a drop-in for posix_ipc 1.3's MessageQueue:
order, limits, waits, notifications and signals across independent
processes, a C peer, and the cases where posix_ipc crashes and namedipc
raises. Imports come from namedipc._namedipc until the package re-exports them."""

from __future__ import annotations

import array
import gc
import os
import pickle
import re
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
import weakref
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest

import namedipc
from namedipc._namedipc import (
    MESSAGE_QUEUES_SUPPORTED,
    O_CREAT,
    O_CREX,
    O_EXCL,
    O_NONBLOCK,
    QUEUE_MESSAGE_SIZE_MAX_DEFAULT,
    QUEUE_MESSAGES_MAX_DEFAULT,
    QUEUE_PRIORITY_MAX,
    USER_SIGNAL_MAX,
    USER_SIGNAL_MIN,
    MessageQueue,
    unlink_message_queue,
)
from support.build import compile_c
from support.names import Names
from support.processes import HELPERS, Background, Peer, program_ok, run_program, tracking
from support.waiting import WAIT, assert_one_returned, poll_until, race

MQ_PROC = Path("/proc/sys/fs/mqueue")


class MqPeer(Peer):
    """An independent process running tests/helpers/mq_peer.py."""

    def __init__(self, *args: str) -> None:
        super().__init__(sys.executable, HELPERS / "mq_peer.py", *args)


@pytest.fixture
def peer() -> Iterator[type[MqPeer]]:
    """Starts peer processes; any still running at teardown are killed."""
    yield from tracking(MqPeer)


def run_peer(*args: str) -> list[str]:
    """Runs mq_peer.py to completion; returns its output lines (not
    stripped: the line of an empty message ends in a space)."""
    done = run_program(sys.executable, HELPERS / "mq_peer.py", *args)
    assert done.returncode == 0, f"mq_peer {' '.join(args)} failed ({done.returncode}): {done.stderr}"
    return done.stdout.splitlines()


# ppoll's number, by machine: namedipc's waits that close() can end sleep
# in ppoll on the queue descriptor and an eventfd.
PPOLL = {"x86_64": 271, "aarch64": 73}.get(os.uname().machine)


def wait_until_waiting(pid: int, fd: int, timeout: float = WAIT) -> None:
    """Returns once a thread of process `pid` sleeps in a system call on
    descriptor `fd` (mq_timedsend or mq_timedreceive on the queue), or in
    ppoll (whose descriptors /proc does not show), as namedipc's waits do:
    a test waits for the state of the process, not for time to pass."""

    def a_thread_waits() -> bool:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                call = (task / "syscall").read_text().split()
                state = (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except (FileNotFoundError, ProcessLookupError):
                continue  # the thread ended meanwhile
            waits = len(call) > 1 and call[0].isdigit() and state == "S"
            if waits and (int(call[1], 16) == fd or int(call[0]) == PPOLL):
                return True
        return False

    poll_until(a_thread_waits, timeout, f"a thread of process {pid} blocked on queue descriptor {fd}")


def drain(queue: MessageQueue) -> list[tuple[bytes, int]]:
    out = []
    while queue.current_messages:
        out.append(queue.receive(0))
    return out


# ---------------------------------------------------------------- surface


def test_constants_describe_this_system() -> None:
    import posix_ipc

    assert MESSAGE_QUEUES_SUPPORTED is True
    # Read when the module loaded, where posix_ipc has its build machine's.
    assert QUEUE_MESSAGES_MAX_DEFAULT == int((MQ_PROC / "msg_default").read_text())
    assert QUEUE_MESSAGE_SIZE_MAX_DEFAULT == int((MQ_PROC / "msgsize_default").read_text())
    assert QUEUE_PRIORITY_MAX == os.sysconf("SC_MQ_PRIO_MAX") - 1 == posix_ipc.QUEUE_PRIORITY_MAX
    assert (USER_SIGNAL_MIN, USER_SIGNAL_MAX) == (signal.SIGRTMIN, signal.SIGRTMAX)
    assert (USER_SIGNAL_MIN, USER_SIGNAL_MAX) == (posix_ipc.USER_SIGNAL_MIN, posix_ipc.USER_SIGNAL_MAX)


def test_attributes_repr_and_defaults(mq_name: str) -> None:
    mq = MessageQueue(mq_name, O_CREX)
    assert (mq.name, mq.mode, str(mq)) == (mq_name, 0o600, mq_name)
    assert (mq.max_messages, mq.max_message_size) == (QUEUE_MESSAGES_MAX_DEFAULT, QUEUE_MESSAGE_SIZE_MAX_DEFAULT)
    assert mq.current_messages == 0 and mq.block is True
    assert mq.mqd == mq.fileno() and mq.mqd >= 0
    os.fstat(mq.mqd)  # a real descriptor
    assert repr(mq) == (
        f'namedipc.MessageQueue("{mq_name}", mode=0600, max_message_size={QUEUE_MESSAGE_SIZE_MAX_DEFAULT}, '
        f"max_messages={QUEUE_MESSAGES_MAX_DEFAULT}, read=True, write=True)"
    )
    small = MessageQueue(mq_name, max_messages=3, max_message_size=40, write=False)
    # An existing queue keeps its own limits, as in posix_ipc.
    assert (small.max_messages, small.max_message_size) == (QUEUE_MESSAGES_MAX_DEFAULT, QUEUE_MESSAGE_SIZE_MAX_DEFAULT)
    assert repr(small).endswith("read=True, write=False)")
    with pytest.raises(AttributeError):
        mq.mode = 0o644  # type: ignore[misc]


def test_existence(mq_names: Names) -> None:
    name = mq_names()
    with pytest.raises(namedipc.ExistentialError, match="does not exist") as missing:
        MessageQueue(name)
    assert isinstance(missing.value, FileNotFoundError)
    created = MessageQueue(name, O_CREX, max_messages=2, max_message_size=16)
    with pytest.raises(FileExistsError, match="already exists"):
        MessageQueue(name, O_CREX)
    opened = MessageQueue(name, O_CREAT)
    assert (opened.max_messages, opened.max_message_size) == (2, 16)
    opened.send(b"shared")
    assert created.receive(0) == (b"shared", 0)
    unlink_message_queue(name)
    with pytest.raises(namedipc.ExistentialError, match="does not exist"):
        unlink_message_queue(name)
    with pytest.raises(ValueError, match="O_EXCL must be combined with O_CREAT"):
        MessageQueue(name, O_EXCL)
    with pytest.raises(ValueError, match="at least one of read or write"):
        MessageQueue(name, O_CREAT, read=False, write=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="O_CREX"):
        MessageQueue(None, O_CREAT)


def test_random_names(mq_names: Names) -> None:
    # Each is tracked as soon as it exists, so that it is removed whatever fails next.
    a = MessageQueue(None, O_CREX)
    mq_names.track(a.name)
    b = MessageQueue(None, O_CREX)
    mq_names.track(b.name)
    assert a.name != b.name and re.fullmatch(r"/namedipc-[a-z0-9]{16}", a.name), a.name
    MessageQueue(a.name).send(b"found by name")
    assert a.receive(0) == (b"found by name", 0)


def test_name_rules(mq_names: Names) -> None:
    with pytest.raises(ValueError, match="NUL"):
        MessageQueue("/bad\0name", O_CREAT)
    for bad in ["", "/", "/a/b", "/" + "x" * 256]:
        with pytest.raises(ValueError, match="followed by 1 to 255 bytes"):
            MessageQueue(bad, O_CREAT)
    with pytest.raises(TypeError, match="name must be a str"):
        MessageQueue(42)  # type: ignore[arg-type]
    # posix_ipc (glibc's mq_open) rejects a name without its leading slash;
    # namedipc accepts it as the same queue, as it does for semaphores, and
    # shows it as C's mq_open must be given it.
    name = mq_names()
    plain = MessageQueue(name.lstrip("/"), O_CREX)
    assert plain.name == name
    plain.send(b"x")
    assert MessageQueue(name).current_messages == 1


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"max_messages": 0}, ValueError, "max_messages must be between 1 and"),
        ({"max_message_size": -1}, ValueError, "max_message_size must be between 1 and"),
        ({"max_messages": "3"}, TypeError, "max_messages must be an int"),
        ({"mode": 0o10000}, ValueError, "mode must be between 0 and 4095"),
        ({"flags": -1}, ValueError, "flags must be between 0 and"),
    ],
)
def test_out_of_range_arguments(mq_name: str, kwargs: dict[str, object], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        MessageQueue(mq_name, **{"flags": O_CREX, **kwargs})  # type: ignore[arg-type]


def test_limits_beyond_the_system_say_what_it_allows(mq_name: str) -> None:
    # Beyond even a privileged process's hard limit of 65536 messages.
    with pytest.raises(ValueError) as e:
        MessageQueue(mq_name, O_CREX, max_messages=1 << 20)
    msg_max = int((MQ_PROC / "msg_max").read_text())
    assert f"max_messages={1 << 20}" in str(e.value) and f"at most {msg_max} messages" in str(e.value)
    with pytest.raises(namedipc.ExistentialError):
        MessageQueue(mq_name)


# ---------------------------------------------------------------- messages


def test_priority_order_across_processes(mq_name: str) -> None:
    mq = MessageQueue(mq_name, O_CREX)
    sent = [(1, b"low-1"), (7, b"high-1"), (0, b"zero"), (1, b"low-2"), (7, b"high-2"), (QUEUE_PRIORITY_MAX, b"top")]
    assert run_peer("send", mq_name, *[f"{p}:{m.hex()}" for p, m in sent]) == ["sent 6"]
    # Highest priority first; first in, first out within a priority.
    assert drain(mq) == [
        (b"top", QUEUE_PRIORITY_MAX),
        (b"high-1", 7),
        (b"high-2", 7),
        (b"low-1", 1),
        (b"low-2", 1),
        (b"zero", 0),
    ]
    for priority, message in [(2, b"b"), (5, b"a"), (2, b"c")]:
        mq.send(message, priority=priority)
    assert run_peer("receive", mq_name, "3") == ["5 61", "2 62", "2 63"]


def test_message_types_and_embedded_nuls(mq_name: str) -> None:
    mq = MessageQueue(mq_name, O_CREX, max_messages=8, max_message_size=32)
    mq.send("héllo\0wörld")  # a str goes as UTF-8
    mq.send(b"\0\0bytes\0")
    mq.send(bytearray(b"bytearray"))
    mq.send(memoryview(b"a-memoryview")[2:])
    mq.send(memoryview(b"0123456789")[::3])  # not contiguous
    mq.send(array.array("H", [1, 2]))
    mq.send(b"")
    mq.send(b"x" * 32)
    expected = [
        "héllo\0wörld".encode(),
        b"\0\0bytes\0",
        b"bytearray",
        b"memoryview",
        b"0369",
        array.array("H", [1, 2]).tobytes(),
        b"",
        b"x" * 32,
    ]
    # Another process sees exactly these bytes.
    lines = run_peer("receive", mq_name, str(len(expected)))
    assert lines == [f"0 {m.hex()}" for m in expected]
    with pytest.raises(ValueError, match=r"33 bytes is too long for message queue .* whose max_message_size is 32"):
        mq.send(b"x" * 33)
    assert mq.current_messages == 0


def test_priority_range(mq_name: str) -> None:
    mq = MessageQueue(mq_name, O_CREX)
    for bad in [-1, QUEUE_PRIORITY_MAX + 1, 2**64]:
        with pytest.raises(ValueError, match=f"priority must be between 0 and {QUEUE_PRIORITY_MAX}"):
            mq.send(b"x", priority=bad)
    with pytest.raises(TypeError, match="priority must be an int"):
        mq.send(b"x", priority=1.5)  # type: ignore[arg-type]
    mq.send(b"positional", 0, 3)  # message, timeout, priority, as posix_ipc
    assert mq.receive() == (b"positional", 3)


def test_inputs_that_crash_posix_ipc_raise(mq_name: str) -> None:
    mq = MessageQueue(mq_name, O_CREX)
    # posix_ipc 1.3.2 segfaults on each of these.
    for bad in [123, None, object(), 1.5]:
        with pytest.raises(TypeError, match=r"message must be bytes, a str .* not "):
            mq.send(bad)  # type: ignore[arg-type]
    with pytest.raises(UnicodeEncodeError):
        mq.send("\udc80")  # a lone surrogate has no UTF-8
    with pytest.raises(AttributeError):
        del mq.block
    assert mq.block is True and mq.current_messages == 0


# ---------------------------------------------------------------- waiting


def test_timeouts_are_never_shorter_than_asked(mq_name: str) -> None:
    mq = MessageQueue(mq_name, O_CREX, max_messages=1)
    started = time.monotonic()
    with pytest.raises(namedipc.BusyError, match="is empty and stayed empty for the whole timeout"):
        mq.receive(0.2)
    assert 0.2 <= time.monotonic() - started < WAIT
    mq.send(b"fill")
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="is full and stayed full"):
        mq.send(b"more", 0.2)
    assert 0.2 <= time.monotonic() - started < WAIT
    started = time.monotonic()
    with pytest.raises(namedipc.BusyError, match="timeout=0 does not wait"):
        mq.send(b"more", 0)
    assert time.monotonic() - started < 0.5
    for bad, error in [(-1, TypeError), (float("nan"), ValueError), ("1", TypeError)]:
        with pytest.raises(error, match="timeout must be None"):
            mq.receive(bad)  # type: ignore[arg-type]


def test_a_blocked_receive_is_woken_by_another_process(mq_name: str) -> None:
    mq = MessageQueue(mq_name, O_CREX)
    outcome: list[object] = []
    thread = threading.Thread(target=lambda: outcome.append(mq.receive()))
    thread.start()
    try:
        wait_until_waiting(os.getpid(), mq.mqd)
        assert run_peer("send", mq_name, f"4:{b'wake'.hex()}") == ["sent 1"]
    finally:
        thread.join(WAIT)
        if thread.is_alive():
            mq.send(b"unblock")
            thread.join(WAIT)
    assert outcome == [(b"wake", 4)]


def test_a_blocked_send_in_another_process_is_woken_by_a_receive(mq_name: str, peer: type[MqPeer]) -> None:
    mq = MessageQueue(mq_name, O_CREX, max_messages=2)
    mq.send(b"one")
    mq.send(b"two")
    sender, _ = start_waiter("send", mq_name, str(WAIT), peer)
    assert mq.receive(0) == (b"one", 0)
    assert sender.expect("sent") == "sent"
    sender.finish()
    assert drain(mq) == [(b"two", 0), (b"late", 0)]


def test_block_false_never_waits(mq_name: str) -> None:
    mq = MessageQueue(mq_name, O_CREX, max_messages=1)
    mq.block = False
    assert mq.block is False
    started = time.monotonic()
    with pytest.raises(namedipc.BusyError, match=r"is empty and this handle does not wait \(block is False\)"):
        mq.receive()  # timeout None: would wait for ever in blocking mode
    with pytest.raises(namedipc.BusyError, match="block is False"):
        mq.receive(5)
    mq.send(b"fill")
    with pytest.raises(namedipc.BusyError, match="is full and this handle does not wait"):
        mq.send(b"more")
    assert time.monotonic() - started < 1
    # O_NONBLOCK opens a handle that does not block; blocking is per handle.
    other = MessageQueue(mq_name, O_NONBLOCK)
    assert other.block is False and MessageQueue(mq_name).block is True
    mq.block = "yes"  # any truth value, as posix_ipc
    assert mq.block is True


def test_access_modes(mq_name: str) -> None:
    MessageQueue(mq_name, O_CREX)
    reader = MessageQueue(mq_name, write=False)
    writer = MessageQueue(mq_name, read=False)
    with pytest.raises(namedipc.PermissionsError, match="opened with write=False; open it with write=True to send"):
        reader.send(b"x")
    writer.send(b"from the writer")
    with pytest.raises(PermissionError, match="opened with read=False"):
        writer.receive()
    with pytest.raises(namedipc.PermissionsError, match="read=False"):
        writer.receive_into(bytearray(QUEUE_MESSAGE_SIZE_MAX_DEFAULT))
    assert reader.receive(0) == (b"from the writer", 0)


def test_use_after_close(mq_name: str) -> None:
    mq = MessageQueue(mq_name, O_CREX, max_messages=4)
    mq.close()
    actions: list[Callable[[], object]] = [
        lambda: mq.send(b"x"),
        lambda: mq.receive(0),
        lambda: mq.receive_into(bytearray(QUEUE_MESSAGE_SIZE_MAX_DEFAULT)),
        lambda: mq.current_messages,
        lambda: mq.block,
        lambda: setattr(mq, "block", False),
        lambda: mq.request_notification(None),
        mq.close,
    ]
    for action in actions:
        with pytest.raises(namedipc.ExistentialError, match=f"message queue '{mq_name}' has been closed"):
            action()
    # As posix_ipc: what was settled at open stays readable, the descriptor reads -1.
    assert (mq.name, mq.mode, mq.max_messages, mq.mqd, mq.fileno()) == (mq_name, 0o600, 4, -1, -1)
    mq.unlink()


@pytest.mark.parametrize("timeout", [None, WAIT], ids=["forever", "timeout"])
def test_close_while_another_thread_waits(mq_name: str, timeout: float | None) -> None:
    mq = MessageQueue(mq_name, O_CREX)
    other = MessageQueue(mq_name)
    waiter = Background(lambda: mq.receive(timeout))
    try:
        wait_until_waiting(os.getpid(), mq.mqd)
        mq.close()
        # Without a timeout too, the waiter notices the close by itself.
        outcome = waiter.join(WAIT)
        assert isinstance(outcome, namedipc.ExistentialError), outcome
        assert "closed by another thread while this one waited" in str(outcome)
    finally:
        if waiter.is_alive():
            other.send(b"let a waiter that missed the close go")
        other.close()


@pytest.mark.parametrize("timeout", [None, WAIT], ids=["forever", "timeout"])
def test_a_receive_waiting_through_a_close_takes_no_message(mq_name: str, timeout: float | None) -> None:
    # As for semaphores: after close() the waiter must not take the message
    # that arrives, but leave it in the queue and raise.
    mq = MessageQueue(mq_name, O_CREX)
    other = MessageQueue(mq_name)
    try:
        waiter = Background(lambda: mq.receive(timeout))
        wait_until_waiting(os.getpid(), mq.mqd)
        mq.close()
        other.send(b"stays", priority=4)
        outcome = waiter.join(WAIT)
        assert isinstance(outcome, namedipc.ExistentialError), outcome
        assert "closed by another thread while this one waited" in str(outcome)
        assert drain(other) == [(b"stays", 4)]
    finally:
        other.close()


@pytest.mark.parametrize("timeout", [None, WAIT], ids=["forever", "timeout"])
def test_a_send_waiting_through_a_close_sends_nothing(mq_name: str, timeout: float | None) -> None:
    mq = MessageQueue(mq_name, O_CREX, max_messages=1)
    other = MessageQueue(mq_name)
    try:
        mq.send(b"first")
        waiter = Background(lambda: mq.send(b"second", timeout))
        wait_until_waiting(os.getpid(), mq.mqd)
        mq.close()
        assert other.receive(0) == (b"first", 0)  # room for a send that must not come
        outcome = waiter.join(WAIT)
        assert isinstance(outcome, namedipc.ExistentialError), outcome
        assert "closed by another thread while this one waited" in str(outcome)
        assert drain(other) == []
    finally:
        other.close()


# ---------------------------------------------------------------- receiving


def test_received_messages_hold_only_their_own_bytes(mq_name: str) -> None:
    # posix_ipc 1.3.2 keeps a max_message_size buffer (8 KiB) per message.
    mq = MessageQueue(mq_name, O_CREX)
    kept: list[bytes] = []
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(200):
            mq.send(b"a")
            kept.append(mq.receive()[0])
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert sys.getsizeof(kept[0]) == sys.getsizeof(b"a")
    assert grown < 200 * 200, f"{grown / 200:.0f} bytes traced per 1-byte message"


def test_receive_into(mq_name: str) -> None:
    mq = MessageQueue(mq_name, O_CREX, max_messages=4, max_message_size=64)
    buffer = bytearray(64)
    mq.send(b"\0first\0", priority=2)
    assert mq.receive_into(buffer) == (7, 2)
    assert bytes(buffer[:7]) == b"\0first\0"
    bigger = bytearray(100)
    mq.send(b"into a view")
    assert mq.receive_into(memoryview(bigger)[10:], 1) == (11, 0)
    assert bytes(bigger[10:21]) == b"into a view" and bigger[:10] == bytearray(10)
    words = array.array("I", [0] * 16)  # 64 bytes, not of format "B"
    mq.send(array.array("I", [7, 9]).tobytes())
    assert mq.receive_into(words) == (8, 0)
    assert list(words[:2]) == [7, 9]
    buffer.extend(b"!")  # the buffer was released: it can grow again

    mq.send(b"stays queued")
    with pytest.raises(ValueError, match=r"buffer of 63 bytes is too small .* at least max_message_size \(64\) bytes"):
        mq.receive_into(bytearray(63))
    with pytest.raises(TypeError, match="read-only"):
        mq.receive_into(b"x" * 64)
    with pytest.raises(TypeError, match=r"writable bytes-like object .* not int"):
        mq.receive_into(64)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="contiguous"):
        mq.receive_into(memoryview(bytearray(200))[::2])
    assert mq.receive(0) == (b"stays queued", 0), "a refused buffer must not cost a message"
    with pytest.raises(namedipc.BusyError, match="empty"):
        mq.receive_into(buffer, 0)


# ---------------------------------------------------------------- notification


def test_notification_by_signal_in_another_process(mq_name: str, peer: type[MqPeer]) -> None:
    mq = MessageQueue(mq_name, O_CREX)
    listener = peer("notify-signal", mq_name)
    listener.expect("registered")
    mq.send(b"ring", priority=3)
    assert listener.expect("signal").split() == ["signal", str(USER_SIGNAL_MIN), "3", b"ring".hex()]
    listener.finish()


def test_notification_by_callback_after_the_queue_object_is_deleted(mq_name: str, peer: type[MqPeer]) -> None:
    # posix_ipc reads freed memory here: the callback fires after the queue
    # object that asked for it has been deleted.
    mq = MessageQueue(mq_name, O_CREX)
    listener = peer("notify-callback", mq_name)
    listener.expect("registered")
    mq.send(b"knock", priority=2)
    assert listener.expect("called").split() == ["called", "param-kept-alive", "False", "2", b"knock".hex()]
    listener.finish()


@pytest.mark.parametrize(
    ("hook", "expected"),
    [
        ("custom", "reported RuntimeError:boom-7"),
        ("default", "reported RuntimeError:boom-7"),
        # A failing threading.excepthook: both errors reach sys.unraisablehook.
        ("broken", "reported RuntimeError:boom-7 ValueError:the hook itself fails"),
    ],
)
def test_an_exception_in_a_callback_is_reported(mq_name: str, peer: type[MqPeer], hook: str, expected: str) -> None:
    mq = MessageQueue(mq_name, O_CREX)
    listener = peer("notify-raise", mq_name, hook)
    listener.expect("registered")
    mq.send(b"x")
    assert listener.expect("reported") == expected
    _, err = listener.communicate()
    assert listener.proc.returncode == 0, err
    if hook == "default":
        assert "Exception in thread" in err and "RuntimeError: boom-7" in err, err


def test_callback_references_live_until_fired_cancelled_replaced_or_closed(mq_name: str) -> None:
    mq = MessageQueue(mq_name, O_CREX)

    class Param:
        pass

    def armed(callback: Callable[[object], None]) -> threading.Event:
        """Asks for notification with a fresh param; the event is set when
        the param is released."""
        param = Param()
        released = threading.Event()
        weakref.finalize(param, released.set)
        mq.request_notification((callback, param))
        del param
        gc.collect()
        assert not released.is_set(), "a pending notification must keep its param"
        return released

    calls: list[object] = []
    called = threading.Event()

    def callback(param: object) -> None:
        calls.append(param)
        called.set()

    released = armed(callback)
    mq.request_notification(None)
    assert released.is_set(), "cancelling releases at once"

    released = armed(callback)
    replacement = armed(callback)
    assert released.is_set(), "replacing releases the first"
    MessageQueue(mq_name).send(b"fire")
    assert called.wait(WAIT) and len(calls) == 1
    calls.clear()
    assert replacement.wait(WAIT), "a fired notification releases its param"
    mq.receive(0)

    released = armed(callback)
    mq.close()
    assert released.is_set(), "close() releases"
    assert calls == []


def test_a_callback_whose_message_arrived_runs_although_its_handle_is_closed_at_once(mq_name: str) -> None:
    # Each cycle asks for a callback through a new handle, fires it, and
    # closes the handle while the callback is on its way. The close must
    # close the descriptor then, not later in the callback's thread, where
    # closing it would end (and drop the callback of) the next cycle's
    # request, even one whose message had already arrived.
    cycles = 3000
    MessageQueue(mq_name, O_CREX).close()
    lock = threading.Lock()
    ran: set[int] = set()
    all_ran = threading.Event()

    def callback(cycle: object) -> None:
        with lock:
            ran.add(cycle)  # type: ignore[arg-type]
            if len(ran) == cycles:
                all_ran.set()

    for cycle in range(cycles):
        mq = MessageQueue(mq_name)
        try:
            mq.request_notification((callback, cycle))
            mq.send(b"x")
            assert mq.receive(0) == (b"x", 0)
        finally:
            mq.close()
    all_ran.wait(WAIT)
    with lock:
        missing = sorted(set(range(cycles)) - ran)
    assert not missing, f"{len(missing)} of {cycles} callbacks never ran, e.g. cycles {missing[:10]}"


def test_a_second_process_cannot_ask_while_one_is_registered(mq_name: str) -> None:
    mq = MessageQueue(mq_name, O_CREX)
    mq.request_notification((print, None))
    [line] = run_peer("try-notify", mq_name)
    assert line.startswith(f"busy message queue '{mq_name}' already notifies another process"), line
    mq.request_notification(None)
    assert run_peer("try-notify", mq_name) == ["registered"]


@pytest.mark.parametrize("bad", [0, -1, USER_SIGNAL_MAX + 1, "x", (print,), (print, 1, 2), [print, 1], (1, 2), 1.5])
def test_bad_notifications(mq_name: str, bad: object) -> None:
    mq = MessageQueue(mq_name, O_CREX)
    with pytest.raises(ValueError, match="notification"):
        mq.request_notification(bad)  # type: ignore[arg-type]


# ---------------------------------------------------------------- signals


def start_waiter(action: str, name: str, timeout: str, peer: type[MqPeer]) -> tuple[MqPeer, int]:
    waiter = peer(f"wait-{action}", name, timeout)
    fd = int(waiter.expect("ready").split()[1])
    wait_until_waiting(waiter.proc.pid, fd)
    return waiter, fd


@pytest.mark.parametrize("timeout", ["none", "30"])
def test_sigint_raises_keyboard_interrupt_within_50_ms(mq_name: str, peer: type[MqPeer], timeout: str) -> None:
    MessageQueue(mq_name, O_CREX)
    waiter, _ = start_waiter("receive", mq_name, timeout, peer)
    sent = time.monotonic()
    os.kill(waiter.proc.pid, signal.SIGINT)
    words = waiter.expect("KeyboardInterrupt").split()
    latency = float(words[2]) - sent
    assert 0 <= latency < 0.05, f"KeyboardInterrupt took {latency * 1000:.1f} ms"


@pytest.mark.parametrize("timeout", ["none", "30"])
@pytest.mark.parametrize("action", ["receive", "send"])
def test_a_handled_signal_raises_signal_error(mq_name: str, peer: type[MqPeer], action: str, timeout: str) -> None:
    mq = MessageQueue(mq_name, O_CREX, max_messages=1)
    if action == "send":
        mq.send(b"fill")
    waiter, _ = start_waiter(action, mq_name, timeout, peer)
    os.kill(waiter.proc.pid, signal.SIGUSR1)
    # posix_ipc's behaviour: the Python handler runs, then SignalError.
    assert waiter.expect("SignalError") == "SignalError handled=1"
    waiter.finish()


# ---------------------------------------------------------------- Python objects


class Tagged(MessageQueue):
    """A subclass with its own __init__ signature, as posix_ipc users write."""

    def __init__(self, label: str) -> None:
        super().__init__(None, O_CREX, max_messages=2)
        self.label = label


def test_subclass_and_pickling(mq_names: Names, monkeypatch: pytest.MonkeyPatch) -> None:
    # Pickle finds the class as namedipc.MessageQueue, which the package
    # does not re-export yet.
    monkeypatch.setattr(namedipc, "MessageQueue", MessageQueue, raising=False)
    mq = Tagged("jobs")
    mq_names.track(mq.name)
    assert repr(mq).startswith(f"{__name__}.Tagged(")
    copy = pickle.loads(pickle.dumps(mq))
    assert type(copy) is Tagged and copy.label == "jobs" and copy.name == mq.name
    copy.send(b"through the copy")
    assert mq.receive(0) == (b"through the copy", 0)
    reader = pickle.loads(pickle.dumps(MessageQueue(mq.name, write=False)))
    with pytest.raises(namedipc.PermissionsError):
        reader.send(b"x")

    class Lazy(MessageQueue):
        def __init__(self) -> None:
            pass

    with pytest.raises(TypeError, match="never initialised"):
        Lazy().receive(0)
    with pytest.raises(TypeError, match="already initialised"):
        MessageQueue.__init__(mq, None, O_CREX)  # would create a queue, were it not refused first
    with pytest.raises(TypeError, match="already initialised"):
        mq.__init__("again")  # type: ignore[misc]


def test_racing_inits_open_one_queue_and_create_nothing_else(mq_names: Names) -> None:
    # Eight threads call __init__ on one new object at once, each with its
    # own O_CREX name: one opens, the others are refused before they create.
    names = [mq_names(f"race{i}") for i in range(8)]
    mq = MessageQueue.__new__(MessageQueue)
    outcomes = race([partial(MessageQueue.__init__, mq, name, O_CREX, max_messages=2) for name in names])
    assert_one_returned(outcomes, TypeError, "already initialised")

    def exists(name: str) -> bool:
        try:
            MessageQueue(name).close()
        except namedipc.ExistentialError:
            return False
        return True

    assert [name for name in names if exists(name)] == [mq.name]
    assert mq.max_messages == 2 and mq.created
    mq.close()


# ---------------------------------------------------------------- C


@pytest.fixture(scope="session")
def c_peer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The compiled C peer (mq_open and friends)."""
    return compile_c(HELPERS / "mq_c_peer.c", tmp_path_factory.mktemp("c_peer"))


def test_c_program_and_python_share_a_queue(c_peer: Path, mq_name: str) -> None:
    assert program_ok(c_peer, "create", mq_name, "3", "20") == "created"
    mq = MessageQueue(mq_name)
    assert (mq.max_messages, mq.max_message_size) == (3, 20)
    assert program_ok(c_peer, "send", mq_name, "9", b"c\0nul".hex()) == "sent"
    assert program_ok(c_peer, "send", mq_name, "1", "") == "sent"
    assert drain(mq) == [(b"c\0nul", 9), (b"", 1)]

    mq.send(b"from python\0", priority=4)
    mq.send(b"second", priority=8)
    assert program_ok(c_peer, "attr", mq_name) == "3 20 2"
    assert program_ok(c_peer, "receive", mq_name, "1") == f"8 {b'second'.hex()}"
    assert program_ok(c_peer, "receive", mq_name, "1") == f"4 {b'from python'.hex()}00"
    assert program_ok(c_peer, "receive", mq_name, "0.1") == "timeout"

    # A C receiver blocked on the queue is woken by a Python send.
    receiver = subprocess.Popen([str(c_peer), "receive", mq_name, str(WAIT)], stdout=subprocess.PIPE, text=True)
    try:
        # The C program has opened the queue as its first descriptor after stdio.
        wait_until_waiting(receiver.pid, 3)
        mq.send(b"wake c", priority=5)
        out, _ = receiver.communicate(timeout=WAIT)
    finally:
        if receiver.poll() is None:
            receiver.kill()
            receiver.communicate(timeout=WAIT)
    assert out.strip() == f"5 {b'wake c'.hex()}"


@pytest.mark.parametrize("spelling", ["//{}", "{}"])
def test_the_name_shown_is_the_one_a_c_peer_opens(c_peer: Path, mq_name: str, spelling: str) -> None:
    """`MessageQueue("//x")` and `MessageQueue("x")` open the queue "/x", and
    show that name, which C's mq_open takes ("//x" it refuses) (issue 13, item 4)."""
    mq = MessageQueue(spelling.format(mq_name.lstrip("/")), O_CREX)
    try:
        assert mq.name == mq_name
        assert program_ok(c_peer, "send", mq.name, "3", b"hi".hex()) == "sent"
        assert mq.receive(timeout=0) == (b"hi", 3)
    finally:
        mq.unlink()
        mq.close()


def test_mqd_of_a_collected_temporary_stays_open(mq_name: str) -> None:
    """posix_ipc never closes a queue's descriptor when the object is collected (issue 13, item 1)."""
    MessageQueue(mq_name, O_CREX).close()
    mqd = MessageQueue(mq_name).mqd  # the handle is collected at once
    try:
        gc.collect()
        assert os.readlink(f"/proc/self/fd/{mqd}") == mq_name
    finally:
        os.close(mqd)


def test_collecting_a_queue_never_closes_a_number_the_user_closed(mq_name: str) -> None:
    mq = MessageQueue(mq_name, O_CREX)
    mqd = mq.mqd
    os.close(mqd)
    read_end, write_end = os.pipe()
    try:
        os.dup2(read_end, mqd)  # the number is now the pipe's
        del mq
        gc.collect()
        os.write(write_end, b"x")
        assert os.read(mqd, 1) == b"x"
    finally:
        for number in {mqd, read_end, write_end}:
            os.close(number)


def test_a_queue_whose_mqd_was_never_read_closes_it_when_collected(mq_name: str) -> None:
    before = set(os.listdir("/proc/self/fd"))
    mq = MessageQueue(mq_name, O_CREX)
    assert len(set(os.listdir("/proc/self/fd")) - before) == 1
    del mq
    gc.collect()
    assert set(os.listdir("/proc/self/fd")) - before == set()
