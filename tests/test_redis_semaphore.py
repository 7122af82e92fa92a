"""namedipc.RedisSemaphore's API against a real redis-server: CPython's
lock_tests.BoundedSemaphoreTests rewritten for it, timeouts, blocking=False,
with, fences and slots, holders(), the URL, pickling, close, and bad input.
(Failures — crashes, pauses, partitions, restarts — are in
test_redis_failures.py; asyncio in test_redis_asyncio.py.)"""

from __future__ import annotations

import math
import os
import pickle
import re
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable

import pytest

import namedipc
from support.processes import Background
from support.redis_server import RedisSemaphores, RedisServer, RedisServers, free_port
from support.tcp_proxy import TO_SERVER, TcpProxy
from support.waiting import WAIT, poll_until

pytest_plugins = ["support.redis_fixtures"]


# -- CPython's lock_tests.BoundedSemaphoreTests, through the API -------------------


def test_constructor_refuses_a_value_below_one(redis_sems: RedisSemaphores) -> None:
    for value in (0, -1, -sys.maxsize):
        with pytest.raises(ValueError, match="value must be between 1 and"):
            redis_sems(value)


def test_acquire(redis_sems: RedisSemaphores) -> None:
    sem = redis_sems(1)
    assert sem.acquire() is True
    sem.release()
    sem = redis_sems(2)
    assert sem.acquire() and sem.acquire()
    sem.release()
    sem.release()
    assert sem.value == 2


def test_acquire_destroy_gives_the_slot_back(redis_sems: RedisSemaphores) -> None:
    name = redis_sems.name()
    sem = namedipc.RedisSemaphore(name, url=redis_sems.server.url(), lease=5)
    assert sem.acquire()
    del sem  # collected: closed, its slot given back (long before the lease ends)
    other = redis_sems(name=name)
    assert other.acquire(timeout=1)


def test_acquire_contended(redis_sems: RedisSemaphores) -> None:
    # lock_tests' phases: 7 slots, one taken here, 10 threads that take two each.
    sem_value = 7
    sem = redis_sems(sem_value)
    assert sem.acquire()
    results: list[int] = []
    phase = [0]
    lock = threading.Lock()

    def func() -> None:
        for _ in range(2):
            assert sem.acquire(timeout=WAIT)
            with lock:
                results.append(phase[0])

    threads = [threading.Thread(target=func, daemon=True) for _ in range(10)]
    for t in threads:
        t.start()
    poll_until(lambda: len(results) >= sem_value - 1, what="phase 0's acquisitions")
    assert results == [0] * (sem_value - 1)
    assert sem.value == 0
    phase[0] = 1
    for _ in range(sem_value):
        sem.release()
    poll_until(lambda: len(results) >= 2 * sem_value - 1, what="phase 1's acquisitions")
    phase[0] = 2
    for _ in range(sem_value - 1):
        sem.release()
    poll_until(lambda: len(results) >= 3 * sem_value - 2, what="phase 2's acquisitions")
    assert sorted(results) == [0] * 6 + [1] * 7 + [2] * 6
    assert not sem.acquire(False), "still all taken"
    sem.release()
    for t in threads:
        t.join(WAIT)
        assert not t.is_alive()
    assert len(results) == 20
    for _ in range(sem_value):
        sem.release()
    assert sem.value == sem_value


def test_try_acquire(redis_sems: RedisSemaphores) -> None:
    sem = redis_sems(2)
    assert sem.acquire(False)
    assert sem.acquire(False)
    assert not sem.acquire(False)
    sem.release()
    assert sem.acquire(False)


