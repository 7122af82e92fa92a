"""RobustSemaphore: threading.BoundedSemaphore's manners per process (in the
style of CPython's Lib/test/lock_tests.py), holders(), and slots that come
back when their holder dies however it dies — SIGKILL, a zombie not yet
reaped, exec — while a forked child never keeps its parent's slots."""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
import pickle
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import namedipc
from namedipc import Holder, RobustSemaphore
from support.aio import aio_threads, run_async, settle
from support.names import Names
from support.processes import HELPERS, Background, Peer, read_line, tracking
from support.waiting import WAIT, poll_until, process_gone, process_state, robust_waiters, wait_until_blocked

Flags = namedipc.NamedSemaphore.Flags


def robust_path(name: str) -> Path:
    return Path("/dev/shm") / f"namedipc-robust.{name.lstrip('/')}"


class Ctl(Peer):
    """tests/helpers/robustctl.py in its own process."""

    def __init__(self, *args: str) -> None:
        super().__init__(sys.executable, HELPERS / "robustctl.py", *args)

    def pid_from(self, wanted: str) -> int:
        return int(self.expect(wanted).split()[-1])


@pytest.fixture
def ctl() -> Iterator[type[Ctl]]:
    yield from tracking(Ctl)


def opened(name: str) -> RobustSemaphore:
    return RobustSemaphore(name, handle_existence=Flags.RAISE_IF_NOT_EXISTS)


# --- the handle ------------------------------------------------------------


def test_a_new_semaphore_has_all_its_slots(robust_name: str) -> None:
    sem = RobustSemaphore(robust_name, 3)
    assert (sem.name, sem.slots, sem.value, sem.created, sem.closed) == (robust_name, 3, 3, True, False)
    assert RobustSemaphore.Flags is Flags
    other = RobustSemaphore(robust_name, 9)
    assert (other.created, other.slots) == (False, 3), "an existing semaphore keeps its slots"
    assert repr(sem).startswith(f"<namedipc.RobustSemaphore '{robust_name}' at 0x")
    assert repr(sem).endswith(": value=3/3>")


def test_acquire_and_release_count_slots(robust_name: str) -> None:
    sem = RobustSemaphore(robust_name, 2)
    assert sem.acquire() is True
    assert sem.acquire(timeout=1) is True
    assert sem.value == 0
    assert sem.acquire(blocking=False) is False
    assert sem.acquire(timeout=0) is False
    assert sem.acquire(timeout=-1) is False, "a negative timeout does not wait (threading)"
    sem.release()
    sem.release()
    assert sem.value == 2


def test_releasing_more_than_the_process_holds_is_a_value_error(robust_name: str) -> None:
    sem = RobustSemaphore(robust_name, 2)
    with pytest.raises(ValueError, match="holds no slot"):
        sem.release()
    sem.acquire()
    sem.release()
    with pytest.raises(ValueError):
        sem.release()
    assert sem.value == 2


def test_timeout_with_blocking_false_is_a_value_error(robust_name: str) -> None:
    sem = RobustSemaphore(robust_name)
    with pytest.raises(ValueError, match="non-blocking"):
        sem.acquire(False, 1)
    assert sem.value == 1


def test_timeouts_are_never_shorter_than_asked(robust_name: str) -> None:
    sem = RobustSemaphore(robust_name)
    sem.acquire()
    for timeout in (0.01, 0.05, 0.1):
        start = time.monotonic()
        assert sem.acquire(timeout=timeout) is False
        took = time.monotonic() - start
        assert timeout <= took < timeout + 1, (timeout, took)


def test_with_acquires_and_releases_also_on_error(robust_name: str) -> None:
    sem = RobustSemaphore(robust_name)
    with sem as entered:
        assert entered is sem
        assert sem.value == 0
    assert sem.value == 1
    with pytest.raises(KeyError), sem:
        raise KeyError
    assert sem.value == 1


