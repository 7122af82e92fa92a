"""RedisSemaphore when things go wrong, against real redis-server processes:
a holder SIGKILLed or SIGSTOPped, a kill storm checked by an independent
oracle, the server paused, restarted with and without persistence, reached
through a proxy that cuts or delays traffic, protected by a password or
TLS, or not there at all; Ctrl-C during a wait."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import namedipc
from support.processes import HELPERS, Peer
from support.redis_server import RedisSemaphores, RedisServer, RedisServers, tls_supported
from support.tcp_proxy import TO_SERVER, TcpProxy
from support.waiting import WAIT, poll_until, process_state

pytest_plugins = ["support.redis_fixtures"]

HOLDER = HELPERS / "redis_holder.py"

# The leases of these tests: short, so that the suite stays fast.
LEASE = 0.5


class Holder(Peer):
    """An independent process holding the semaphore (tests/helpers/redis_holder.py)."""

    def __init__(self, url: str, name: str, slots: int = 1, lease: float = LEASE) -> None:
        super().__init__(sys.executable, HOLDER, url, name, str(slots), str(lease))
        self.expect("ready")

    def acquire(self, timeout: float = WAIT) -> tuple[int, int]:
        said = self.ask(f"acquire {timeout}", "acquired").split()
        return int(said[1]), int(said[2])

    def stop(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)
        poll_until(lambda: process_state(self.proc.pid) == "T", what="the holder stopped")

    def cont(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)


@pytest.fixture
def holders() -> Iterator[Callable[..., Holder]]:
    """Starts holder processes; all killed after the test."""
    started: list[Holder] = []

    def start(url: str, name: str, slots: int = 1, lease: float = LEASE) -> Holder:
        holder = Holder(url, name, slots, lease)
        started.append(holder)
        return holder

    yield start
    for holder in started:
        if holder.proc.poll() is None:
            os.kill(holder.proc.pid, signal.SIGCONT)
        holder.kill()


def wait_lost(sem: namedipc.RedisSemaphore, within: float) -> float:
    """Waits until `sem.lost` (at most `within` seconds); returns when it came."""
    poll_until(lambda: sem.lost, within, "the lease reported lost")
    return time.monotonic()


# -- holders that die or stop ------------------------------------------------------


def test_a_killed_holders_slot_is_back_within_its_lease(
    redis_sems: RedisSemaphores, holders: Callable[..., Holder]
) -> None:
    sem = redis_sems(lease=LEASE)
    holder = holders(sem.url, sem.name)
    holder.acquire()
    assert not sem.acquire(False)
    holder.proc.kill()
    killed = time.monotonic()
    assert sem.acquire(timeout=WAIT)
    back = time.monotonic() - killed
    # The lease was last renewed at most lease/3 before the kill.
    assert back <= LEASE + 0.1, f"the slot came back {back:.3f} s after the kill"
    sem.release()


def test_kill_storm_never_over_admits_and_loses_no_slot(
    redis_sems: RedisSemaphores, tmp_path: Path, programs: type[Peer]
) -> None:
    """Workers take the slots in a loop and log each holding (start/end, with
    its fence and slot, on the machine's monotonic clock); some are SIGKILLed
    at random and replaced. The oracle, from the logs and the kill times alone:
    never more than N holders at once, never two on one slot, every fence given
    once, and at the end every slot free again."""
    slots, lease, workers, seconds = 2, 1.0, 4, 3.0
    sem = redis_sems(slots, lease=lease)
    log = tmp_path / "holdings.log"
    rng = random.Random(1234)

    def start() -> Peer:
        worker = programs(
            sys.executable, HOLDER, "--work", sem.url, sem.name, str(slots), str(lease), str(log), str(seconds)
        )
        worker.expect("ready")
        return worker

    running = [start() for _ in range(workers)]
    kills: dict[int, float] = {}  # pid -> when it was killed
    end = time.monotonic() + seconds
    while time.monotonic() < end - 0.3:
        time.sleep(rng.uniform(0.05, 0.25))
        victim = rng.randrange(len(running))
        proc = running[victim].proc
        proc.kill()
        kills[proc.pid] = time.monotonic()
        proc.wait(WAIT)
        running[victim] = start()
    for worker in running:
        worker.finish()
    # Every slot comes back: the killed holders' leases run out.
    poll_until(lambda: sem.value == slots, lease + 1, lambda: f"all slots free (value {sem.value})")

    # The oracle. A holding without an end belongs to a killed worker: it
    # ended, at the latest, when its worker was killed.
    starts: dict[int, tuple[int, float, int]] = {}
    intervals: list[tuple[float, float, int, int]] = []
    lost = 0
    for line in log.read_text().splitlines():
        kind, fence, slot, at, last = line.split()
        if kind == "start":
            starts[int(fence)] = (int(slot), float(at), int(last))
        else:
            slot_, began, _ = starts.pop(int(fence))
            intervals.append((began, float(at), int(fence), slot_))
            lost += last == "True"
    for open_fence, (open_slot, began, pid) in starts.items():
        assert pid in kills, f"worker {pid} left a holding unfinished without being killed"
        intervals.append((began, kills[pid], open_fence, open_slot))
    assert lost == 0, "no live holder lost its lease in the storm"
    assert len(intervals) > 20, f"the workers got few turns: {len(intervals)}"
    fences = [given for _, _, given, _ in intervals]
    assert len(fences) == len(set(fences)), "every fence is given once"
    events = sorted([(b, 1, s) for b, _, _, s in intervals] + [(e, -1, s) for _, e, _, s in intervals])
    holding: set[int] = set()
    for _, change, taken in events:
        if change == 1:
            assert taken not in holding, f"two holders on slot {taken} at once"
            holding.add(taken)
            assert len(holding) <= slots
        else:
            holding.discard(taken)


def test_a_stopped_holder_loses_its_lease_to_a_higher_fence(
    redis_sems: RedisSemaphores, holders: Callable[..., Holder]
) -> None:
    sem = redis_sems(lease=LEASE)
    holder = holders(sem.url, sem.name)
    old_fence, _ = holder.acquire()
    holder.stop()
    stopped = time.monotonic()
    assert sem.acquire(timeout=WAIT), "the stopped holder's lease runs out on the server"
    assert time.monotonic() - stopped <= LEASE + 0.2
    assert sem.fence is not None and sem.fence > old_fence
    holder.cont()
    # Its local deadline passed while it was stopped: it knows at once.
    assert holder.ask("lost", "lost") == "lost True"
    assert holder.ask("release", "") == "lost", "its release raises LeaseLost"
    assert sem.value == 0, "and frees nothing: the slot stays the new holder's"
    assert [lease.fence for lease in sem.holders()] == [sem.fence]
    sem.release()
    assert sem.value == 1


def test_a_holder_sees_lost_at_its_local_deadline_while_the_server_is_paused(
    redis_sems: RedisSemaphores, redis_server: RedisServer
) -> None:
    sem = redis_sems(lease=LEASE)
    assert sem.acquire()
    acquired = time.monotonic()
    redis_server.pause()
    try:
        assert not sem.lost
        lost_at = wait_lost(sem, LEASE + 1)
        assert redis_server.is_paused, "lost is known before the server resumes"
        assert lost_at - acquired <= LEASE + 0.1, f"lost {lost_at - acquired:.3f} s after the acquire"
    finally:
        redis_server.resume()
    with pytest.raises(namedipc.LeaseLost, match="was lost"):
        sem.release()
    assert sem.value == 1


def test_the_end_of_a_with_block_whose_lease_was_lost_raises_lease_lost(
    redis_sems: RedisSemaphores, redis_server: RedisServer
) -> None:
    sem = redis_sems(lease=LEASE)

    def hold_through_a_loss(body_error: Exception | None) -> None:
        with sem:
            with redis_server.paused():
                wait_lost(sem, LEASE + 1)
            if body_error is not None:
                raise body_error

    with pytest.raises(namedipc.LeaseLost):
        hold_through_a_loss(None)
    assert sem.fence is None and sem.value == 1
    # An exception in the body is kept as the context.
    with pytest.raises(namedipc.LeaseLost) as raised:
        hold_through_a_loss(KeyError("body"))
    assert isinstance(raised.value.__context__, KeyError)
    assert sem.value == 1


# -- the server restarts ------------------------------------------------------------


def test_fences_still_increase_after_a_restart_that_lost_everything(
    redis_sems: RedisSemaphores, redis_server: RedisServer
) -> None:
    sem = redis_sems(lease=LEASE)
    fences = []
    for _ in range(3):
        assert sem.acquire()
        fences.append(sem.fence)
        sem.release()
    redis_server.restart(crash=True)
    assert redis_server.keys() == [], "nothing persisted"
    assert sem.acquire(timeout=WAIT), "the handle outlives the restart"
    assert sem.fence is not None and sem.fence > max(f for f in fences if f is not None)
    sem.release()
    fresh = redis_sems(name=sem.name)
    assert fresh.acquire() and fresh.fence is not None and fresh.fence > sem.fence if sem.fence else True


def test_appendfsync_always_admits_no_one_more_after_a_crash(
    redis_servers: RedisServers, holders: Callable[..., Holder]
) -> None:
    server = redis_servers(appendfsync_always=True)
    sems = RedisSemaphores(server)
    try:
        sem = sems(2, lease=3.0)
        first = holders(sem.url, sem.name, 2, 3.0)
        second = holders(sem.url, sem.name, 2, 3.0)
        fences = [first.acquire()[0], second.acquire()[0]]
        server.restart(crash=True)
        assert not sem.acquire(False), "both leases survived the crash"
        assert sem.value == 0
        assert sorted(lease.fence for lease in sem.holders()) == sorted(fences)
        assert first.ask("release", "") == "released"
        assert sem.acquire(timeout=WAIT)
        assert sem.fence is not None and sem.fence > max(fences)
        sem.release()
        assert second.ask("release", "") == "released"
    finally:
        sems.cleanup()


# -- partitions and delays through the proxy -------------------------------------


def test_renewals_cut_off_lose_the_lease_locally_and_admit_a_new_holder(
    redis_sems: RedisSemaphores, tcp_proxies: Callable[[int], TcpProxy]
) -> None:
    server = redis_sems.server
    proxy = tcp_proxies(server.port)
    cut_off = redis_sems(lease=LEASE, url=proxy.url_for(server.url(), server.port))
    direct = redis_sems(name=cut_off.name, lease=LEASE)
    assert cut_off.acquire()
    old_fence = cut_off.fence
    proxy.drop()
    dropped = time.monotonic()
    lost_at = wait_lost(cut_off, LEASE + 1)
    assert lost_at - dropped <= LEASE + 0.1
    assert direct.acquire(timeout=WAIT), "the server expires the lease and admits another"
    assert time.monotonic() - dropped <= LEASE + 0.3
    assert direct.fence is not None and old_fence is not None and direct.fence > old_fence
    proxy.passing()
    proxy.cut()  # the old connections are broken (bytes were dropped): new ones
    with pytest.raises(namedipc.LeaseLost):
        cut_off.release()
    assert direct.value == 0, "the lost holder's release freed nothing"
    direct.release()


def test_a_renewal_delayed_past_the_expiry_is_refused(
    redis_sems: RedisSemaphores, tcp_proxies: Callable[[int], TcpProxy]
) -> None:
    server = redis_sems.server
    proxy = tcp_proxies(server.port)
    late = redis_sems(lease=LEASE, url=proxy.url_for(server.url(), server.port))
    direct = redis_sems(name=late.name, lease=LEASE)
    assert late.acquire()
    sent_before = proxy.forwarded[TO_SERVER]
    delay = 3 * LEASE
    proxy.delay(delay, TO_SERVER)
    delayed = time.monotonic()
    assert direct.acquire(timeout=WAIT), "the late renewals do not keep the lease"
    taken = direct.fence
    wait_lost(late, LEASE + 1)
    # The renewals sent meanwhile reach the server after the expiry: refused.
    poll_until(
        lambda: proxy.forwarded[TO_SERVER] > sent_before and time.monotonic() > delayed + delay + 0.2,
        delay + WAIT,
        "the delayed renewals reached the server",
    )
    assert [(lease.fence, lease.pid) for lease in direct.holders()] == [(taken, os.getpid())]
    assert direct.value == 0
    assert late.lost
    proxy.passing()
    with pytest.raises(namedipc.LeaseLost):
        late.release()
    assert direct.value == 0
    direct.release()


def test_a_handle_outlives_a_dropped_connection(
    redis_sems: RedisSemaphores, tcp_proxies: Callable[[int], TcpProxy]
) -> None:
    server = redis_sems.server
    proxy = tcp_proxies(server.port)
    sem = redis_sems(2, lease=2.0, url=proxy.url_for(server.url(), server.port))
    assert sem.acquire()
    proxy.cut()
    assert sem.value == 1, "the next call reconnects"
    assert sem.acquire(False)
    assert not sem.lost
    sem.release()
    sem.release()


def test_an_unresponsive_server_is_unavailable_within_the_connect_timeout(
    redis_server: RedisServer, tcp_proxies: Callable[[int], TcpProxy]
) -> None:
    proxy = tcp_proxies(redis_server.port)
    proxy.drop()  # accepts connections, answers nothing
    url = proxy.url_for(redis_server.url(), redis_server.port)
    started = time.monotonic()
    with pytest.raises(namedipc.UnavailableError, match="unavailable") as raised:
        namedipc.RedisSemaphore("/namedipc-test-silent", url=url, connect_timeout=0.5)
    took = time.monotonic() - started
    assert 0.4 <= took < 0.5 * 3 + 0.5, f"gave up after {took:.2f} s"
    assert url in str(raised.value)


def test_a_server_gone_mid_life_makes_calls_unavailable_not_hang(
    redis_servers: RedisServers,
) -> None:
    server = redis_servers()
    sems = RedisSemaphores(server)
    try:
        sem = namedipc.RedisSemaphore(sems.name(), url=server.url(), lease=LEASE, connect_timeout=1)
        sems.track(sem)
        assert sem.acquire()
        server.kill()
        started = time.monotonic()
        with pytest.raises(namedipc.UnavailableError):
            _ = sem.value
        with pytest.raises(namedipc.UnavailableError):
            sem.acquire(timeout=0.2)
        assert time.monotonic() - started < 3
        wait_lost(sem, LEASE + 1)
    finally:
        sems.cleanup()


# -- passwords and TLS ---------------------------------------------------------------


def test_a_password_server(redis_servers: RedisServers) -> None:
    server = redis_servers(password="right-secret")
    sem = namedipc.RedisSemaphore("/namedipc-test-pw", url=server.url(), lease=LEASE)
    try:
        assert sem.acquire()
        sem.release()
    finally:
        sem.close()
    wrong = server.url(password="wrong-secret")
    with pytest.raises(namedipc.UnavailableError) as raised:
        namedipc.RedisSemaphore("/namedipc-test-pw", url=wrong, lease=LEASE, connect_timeout=2)
    message = str(raised.value)
    assert "wrong-secret" not in message and "right-secret" not in message
    assert f"redis://:***@127.0.0.1:{server.port}/0" in message
    none = f"redis://127.0.0.1:{server.port}/0"
    with pytest.raises(namedipc.UnavailableError) as raised:
        namedipc.RedisSemaphore("/namedipc-test-pw", url=none, lease=LEASE, connect_timeout=2)
    assert none in str(raised.value)


@pytest.mark.skipif(not tls_supported(), reason="/usr/bin/redis-server was built without TLS")
def test_tls_with_a_self_signed_certificate(redis_servers: RedisServers) -> None:
    server = redis_servers(tls=True)
    url = server.url()
    assert url.startswith("rediss://")
    trusted = f"{url}?ca={server.ca}"
    sem = namedipc.RedisSemaphore("/namedipc-test-tls", url=trusted, lease=LEASE)
    try:
        assert sem.acquire()
        assert sem.holders()[0].fence == sem.fence
        sem.release()
    finally:
        sem.close()
    insecure = namedipc.RedisSemaphore("/namedipc-test-tls", url=f"{url}#insecure", lease=LEASE)
    try:
        assert insecure.acquire(False)
        insecure.release()
    finally:
        insecure.close()
    with pytest.raises(namedipc.UnavailableError):
        namedipc.RedisSemaphore("/namedipc-test-tls", url=url, lease=LEASE, connect_timeout=2)
    plain = url.replace("rediss://", "redis://")
    with pytest.raises(namedipc.UnavailableError):
        namedipc.RedisSemaphore("/namedipc-test-tls", url=plain, lease=LEASE, connect_timeout=1)


# -- Ctrl-C -------------------------------------------------------------------------------

WAIT_THEN_REPORT = """
import sys, time, namedipc
sem = namedipc.RedisSemaphore(sys.argv[1], url=sys.argv[2], lease=float(sys.argv[3]))
print("waiting", flush=True)
started = None
try:
    sem.acquire()
    print("acquired", flush=True)
except KeyboardInterrupt:
    print("interrupted", len(sem.holders()), sem.fence, flush=True)
sys.stdin.readline()
"""


def test_ctrl_c_ends_a_wait_promptly_and_takes_no_slot(redis_sems: RedisSemaphores, programs: type[Peer]) -> None:
    sem = redis_sems(lease=LEASE)
    assert sem.acquire()
    waiter = programs(sys.executable, "-c", WAIT_THEN_REPORT, sem.name, sem.url, str(LEASE))
    waiter.expect("waiting")
    redis_sems.server.wait_blocked()  # in the blocking wait (the first try failed)
    os.kill(waiter.proc.pid, signal.SIGINT)
    signalled = time.monotonic()
    said = waiter.expect("interrupted")
    assert time.monotonic() - signalled < 0.5
    assert said == "interrupted 1 None", "only this test's holding is on the server"
    sem.release()
    assert sem.value == 1, "the interrupted wait left no slot taken"
    assert sem.acquire(False)
    sem.release()
    waiter.send("")
    waiter.finish()


def test_a_signal_handler_that_returns_lets_the_wait_go_on(redis_sems: RedisSemaphores, programs: type[Peer]) -> None:
    code = (
        "import signal, sys, namedipc\n"
        "signal.signal(signal.SIGUSR1, lambda *a: print('handled', flush=True))\n"
        "sem = namedipc.RedisSemaphore(sys.argv[1], url=sys.argv[2], lease=0.5)\n"
        "print('waiting', flush=True)\n"
        "print('acquired', sem.acquire(timeout=10), flush=True)\n"
        "sem.release()\n"
    )
    sem = redis_sems(lease=LEASE)
    assert sem.acquire()
    waiter = programs(sys.executable, "-c", code, sem.name, sem.url)
    waiter.expect("waiting")
    redis_sems.server.wait_blocked()
    os.kill(waiter.proc.pid, signal.SIGUSR1)
    waiter.expect("handled")
    sem.release()
    assert waiter.expect("acquired") == "acquired True"
    waiter.finish()
    assert sem.value == 1


def test_no_server_left_behind() -> None:
    # Every test above stopped its servers (the fixtures' finalizers).
    mine = subprocess.run(["pgrep", "-P", str(os.getpid()), "redis-server"], capture_output=True, text=True)
    assert mine.stdout.strip() == ""