def test_try_acquire_contended(redis_sems: RedisSemaphores) -> None:
    sem = redis_sems(4)
    assert sem.acquire()
    results: list[bool] = []

    def f() -> None:
        results.append(sem.acquire(False))
        results.append(sem.acquire(False))

    threads = [threading.Thread(target=f) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    assert sorted(results) == [False] * 7 + [True] * 3


def test_acquire_timeout(redis_sems: RedisSemaphores) -> None:
    sem = redis_sems(2)
    with pytest.raises(ValueError, match="can't specify timeout for non-blocking acquire"):
        sem.acquire(False, timeout=1.0)
    assert sem.acquire(timeout=0.005)
    assert sem.acquire(timeout=0.005)
    assert not sem.acquire(timeout=0.005)
    sem.release()
    assert sem.acquire(timeout=0.005)
    started = time.monotonic()
    assert not sem.acquire(timeout=0.5)
    waited = time.monotonic() - started
    assert 0.5 <= waited < 0.5 + 0.5, waited


def test_default_value_is_one_and_a_waiter_wakes_on_release(redis_sems: RedisSemaphores) -> None:
    sem = redis_sems()
    assert sem.slots == 1
    assert sem.acquire()
    waiter = Background(lambda: sem.acquire(timeout=WAIT))
    redis_sems.server.wait_blocked()
    assert waiter.is_alive()
    released = time.monotonic()
    sem.release()
    assert waiter.join() is True
    assert time.monotonic() - released < 0.5, "a release wakes the waiter (pushed, not polled)"


def test_with(redis_sems: RedisSemaphores) -> None:
    sem = redis_sems(2)

    def _with(err: type[Exception] | None = None) -> None:
        with sem:
            assert sem.acquire(False)
            sem.release()
            with sem:
                assert not sem.acquire(False)
                if err:
                    raise err

    _with()
    assert sem.acquire(False)
    sem.release()
    with pytest.raises(TypeError):
        _with(TypeError)
    assert sem.acquire(False)
    sem.release()
    assert sem.value == 2


def test_release_unacquired(redis_sems: RedisSemaphores) -> None:
    sem = redis_sems()
    with pytest.raises(ValueError, match="holds no slot"):
        sem.release()
    assert sem.acquire()
    sem.release()
    with pytest.raises(ValueError, match="holds no slot"):
        sem.release()


def test_repr_shows_name_server_and_slots_without_password(redis_servers: RedisServers) -> None:
    server = redis_servers(password="s3cret-pw")
    sem = namedipc.RedisSemaphore("/namedipc-test-repr", 3, url=server.url(), lease=1)
    try:
        text = repr(sem)
        assert "'/namedipc-test-repr'" in text and f"127.0.0.1:{server.port}" in text and "slots=3" in text
        assert "s3cret-pw" not in text and "***" in text
        sem.close()
        assert "closed" in repr(sem)
    finally:
        sem.close()


# -- fences, slots, lost, holders ------------------------------------------------


def test_fence_and_slot_say_what_is_held(redis_sems: RedisSemaphores) -> None:
    sem = redis_sems(3)
    assert (sem.fence, sem.slot, sem.lost) == (None, None, False)
    fences = []
    for expected_slot in range(3):
        assert sem.acquire()
        assert sem.slot == expected_slot, "the lowest free slot"
        assert sem.fence is not None
        fences.append(sem.fence)
        assert not sem.lost
    assert fences == sorted(fences) and len(set(fences)) == 3
    sem.release()  # the latest: slot 2
    assert sem.slot == 1
    assert sem.acquire()
    assert sem.slot == 2
    assert sem.fence is not None and sem.fence > fences[-1], "a fence is never given twice"
    for _ in range(3):
        sem.release()
    assert sem.holders() == []
    assert sem.fence is None
    assert sem.slot is None


def test_fence_and_slot_are_per_thread(redis_sems: RedisSemaphores) -> None:
    sem = redis_sems(2)
    assert sem.acquire()
    mine = (sem.fence, sem.slot)
    seen: list[tuple[int | None, int | None]] = []
    took = threading.Event()
    done = threading.Event()

    def other() -> None:
        seen.append((sem.fence, sem.slot))  # the handle holds one grant: that one
        assert sem.acquire()
        seen.append((sem.fence, sem.slot))
        took.set()
        done.wait(WAIT)
        sem.release()  # its own, not the main thread's
        seen.append((sem.fence, sem.slot))

    thread = threading.Thread(target=other)
    thread.start()
    assert took.wait(WAIT)
    assert (sem.fence, sem.slot) == mine, "the main thread still sees its own grant"
    done.set()
    thread.join(WAIT)
    assert seen[0] == mine
    assert seen[1][1] == 1 and seen[1][0] is not None and mine[0] is not None and seen[1][0] > mine[0]
    assert seen[2] == mine, "after its release the handle holds one grant again: the main thread's"
    assert (sem.fence, sem.slot) == mine
    sem.release()
    assert sem.value == 2


def test_holders_describe_each_lease_by_the_server_clock(
    redis_sems: RedisSemaphores, redis_server: RedisServer
) -> None:
    sem = redis_sems(2, lease=5)
    assert sem.holders() == []
    assert sem.acquire()
    before = redis_server.time()
    assert sem.acquire()
    (first, second) = sem.holders()
    assert isinstance(first, namedipc.Lease) and isinstance(first, tuple)
    assert first._fields == ("host", "pid", "since", "expires_in", "fence", "slot")
    assert first.host == socket.gethostname() and first.pid == os.getpid()
    assert (first.slot, second.slot) == (0, 1)
    assert second.fence == sem.fence and first.fence < second.fence
    assert abs(second.since - before) < 1.0
    assert 4.0 < second.expires_in <= 5.0
    assert sem.value == 0
    sem.release()
    sem.release()
    assert sem.holders() == [] and sem.value == 2
    assert pickle.loads(pickle.dumps(first)) == first


def test_properties(redis_sems: RedisSemaphores) -> None:
    name = redis_sems.name()
    sem = redis_sems(3, name=name.lstrip("/"), lease=2.5)
    assert sem.name == name, "one leading slash, as local semaphores"
    assert sem.slots == 3 and sem.value == 3 and sem.lease == 2.5
    assert sem.url == redis_sems.server.url()
    assert sem.created and not sem.closed
    again = redis_sems(5, name=name)
    assert not again.created
    assert again.slots == 3, "an existing semaphore keeps its own slot count"


def test_url_defaults_to_namedipc_redis_then_localhost(redis_server: RedisServer) -> None:
    code = (
        "import namedipc\n"
        "s = namedipc.RedisSemaphore('/namedipc-test-env-url', lease=1)\n"
        "print(s.url, s.acquire(False))\n"
        "s.close()\n"
    )
    env = {**os.environ, "NAMEDIPC_REDIS": redis_server.url(3)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=WAIT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [redis_server.url(3), "True"]
    assert redis_server.command("SELECT", "3") == "OK"
    env.pop("NAMEDIPC_REDIS")
    code = (
        "import namedipc\n"
        "try:\n"
        "    s = namedipc.RedisSemaphore('/namedipc-test-env-url', lease=1, connect_timeout=1)\n"
        "    print(s.url)\n"
        "    s.close()\n"
        "except namedipc.UnavailableError as e:\n"
        "    print(e)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=WAIT)
    assert done.returncode == 0, done.stderr
    assert "redis://127.0.0.1:6379/0" in done.stdout


def test_pickles_by_url_and_name(redis_sems: RedisSemaphores) -> None:
    sem = redis_sems(2, lease=3)
    assert sem.acquire()
    copy = redis_sems.track(pickle.loads(pickle.dumps(sem)))
    assert type(copy) is namedipc.RedisSemaphore
    assert (copy.name, copy.url, copy.slots, copy.lease) == (sem.name, sem.url, 2, 3.0)
    assert copy.fence is None, "the copy holds none of the original's slots"
    assert copy.value == 1
    with pytest.raises(ValueError):
        copy.release()
    sem.release()


def test_a_subclass_pickles_as_itself(redis_sems: RedisSemaphores) -> None:
    class Mine(namedipc.RedisSemaphore):
        pass

    globals()["Mine"] = Mine  # pickle finds classes by qualified name
    Mine.__qualname__ = "Mine"
    try:
        sem = redis_sems.track(Mine(redis_sems.name(), url=redis_sems.server.url()))
        copy = redis_sems.track(pickle.loads(pickle.dumps(sem)))
        assert type(copy) is Mine and copy.name == sem.name
    finally:
        del globals()["Mine"]


def test_close_gives_back_every_slot_and_refuses_later_use(redis_sems: RedisSemaphores) -> None:
    sem = redis_sems(3)
    observer = redis_sems(3, name=sem.name)
    assert sem.acquire() and sem.acquire()
    assert observer.value == 1
    sem.close()
    assert observer.value == 3
    assert sem.closed
    for call in (sem.acquire, sem.release, lambda: sem.value, sem.holders, sem.ping, lambda: sem.acquire(False)):
        with pytest.raises(namedipc.ExistentialError, match="closed"):
            call()
    assert sem.name == observer.name and sem.slots == 3, "what describes it stays readable"
    assert sem.fence is None and not sem.lost
    sem.close()  # twice is fine


def test_close_from_another_thread_ends_a_wait(redis_sems: RedisSemaphores) -> None:
    sem = redis_sems()
    holder = redis_sems(name=sem.name)
    assert holder.acquire()
    waiter = Background(lambda: sem.acquire(timeout=WAIT))
    redis_sems.server.wait_blocked()
    sem.close()
    outcome = waiter.join()
    assert isinstance(outcome, namedipc.ExistentialError), outcome
    holder.release()
    assert holder.value == 1, "the ended wait took nothing"


def test_waits_release_the_interpreter_lock(redis_sems: RedisSemaphores) -> None:
    sem = redis_sems()
    assert sem.acquire()
    other = redis_sems(name=sem.name)
    waiter = Background(lambda: other.acquire(timeout=0.4))
    # The main thread keeps running Python while the other waits.
    count = 0
    end = time.monotonic() + 0.2
    while time.monotonic() < end:
        count += 1
    assert count > 10_000
    assert waiter.join() is False
    sem.release()


# -- bad input ---------------------------------------------------------------------


def test_bad_names(redis_sems: RedisSemaphores) -> None:
    url = redis_sems.server.url()
    with pytest.raises(TypeError, match="name must be a str"):
        namedipc.RedisSemaphore(42, url=url)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="NUL"):
        namedipc.RedisSemaphore("/a\0b", url=url)
    for bad in ("", "/", "/a/b", "/" + "x" * 400):
        with pytest.raises(ValueError):
            namedipc.RedisSemaphore(bad, url=url)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (0, ValueError),
        (100_001, ValueError),
        (2**70, ValueError),
        (1.5, TypeError),
        ("2", TypeError),
    ],
)
def test_bad_values(redis_sems: RedisSemaphores, value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="value must be"):
        namedipc.RedisSemaphore(redis_sems.name(), value, url=redis_sems.server.url())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("lease", "error"),
    [
        (math.nan, ValueError),
        (math.inf, ValueError),
        (-1, ValueError),
        (0, ValueError),
        (0.001, ValueError),
        (1e9, ValueError),
        (2**80, ValueError),
        ("1", TypeError),
        (True, TypeError),
        ([1], TypeError),
    ],
)
def test_bad_leases(redis_sems: RedisSemaphores, lease: object, error: type[Exception]) -> None:
    with pytest.raises(error, match=r"lease must be a number of seconds between 0\.01 and 86400"):
        namedipc.RedisSemaphore(redis_sems.name(), url=redis_sems.server.url(), lease=lease)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("timeout", "error", "match"),
    [
        (math.nan, ValueError, "finite number"),
        (math.inf, ValueError, "finite number"),
        ("1", TypeError, "timeout must be None"),
        ([], TypeError, "timeout must be None"),
    ],
)
def test_bad_timeouts(redis_sems: RedisSemaphores, timeout: object, error: type[Exception], match: str) -> None:
    sem = redis_sems()
    with pytest.raises(error, match=match):
        sem.acquire(timeout=timeout)  # type: ignore[arg-type]
    assert sem.value == 1