def test_a_waiting_thread_is_woken_by_a_release_from_another(robust_name: str) -> None:
    sem = RobustSemaphore(robust_name)
    sem.acquire()
    waiter = Background(lambda: sem.acquire(timeout=WAIT))
    wait_until_blocked(robust_name, waiters=robust_waiters)
    sem.release()
    assert waiter.join() is True
    sem.release()


def test_threads_never_hold_more_than_the_slots(robust_name: str) -> None:
    slots, threads, rounds = 3, 8, 200
    sem = RobustSemaphore(robust_name, slots)
    inside = 0
    most = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal inside, most
        for _ in range(rounds):
            assert sem.acquire(timeout=WAIT)
            with lock:
                inside += 1
                most = max(most, inside)
            with lock:
                inside -= 1
            sem.release()

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(WAIT)
    assert 1 <= most <= slots
    assert sem.value == slots


def test_any_thread_or_handle_of_the_process_may_release_its_slots(robust_name: str) -> None:
    sem = RobustSemaphore(robust_name, 2)
    other = opened(robust_name)
    taker = threading.Thread(target=sem.acquire)
    taker.start()
    taker.join(WAIT)
    assert sem.value == 1
    other.release()  # another handle, another thread: the same process
    assert sem.value == 2


def test_existence_flags(robust_name: str) -> None:
    with pytest.raises(namedipc.NotFoundError):
        opened(robust_name)
    with pytest.raises(FileNotFoundError):
        opened(robust_name)
    first = RobustSemaphore(robust_name, 2, Flags.RAISE_IF_EXISTS)
    with pytest.raises(namedipc.ExistsError):
        RobustSemaphore(robust_name, 2, Flags.RAISE_IF_EXISTS)
    with pytest.raises(FileExistsError):
        RobustSemaphore(robust_name, 2, Flags.RAISE_IF_EXISTS)
    assert opened(robust_name).created is False
    fresh = RobustSemaphore(robust_name, 4, Flags.UNLINK_AND_CREATE)
    assert (fresh.created, fresh.slots) == (True, 4)
    with pytest.raises(namedipc.NotFoundError):
        first.acquire(blocking=False)


def test_bad_arguments_are_clear_errors(robust_name: str) -> None:
    for bad_name in (b"/a\0b", "/a\0b", "", "/a/b"):
        with pytest.raises(ValueError):
            RobustSemaphore(bad_name)
    with pytest.raises(TypeError):
        RobustSemaphore(42)  # type: ignore[arg-type]
    for value in (0, -1, 65537, 2**70):
        with pytest.raises(ValueError, match="value must be between 1 and 65536"):
            RobustSemaphore(robust_name, value)
    for value_type in ("2", 2.0):
        with pytest.raises(TypeError, match="value must be an int"):
            RobustSemaphore(robust_name, value_type)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="records"):
        RobustSemaphore(robust_name, records=0)
    with pytest.raises(TypeError, match="persistent"):
        RobustSemaphore(robust_name, persistent="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        RobustSemaphore(robust_name, handle_existence=7)
    assert not robust_path(robust_name).exists(), "nothing was created by a refused call"
    sem = RobustSemaphore(robust_name)
    for timeout in (math.nan, math.inf):
        with pytest.raises(ValueError, match="timeout"):
            sem.acquire(timeout=timeout)
    with pytest.raises(TypeError, match="timeout"):
        sem.acquire(timeout="1")  # type: ignore[arg-type]
    assert sem.value == 1


def test_a_closed_handle_raises_and_closing_twice_is_harmless(robust_name: str) -> None:
    sem = RobustSemaphore(robust_name)
    sem.close()
    sem.close()
    assert sem.closed
    for call in (sem.acquire, sem.release, sem.holders, lambda: sem.value):
        with pytest.raises(namedipc.ExistentialError, match="closed"):
            call()
    assert repr(sem).endswith(": closed>")


def test_closing_while_another_thread_waits_ends_the_wait(robust_name: str) -> None:
    sem = RobustSemaphore(robust_name, persistent=True)
    sem.acquire()
    keep = opened(robust_name)  # the process stays attached, so the slot stays held
    waiter = Background(lambda: sem.acquire(timeout=WAIT))
    wait_until_blocked(robust_name, waiters=robust_waiters)
    sem.close()
    outcome = waiter.join()
    assert isinstance(outcome, namedipc.ExistentialError), outcome
    assert keep.value == 0
    keep.release()
    assert keep.value == 1


def test_subclass_and_init_rules(robust_name: str) -> None:
    class Gpu(RobustSemaphore):
        def __init__(self, which: int) -> None:
            super().__init__(f"{robust_name}-{which}", 2)

    gpu = Gpu(1)
    try:
        assert gpu.slots == 2
        assert repr(gpu).startswith("<test_robust.")
        with pytest.raises(TypeError, match="already initialised"):
            RobustSemaphore.__init__(gpu, robust_name)
    finally:
        gpu.close()

    class Lazy(RobustSemaphore):
        def __init__(self) -> None:
            pass

    with pytest.raises(TypeError, match="never initialised"):
        Lazy().acquire()


@pytest.mark.parametrize(
    "content",
    [b"", b"#!/bin/sh\n" * 30, b"\0" * 4096, b"NIPCRSM1" + b"\xff" * 200],
    ids=["empty", "foreign", "zeros", "bad-header"],
)
def test_a_corrupt_file_at_the_name_is_a_corrupt_error(robust_name: str, content: bytes) -> None:
    robust_path(robust_name).write_bytes(content)
    # The owner's only, as namedipc makes them: a mode that lets others read
    # it is refused before its content is looked at (test_robust_security.py).
    robust_path(robust_name).chmod(0o600)
    with pytest.raises(namedipc.CorruptError, match="remove it"):
        RobustSemaphore(robust_name)


def test_a_symlink_or_directory_at_the_name_is_refused(robust_name: str) -> None:
    path = robust_path(robust_name)
    path.symlink_to("/dev/null")
    with pytest.raises(namedipc.CorruptError):
        RobustSemaphore(robust_name)
    path.unlink()
    path.mkdir()
    with pytest.raises(namedipc.CorruptError):
        RobustSemaphore(robust_name)


def set_removed_flag(path: Path) -> None:
    """Sets the header's `removed` flag (2 in the flags word at byte 40)."""
    data = bytearray(path.read_bytes())
    flags = int.from_bytes(data[40:44], sys.byteorder) | 2
    data[40:44] = flags.to_bytes(4, sys.byteorder)
    path.write_bytes(bytes(data))


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "namedipc", *args], capture_output=True, text=True, timeout=WAIT, check=False
    )


def test_a_file_marked_removed_at_the_name_is_a_corrupt_error_and_ls_says_so(robust_name: str) -> None:
    RobustSemaphore(robust_name, persistent=True).close()
    path = robust_path(robust_name)
    set_removed_flag(path)
    for call in (RobustSemaphore, opened):
        started = time.monotonic()
        with pytest.raises(namedipc.CorruptError, match=r"marked removed.*namedipc rm"):
            call(robust_name)
        assert time.monotonic() - started < 1, "retried"
    listed = [line for line in cli("ls", "--type", "robust").stdout.splitlines() if robust_name in line]
    assert listed, "ls lists it"
    assert all("marked removed" in line for line in listed), listed
    info = cli("info", robust_name)
    assert "marked removed" in info.stdout, info
    removed = cli("rm", robust_name)
    assert removed.returncode == 0, removed
    assert not path.exists()
    assert RobustSemaphore(robust_name).created


def test_a_socket_or_fifo_at_the_name_is_a_corrupt_error_saying_what_it_is(robust_name: str) -> None:
    path = robust_path(robust_name)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        for call in (RobustSemaphore, opened):
            with pytest.raises(namedipc.CorruptError, match="socket"):
                call(robust_name)
    path.unlink()
    os.mkfifo(path)
    with pytest.raises(namedipc.CorruptError, match="FIFO"):
        RobustSemaphore(robust_name)