def test_negative_and_huge_timeouts(redis_sems: RedisSemaphores) -> None:
    sem = redis_sems()
    assert sem.acquire(timeout=-1), "a negative timeout does not wait, as threading's"
    assert not sem.acquire(timeout=-1)
    sem.release()
    assert sem.acquire(timeout=1e300), "a huge timeout waits as long as it takes"
    sem.release()


@pytest.mark.parametrize(
    ("url", "error", "match"),
    [
        (42, TypeError, "url must be a str"),
        (b"redis://127.0.0.1/0", TypeError, "url must be a str"),
        ("redis://127.0.0.1/0\0", ValueError, "NUL"),
        ("http://127.0.0.1:6379/0", ValueError, "invalid redis URL"),
        ("not a url", ValueError, "invalid redis URL"),
        ("redis://127.0.0.1:6379/0?ca=/etc/hostname", ValueError, "TLS"),
    ],
)
def test_bad_urls(url: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        namedipc.RedisSemaphore("/namedipc-test-bad-url", url=url, connect_timeout=1)  # type: ignore[arg-type]


def test_bad_connect_timeouts() -> None:
    for bad in (0, -1, math.nan, 1e9):
        with pytest.raises(ValueError, match="connect_timeout must be"):
            namedipc.RedisSemaphore("/namedipc-test-bad-ct", url="redis://127.0.0.1:1/0", connect_timeout=bad)


def test_bad_acquire_async_timeouts(redis_sems: RedisSemaphores) -> None:
    sem = redis_sems()
    with pytest.raises(ValueError, match="finite number"):
        sem.acquire_async(math.nan)  # type: ignore[unused-coroutine]
    with pytest.raises(TypeError, match="timeout must be None"):
        sem.acquire_async("1")  # type: ignore[arg-type,unused-coroutine]


def test_second_init_and_missing_init(redis_sems: RedisSemaphores) -> None:
    sem = redis_sems()
    with pytest.raises(TypeError, match="already initialised"):
        sem.__init__(sem.name, url=sem.url)  # type: ignore[misc]

    class Forgot(namedipc.RedisSemaphore):
        def __init__(self) -> None:
            pass

    forgot = Forgot()
    with pytest.raises(TypeError, match="never initialised"):
        forgot.acquire()
    with pytest.raises(TypeError, match="never initialised"):
        forgot.close()


def connected_clients(server: RedisServer) -> int:
    """The server's count of client connections (this query's own included)."""
    info = server.command("INFO", "clients")
    assert isinstance(info, bytes)
    return int(info.split(b"connected_clients:")[1].split()[0])


def test_ping_is_a_health_check_on_the_handles_own_connection(redis_sems: RedisSemaphores) -> None:
    server = redis_sems.server
    sem = redis_sems.track(namedipc.RedisSemaphore(redis_sems.name(), url=server.url(), connect_timeout=0.5))
    clients = connected_clients(server)
    for _ in range(3):
        rtt = sem.ping()
        assert type(rtt) is float and 0 < rtt < WAIT
    assert connected_clients(server) == clients, "ping opened no connection of its own"

    with server.paused():
        # Detached: the main thread runs Python while the ping waits for its answer.
        pinger = Background(sem.ping)
        count = 0
        end = time.monotonic() + 0.2
        while time.monotonic() < end:
            count += 1
        assert count > 10_000
        started = time.monotonic()
        outcome = pinger.join()
        assert isinstance(outcome, namedipc.UnavailableError), outcome
        # At most one connect timeout per try: the broken connection's, and one resend.
        assert time.monotonic() - started < 2 * 0.5 + 1
    assert sem.ping() > 0

    server.stop()
    started = time.monotonic()
    with pytest.raises(namedipc.UnavailableError, match=re.escape(server.url())):
        sem.ping()
    assert time.monotonic() - started < 2 * 0.5 + 1

    sem.close()
    with pytest.raises(namedipc.ExistentialError, match="closed"):
        sem.ping()


def test_unreachable_port_is_unavailable_at_once() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    started = time.monotonic()
    with pytest.raises(namedipc.UnavailableError) as raised:
        namedipc.RedisSemaphore("/namedipc-test-unreachable", url=url, connect_timeout=5)
    assert time.monotonic() - started < 2
    assert isinstance(raised.value, ConnectionError) and isinstance(raised.value, namedipc.Error)
    assert url in str(raised.value)


def test_an_idle_waiter_does_not_poll(redis_sems: RedisSemaphores, tcp_proxies: Callable[[int], TcpProxy]) -> None:
    # The waiter talks to the server through the proxy, which counts its bytes:
    # while it idles it may send one command per lease/3, not one per check.
    lease = 1.5
    server = redis_sems.server
    holder = redis_sems(lease=lease)
    assert holder.acquire()
    proxy = tcp_proxies(server.port)
    waiter_handle = redis_sems(name=holder.name, lease=lease, url=proxy.url_for(server.url(), server.port))
    waiter = Background(lambda: waiter_handle.acquire(timeout=WAIT))
    server.wait_blocked()  # past its first try and into the wait
    before = proxy.forwarded[TO_SERVER]
    idle = 1.5
    time.sleep(idle)
    sent = proxy.forwarded[TO_SERVER] - before
    # A command of the protocol is well under 400 bytes; a poll every 50 ms would be 30 of them.
    allowed = (idle / (lease / 3) + 1) * 400
    assert sent <= allowed, f"an idle waiter sent {sent} bytes in {idle} s"
    holder.release()
    assert waiter.join() is True
    waiter_handle.release()


EXIT_HOLDING = """
import sys, threading, namedipc
sem = namedipc.RedisSemaphore(sys.argv[1], 2, url=sys.argv[2], lease=30)
assert sem.acquire()
other = namedipc.RedisSemaphore(sys.argv[1], url=sys.argv[2], lease=30)
assert other.acquire()
full = namedipc.RedisSemaphore(sys.argv[1] + "-full", url=sys.argv[2], lease=30)
assert full.acquire()
blocked = namedipc.RedisSemaphore(full.name, url=sys.argv[2], lease=1)
waiting = threading.Thread(target=blocked.acquire, daemon=True)  # waits through the exit
waiting.start()
print("holding", flush=True)
"""


def test_a_normal_exit_gives_back_what_the_process_held(redis_sems: RedisSemaphores) -> None:
    observer = redis_sems(2)
    done = subprocess.run(
        [sys.executable, "-c", EXIT_HOLDING, observer.name, observer.url],
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "holding"
    # Given back at exit, not after the 30 s lease.
    assert observer.value == 2
    assert observer.holders() == []
    # A thread still waiting at exit may win the slot that the exit frees
    # just before the process ends: at worst its (1 s) lease keeps it.
    full = redis_sems(name=observer.name + "-full")
    poll_until(lambda: full.value == 1, 1.5, "the waiting thread's slot free")


def test_unlink_removes_the_semaphore_and_its_holders_learn_it(
    redis_sems: RedisSemaphores, redis_server: RedisServer
) -> None:
    sem = redis_sems(2, lease=LEASE_FOR_UNLINK)
    assert sem.acquire()
    its_keys = f"*{{{sem.name}}}*"  # all of its keys share one hash tag: {name}
    assert redis_server.keys(its_keys) != []
    sem.unlink()
    assert redis_server.keys(its_keys) == []
    poll_until(lambda: sem.lost, LEASE_FOR_UNLINK, "the holder told its lease is lost")
    with pytest.raises(namedipc.LeaseLost):
        sem.release()
    with pytest.raises(namedipc.NotFoundError, match=sem.name):
        sem.unlink()
    # The next open creates it anew, with its own slot count.
    again = redis_sems(3, name=sem.name)
    assert again.created and again.slots == 3
    namedipc.unlink_redis_semaphore(again.name.lstrip("/"), url=redis_server.url())
    with pytest.raises(namedipc.NotFoundError):
        namedipc.unlink_redis_semaphore(again.name, url=redis_server.url(), connect_timeout=2)
    with pytest.raises(TypeError, match="name must be a str"):
        namedipc.unlink_redis_semaphore(3, url=redis_server.url())  # type: ignore[arg-type]
    with pytest.raises(namedipc.UnavailableError):
        namedipc.unlink_redis_semaphore(again.name, url=f"redis://127.0.0.1:{free_port()}/0")


LEASE_FOR_UNLINK = 0.6


def test_a_forked_child_holds_none_of_its_parents_slots(redis_sems: RedisSemaphores) -> None:
    sem = redis_sems(2)
    assert sem.acquire()
    parent_fence = sem.fence
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads running (3.12+)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            held_none = sem.fence is None
            took = sem.acquire(timeout=WAIT)
            own = sem.fence is not None and sem.fence != parent_fence
            sem.release()
            code = 0 if held_none and took and own else 2
        finally:
            os.write(write_end, bytes([code]))
            os._exit(code)
    os.close(write_end)
    try:
        assert os.read(read_end, 1) == b"\x00", "the child saw none of the parent's slots and took its own"
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    assert sem.fence == parent_fence
    sem.release()
    assert sem.value == 2


def test_one_name_names_a_local_and_a_distributed_semaphore(redis_sems: RedisSemaphores) -> None:
    name = redis_sems.name()
    distributed = redis_sems(1, name=name)
    local = namedipc.RobustSemaphore(name, 1)
    try:
        assert local.name == distributed.name == name
        assert distributed.acquire(False)
        assert local.acquire(False), "each in its own namespace"
        local.release()
        distributed.release()
    finally:
        local.close()