# --- holders and other processes -------------------------------------------


def test_holders_lists_every_holder_with_pid_uid_since_and_liveness(robust_name: str, ctl: type[Ctl]) -> None:
    sem = RobustSemaphore(robust_name, 3)
    assert sem.holders() == []
    before = time.time()
    sem.acquire()
    peer = ctl("hold", robust_name)
    pid = peer.pid_from("held")
    holders = sorted(sem.holders(), key=lambda h: h.pid != os.getpid())
    assert [h.pid for h in holders] == [os.getpid(), pid]
    for h in holders:
        assert isinstance(h, Holder)
        assert h.uid == os.getuid() and h.alive
        assert before - 1 <= h.since <= time.time() + 1
    assert holders[0]._asdict()["pid"] == os.getpid()
    peer.ask("release", "released")
    assert [h.pid for h in sem.holders()] == [os.getpid()]
    peer.finish()


def test_a_process_cannot_release_another_process_slot(robust_name: str, ctl: type[Ctl]) -> None:
    sem = RobustSemaphore(robust_name)
    peer = ctl("hold", robust_name)
    peer.expect("held")
    with pytest.raises(ValueError, match="holds no slot"):
        sem.release()
    assert sem.value == 0


def wait_for_slot(sem: RobustSemaphore) -> float:
    """Acquires within WAIT seconds; returns when (monotonic)."""
    assert sem.acquire(timeout=WAIT), "the dead holder's slot never came back"
    return time.monotonic()


def test_a_sigkilled_holder_slot_goes_to_a_waiter_within_milliseconds(robust_name: str, ctl: type[Ctl]) -> None:
    sem = RobustSemaphore(robust_name)
    latencies = []
    for _ in range(5):
        peer = ctl("hold", robust_name)
        pid = peer.pid_from("held")
        assert sem.acquire(blocking=False) is False
        got = Background(lambda: wait_for_slot(sem))
        wait_until_blocked(robust_name, waiters=robust_waiters)
        killed = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        acquired = got.join()
        assert isinstance(acquired, float), acquired
        latencies.append(acquired - killed)
        peer.kill()
        sem.release()
    assert statistics.median(latencies) < 0.1, latencies


def test_a_zombie_holder_counts_as_dead(robust_name: str) -> None:
    sem = RobustSemaphore(robust_name)
    child = subprocess.Popen(
        [sys.executable, str(HELPERS / "robustctl.py"), "hold-exit", robust_name], stdout=subprocess.PIPE, text=True
    )
    try:
        assert read_line(child).startswith("held")
        # Not reaped: wait until the kernel has made it a zombie.
        poll_until(lambda: process_state(child.pid) == "Z", what="the child a zombie")
        assert [h.alive for h in sem.holders()] == [False]
        assert sem.acquire(timeout=WAIT) is True
        assert process_state(child.pid) == "Z", "still a zombie"
    finally:
        child.wait(WAIT)
        assert child.stdout is not None
        child.stdout.close()


def test_a_forked_child_does_not_inherit_or_keep_its_parents_slots(robust_name: str, ctl: type[Ctl]) -> None:
    sem = RobustSemaphore(robust_name)
    peer = ctl("hold-fork", robust_name)
    _, parent, child, code = peer.expect("forked").split()
    assert code == "0", "in the child: release() did not raise, or a slot looked free"
    assert [h.pid for h in sem.holders()] == [int(parent)]
    # The parent dies; its child lives on with copies of its descriptors
    # and mappings, yet the parent's slot comes back.
    os.kill(int(parent), signal.SIGKILL)
    assert sem.acquire(timeout=WAIT) is True
    os.kill(int(child), 0)  # still alive
    peer.kill()  # closes the pipes: the child ends
    poll_until(lambda: process_gone(int(child)), what=f"the forked child {child} ended")


# The parent closes its handle right after the fork, before the child may
# even have run, and exits (a daemonising parent): the child's inherited
# handle keeps the semaphore, which its close then removes.
FORK_PARENT_CLOSES_AND_EXITS = """
import os, sys
import namedipc
name, path, wait = sys.argv[1], sys.argv[2], float(sys.argv[3])
sem = namedipc.RobustSemaphore(name, 1)
gone_r, gone_w = os.pipe()
pid = os.fork()
if pid == 0:
    code = 1
    try:
        os.close(gone_w)
        os.read(gone_r, 1)  # end of file: the parent has exited
        report = [os.path.exists(path), sem.acquire(timeout=wait)]
        report.append([h.pid for h in sem.holders()] == [os.getpid()])
        sem.release()
        report.append(os.path.exists(path))
        sem.close()
        report.append(os.path.exists(path))
        print("child", *report, flush=True)
        code = 0
    except BaseException as e:
        print(f"child: {type(e).__name__}: {e}", flush=True)
    finally:
        os._exit(code)
sem.close()
print(f"parent closed {os.path.exists(path)}", flush=True)
os._exit(0)
"""


def test_a_forked_child_keeps_the_semaphore_its_parent_closed(robust_name: str) -> None:
    # stdout reaches its end once the child has exited too.
    done = subprocess.run(
        [sys.executable, "-c", FORK_PARENT_CLOSES_AND_EXITS, robust_name, str(robust_path(robust_name)), str(WAIT)],
        capture_output=True,
        text=True,
        timeout=WAIT * 2,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["parent closed True", "child True True True True False"], done.stdout
    assert not robust_path(robust_name).exists()


# A child's own handle shares the attachment of the handle it inherited:
# closing it gives back no slot while the inherited one is open.
FORK_CHILD_OPENS_A_SECOND_HANDLE = """
import os, sys
import namedipc
name, wait = sys.argv[1], float(sys.argv[2])
sem = namedipc.RobustSemaphore(name, 1)
up_r, up_w = os.pipe()
down_r, down_w = os.pipe()
pid = os.fork()
if pid == 0:
    code = 1
    try:
        os.close(up_r)
        os.close(down_w)
        second = namedipc.RobustSemaphore(name, handle_existence=namedipc.RobustSemaphore.Flags.RAISE_IF_NOT_EXISTS)
        took = second.acquire(timeout=wait)
        second.close()
        os.write(up_w, f"{took} {[h.pid for h in sem.holders()] == [os.getpid()]}\\n".encode())
        os.read(down_r, 1)  # the parent tried to take the slot
        sem.release()  # through the inherited handle
        os.write(up_w, b"released\\n")
        os.read(down_r, 1)
        code = 0
    except BaseException as e:
        os.write(up_w, f"child: {type(e).__name__}: {e}\\n".encode())
    finally:
        os._exit(code)
os.close(up_w)
os.close(down_r)


def tell_child():
    try:
        os.write(down_w, b"x")
    except BrokenPipeError:  # the child failed and ended: its report says why
        pass


from_child = os.fdopen(up_r)
took = from_child.readline().strip()
stolen = sem.acquire(blocking=False)
print(f"child took {took}; parent took {stolen}", flush=True)
if stolen:
    sem.release()
tell_child()
released = from_child.readline().strip()
print(f"child {released}; parent took {sem.acquire(timeout=wait)}", flush=True)
sem.release()
tell_child()
os.close(down_w)
_, status = os.waitpid(pid, 0)
print(f"child exit {os.waitstatus_to_exitcode(status)}", flush=True)
"""


def test_a_forked_childs_own_handle_shares_its_inherited_attachment(robust_name: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", FORK_CHILD_OPENS_A_SECOND_HANDLE, robust_name, str(WAIT)],
        capture_output=True,
        text=True,
        timeout=WAIT * 2,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "child took True True; parent took False",
        "child released; parent took True",
        "child exit 0",
    ], done.stdout


# With no record left for the child at the fork, the fork still works and
# so does the parent; the child's inherited handle says why it cannot.
FORK_WITH_NO_RECORD_LEFT = """
import os, sys
import namedipc
name = sys.argv[1]
sem = namedipc.RobustSemaphore(name, 1, records=1)
pid = os.fork()
if pid == 0:
    code = 1
    try:
        sem.acquire(blocking=False)
        print("child acquired", flush=True)
    except namedipc.BusyError as e:
        print(f"child BusyError {'record' in str(e)}", flush=True)
        code = 0
    except BaseException as e:
        print(f"child: {type(e).__name__}: {e}", flush=True)
    finally:
        os._exit(code)
_, status = os.waitpid(pid, 0)
print(f"child exit {os.waitstatus_to_exitcode(status)}; parent took {sem.acquire(blocking=False)}", flush=True)
sem.release()
sem.close()
"""


def test_a_fork_with_no_record_left_for_the_child_leaves_its_inherited_handle_unusable(robust_name: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", FORK_WITH_NO_RECORD_LEFT, robust_name],
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["child BusyError True", "child exit 0; parent took True"], done.stdout
    assert not robust_path(robust_name).exists()


def test_exec_gives_the_slots_back(robust_name: str, ctl: type[Ctl]) -> None:
    sem = RobustSemaphore(robust_name)
    peer = ctl("hold-exec", robust_name)
    pid = peer.pid_from("held")
    assert peer.pid_from("execd") == pid
    assert sem.acquire(timeout=WAIT) is True
    assert peer.proc.poll() is None, "the exec'd process still runs"


def test_a_thread_that_ends_leaves_the_slot_with_its_process(robust_name: str, ctl: type[Ctl]) -> None:
    sem = RobustSemaphore(robust_name)
    peer = ctl("hold-thread", robust_name)
    pid = peer.pid_from("thread gone")
    assert [(h.pid, h.alive) for h in sem.holders()] == [(pid, True)]
    assert sem.acquire(blocking=False) is False
    peer.ask("release it", "released")
    assert sem.acquire(timeout=WAIT) is True
    peer.finish()


def test_sigint_interrupts_a_blocked_acquire_within_50_ms(robust_name: str, ctl: type[Ctl]) -> None:
    sem = RobustSemaphore(robust_name)
    sem.acquire()
    peer = ctl("wait", robust_name)
    peer.expect("waiting")
    wait_until_blocked(robust_name, waiters=robust_waiters)
    sent = time.monotonic()
    peer.proc.send_signal(signal.SIGINT)
    peer.expect("interrupted")
    assert time.monotonic() - sent < 0.2
    peer.finish()


# --- removal ---------------------------------------------------------------


def test_the_last_process_to_detach_removes_it(robust_name: str, ctl: type[Ctl]) -> None:
    sem = RobustSemaphore(robust_name)
    peer = ctl("hold", robust_name)
    peer.expect("held")
    sem.close()
    assert robust_path(robust_name).exists(), "another process is still attached"
    peer.ask("release", "released")
    peer.finish()
    assert not robust_path(robust_name).exists()


def test_a_persistent_semaphore_stays_until_unlinked(robust_name: str) -> None:
    sem = RobustSemaphore(robust_name, 2, persistent=True)
    sem.close()
    again = opened(robust_name)
    assert again.slots == 2
    again.unlink()
    assert not robust_path(robust_name).exists()
    with pytest.raises(namedipc.NotFoundError):
        again.acquire()


def test_a_handle_notices_when_its_semaphore_is_unlinked(robust_name: str) -> None:
    sem = RobustSemaphore(robust_name, persistent=True)
    opened(robust_name).unlink()
    with pytest.raises(namedipc.NotFoundError):
        sem.acquire(blocking=False)


# --- pickling --------------------------------------------------------------


def take_and_give_back(sem: RobustSemaphore) -> tuple[str, bool, int]:
    got = sem.acquire(timeout=30)
    held = sem.value
    sem.release()
    return sem.name, got, held


def test_pickles_by_name_into_a_spawn_child(robust_name: str) -> None:
    sem = RobustSemaphore(robust_name, 2)
    sem.acquire()
    assert pickle.loads(pickle.dumps(sem)).name == robust_name
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        assert pool.apply(take_and_give_back, (sem,)) == (robust_name, True, 0)
    assert sem.value == 1, "the child held none of this process's slots"
    sem.release()


# --- asyncio ---------------------------------------------------------------


def test_async_with_and_acquire_async(robust_name: str) -> None:
    sem = RobustSemaphore(robust_name, 2)

    async def main() -> None:
        async with sem as entered:
            assert entered is sem
            assert [h.pid for h in sem.holders()] == [os.getpid()]
            assert await sem.acquire_async() is True
            assert await sem.acquire_async(timeout=0.05) is False
            sem.release()
        # The timed-out wait's thread may take the slot just released before
        # it sees nobody waits; it hands it back through the loop.
        await settle()
        assert sem.value == 2

    run_async(main())


def test_acquire_async_gets_the_slot_of_a_sigkilled_holder(robust_name: str, ctl: type[Ctl]) -> None:
    sem = RobustSemaphore(robust_name)
    peer = ctl("hold", robust_name)
    pid = peer.pid_from("held")

    async def main() -> bool:
        waiting = asyncio.create_task(sem.acquire_async(timeout=WAIT))
        await asyncio.sleep(0)  # the task queued its wait on the waiter thread
        wait_until_blocked(robust_name, waiters=robust_waiters)
        assert not waiting.done()
        os.kill(pid, signal.SIGKILL)
        return await waiting

    assert run_async(main()) is True
    assert [h.pid for h in sem.holders()] == [os.getpid()]
    sem.release()


def test_a_cancelled_async_wait_never_keeps_a_slot(robust_name: str) -> None:
    sem = RobustSemaphore(robust_name)
    keep = opened(robust_name)
    sem.acquire()
    outcomes = []

    async def one_round(iterations: int) -> None:
        waiting = asyncio.create_task(sem.acquire_async(timeout=WAIT))
        await asyncio.sleep(0)
        keep.release()  # another handle of this process gives the slot back
        for _ in range(iterations):
            await asyncio.sleep(0)
        waiting.cancel()
        try:
            acquired = await waiting
        except asyncio.CancelledError:
            acquired = False
        outcomes.append(acquired)
        # Whatever the outcome, the slot is either the waiter's or free again.
        await settle()
        if not acquired:
            assert sem.acquire(timeout=WAIT), "a cancelled wait kept the slot"

    async def main() -> None:
        for iterations in range(4):
            for _ in range(5):
                await one_round(iterations)

    run_async(main())
    assert len(outcomes) == 20
    sem.release()
    assert sem.value == 1 and sem.holders() == []
    assert aio_threads() == []


# --- the storm -------------------------------------------------------------

STORM = Path(__file__).parent / "robust_storm.py"


def run_storm(*args: str) -> dict[str, object]:
    import json

    done = subprocess.run([sys.executable, str(STORM), *args], capture_output=True, text=True, timeout=60, check=False)
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    result["exit"] = done.returncode
    result["stderr"] = done.stderr
    return result


def test_sigkill_storm_never_over_admits_and_loses_no_slot(robust_names: Names) -> None:
    result = run_storm("--seconds", "5", "--workers", "8", "--slots", "3", "--name", robust_names("storm"))
    assert result["violations"] == 0, result
    assert result["slots_back_at_end"] == result["free_at_end"] == 3, result
    assert result["other_holders_at_end"] == 0, result
    assert result["failed_workers"] == 0, result
    assert isinstance(result["kills"], int) and result["kills"] >= 200, result
    assert isinstance(result["acquisitions"], int) and result["acquisitions"] >= 1000, result
    assert result["exit"] == 0, result


def test_the_storm_oracle_catches_over_admission(robust_names: Names) -> None:
    result = run_storm(
        "--seconds", "1", "--workers", "8", "--slots", "2", "--no-semaphore", "--name", robust_names("oracle")
    )
    assert isinstance(result["violations"], int) and result["violations"] > 0, result
    assert result["exit"] == 1, result
