"""namedipc's RedisSemaphore beside python-redis-lock (a mutex) and
py-redis-semaphore (counting), against one redis-server that this script
starts on a free loopback port and stops by its pid, side by side in one run.

Run from the repository root: `.venv/bin/python bench/redis_bench.py [--quick]`
(`./dev.sh bench --redis [--quick]` builds the release extension first).
It prints, for each library and the same work on the same server:

1. acquire() + release() of a free one-slot semaphore (a mutex for
   python-redis-lock), in one process, against the PING round trip: through
   namedipc's own client (RedisSemaphore.ping() of the same handle: the
   same connection, the same detach from the interpreter), through a bare
   socket (the cheapest round trip a Python program can make) and through
   redis-py (the client the other two libraries use). Target for namedipc:
   at most 2.5x the PING through its own client.
2. Release to waiter: a second process blocks in acquire(); the first
   releases; the time from the start of release() to the waiter's acquire()
   returning, on the one monotonic clock both processes read. Target for
   namedipc: median under 1 ms.
3. An idle waiter: while another process holds the slot (renewing its lease
   of LEASE seconds), a second process waits in acquire() for WINDOW
   seconds; MONITOR counts the commands the waiter's connections send.
   Target for namedipc: at most one per LEASE/3.

Rows 1 and 2 report medians (row 1: of per-round figures; rounds interleave
the subjects, so that a noisy machine hits all alike) and ratios.

(Not named redis.py: bench/ is the script's sys.path[0], and a redis.py
there would be imported in place of the redis package.)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import secrets
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import redis

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
# Every wait on the server or a waiter process is bounded by this.
WAIT = 10.0

# The targets of issue 11 (for namedipc).
TARGET_PING_RATIO = 2.5
TARGET_WAKE_MS = 1.0
TARGET_IDLE_PER_THIRD = 1.0


class Handle(Protocol):
    """One semaphore handle of a subject: a blocking acquire, a release."""

    def acquire(self) -> None: ...
    def release(self) -> None: ...


@dataclass(frozen=True)
class Subject:
    """A library under test: how it opens a one-slot semaphore by name."""

    key: str
    label: str
    open: Callable[[str, str, float], Handle]


# -- the subjects (each import at first use: a missing one is reported, not a crash)


class _NamedipcHandle:
    def __init__(self, url: str, name: str, lease: float) -> None:
        import namedipc

        self.sem = namedipc.RedisSemaphore(f"/{name}", 1, url=url, lease=lease)

    def acquire(self) -> None:
        self.sem.acquire()

    def release(self) -> None:
        self.sem.release()


class _RedisLockHandle:
    # python-redis-lock with auto_renewal: a lease renewed while held, as the others have.
    def __init__(self, url: str, name: str, lease: float) -> None:
        import redis_lock  # type: ignore[import-untyped]  # it ships no type information

        self.lock = redis_lock.Lock(redis.Redis.from_url(url), name, expire=max(1, round(lease)), auto_renewal=True)

    def acquire(self) -> None:
        self.lock.acquire(blocking=True)

    def release(self) -> None:
        self.lock.release()


class _RedisSemaphoreHandle:
    # py-redis-semaphore in its defaults: server time, BLPOP waits, a heartbeat every lease/3.
    def __init__(self, url: str, name: str, lease: float) -> None:
        from redis_semaphore import Semaphore, SemaphoreConfig

        self.sem = Semaphore(redis.Redis.from_url(url), SemaphoreConfig(name=name, limit=1, lock_timeout=lease))

    def acquire(self) -> None:
        self.sem.acquire(blocking=True)

    def release(self) -> None:
        self.sem.release()


SUBJECTS = [
    Subject("namedipc", "namedipc RedisSemaphore", _NamedipcHandle),
    Subject("redis_lock", "python-redis-lock (mutex)", _RedisLockHandle),
    Subject("redis_semaphore", "py-redis-semaphore", _RedisSemaphoreHandle),
]
BY_KEY = {s.key: s for s in SUBJECTS}


# -- the server


class Server:
    """A redis-server of this run: a free loopback port, a directory of its
    own, no configuration file; stopped by pid."""

    def __init__(self, appendfsync_always: bool) -> None:
        if not Path(REDIS_SERVER).exists():
            sys.exit(f"{REDIS_SERVER} not found: apt-get install redis-server (./dev.sh installs it)")
        self.dir = Path(tempfile.mkdtemp(prefix=f"namedipc-bench-redis-{os.getpid()}-"))
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port: int = probe.getsockname()[1]
        argv = [REDIS_SERVER, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.dir)]
        argv += ["--save", "", "--daemonize", "no", "--logfile", str(self.dir / "server.log")]
        argv += ["--appendonly", "yes", "--appendfsync", "always"] if appendfsync_always else ["--appendonly", "no"]
        self.persistence = "appendfsync always" if appendfsync_always else "no persistence"
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._admin: redis.Redis | None = None
        deadline = time.monotonic() + WAIT
        while True:
            try:
                if self.admin().ping():
                    break
            except redis.ConnectionError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                sys.exit(f"redis-server did not start on port {self.port} (see {self.dir}/server.log)")
            time.sleep(0.01)

    def admin(self) -> redis.Redis:
        """A redis-py client for looking at the server (made once)."""
        if self._admin is None:
            self._admin = redis.Redis.from_url(self.url, socket_timeout=WAIT)
        return self._admin

    def blocked_clients(self) -> int:
        return int(self.admin().info("clients")["blocked_clients"])

    def version(self) -> str:
        return str(self.admin().info("server").get("redis_version", "?"))

    def stop(self) -> None:
        if self._admin is not None:
            self._admin.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(WAIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(WAIT)
        shutil.rmtree(self.dir, ignore_errors=True)


def encode(*args: str) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


# -- a waiter process (this script, run with --waiter)


def waiter_main(key: str, url: str, name: str, lease: float) -> None:
    """Reads commands from stdin: "go" waits in acquire(), prints the
    monotonic time it returned at, releases and prints "released"; "quit" ends."""
    handle = BY_KEY[key].open(url, name, lease)
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "go":
            break
        handle.acquire()
        got = time.monotonic_ns()
        print(got, flush=True)
        handle.release()
        print("released", flush=True)


class Waiter:
    """A waiter process for one subject, spoken to over pipes, every read bounded."""

    def __init__(self, subject: Subject, url: str, name: str, lease: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--waiter", subject.key, url, name, str(lease)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        # Read from the descriptor into a buffer of our own: a file object's
        # readline() reads ahead where select() cannot see it.
        self._pending = b""
        self.expect("ready")

    def line(self) -> str:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + WAIT
        while b"\n" not in self._pending:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(fd, 4096) if ready else b""
            if not chunk:
                raise TimeoutError(f"waiter {self.proc.pid} said nothing more within {WAIT} s")
            self._pending += chunk
        line, self._pending = self._pending.split(b"\n", 1)
        return line.decode().strip()

    def expect(self, wanted: str) -> None:
        said = self.line()
        if said != wanted:
            raise RuntimeError(f"waiter {self.proc.pid} said {said!r}, expected {wanted!r}")

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.send("quit")
        try:
            self.proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(WAIT)


def wait_blocked(server: Server, more_than: int) -> None:
    deadline = time.monotonic() + WAIT
    while server.blocked_clients() <= more_than:
        if time.monotonic() > deadline:
            raise TimeoutError("the waiter never blocked in the server")
        time.sleep(0.001)


# -- the rows


@dataclass
class Results:
    per_op: dict[str, list[float]] = field(default_factory=dict)  # row 1, ns per round
    wake: dict[str, list[float]] = field(default_factory=dict)  # row 2, ns per wake-up
    idle: dict[str, tuple[int, int]] = field(default_factory=dict)  # row 3, (waiter, holder) commands
    missing: dict[str, str] = field(default_factory=dict)  # subjects that could not run, and why


def time_ping_raw(server: Server, count: int) -> float:
    with socket.create_connection(("127.0.0.1", server.port)) as conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        ping = encode("PING")
        started = time.perf_counter_ns()
        for _ in range(count):
            conn.sendall(ping)
            if conn.recv(64) != b"+PONG\r\n":
                raise RuntimeError("unexpected reply to PING")
        return (time.perf_counter_ns() - started) / count


def time_ping_redis_py(client: redis.Redis, count: int) -> float:
    ping = client.ping
    ping()
    started = time.perf_counter_ns()
    for _ in range(count):
        ping()
    return (time.perf_counter_ns() - started) / count


def time_ping_namedipc(handle: _NamedipcHandle, count: int) -> float:
    ping = handle.sem.ping
    started = time.perf_counter_ns()
    for _ in range(count):
        ping()
    return (time.perf_counter_ns() - started) / count


def time_value(handle: _NamedipcHandle, count: int) -> float:
    sem = handle.sem
    started = time.perf_counter_ns()
    for _ in range(count):
        _ = sem.value
    return (time.perf_counter_ns() - started) / count


def time_pairs(handle: Handle, count: int) -> float:
    acquire, release = handle.acquire, handle.release
    started = time.perf_counter_ns()
    for _ in range(count):
        acquire()
        release()
    return (time.perf_counter_ns() - started) / count


def uncontended(server: Server, handles: dict[str, Handle], rounds: int, count: int, results: Results) -> None:
    client = redis.Redis.from_url(server.url)
    timed: dict[str, Callable[[], float]] = {
        "ping_raw": lambda: time_ping_raw(server, count),
        "ping_redis_py": lambda: time_ping_redis_py(client, count),
    }
    if isinstance(handles.get("namedipc"), _NamedipcHandle):
        named = handles["namedipc"]
        assert isinstance(named, _NamedipcHandle)
        timed["ping_namedipc"] = lambda: time_ping_namedipc(named, count)
        timed["value_namedipc"] = lambda: time_value(named, count)
    for key, handle in handles.items():
        timed[key] = lambda handle=handle: time_pairs(handle, count)  # type: ignore[misc]
    for f in timed.values():  # a warm-up round, thrown away
        f()
    for _ in range(rounds):
        for key, f in timed.items():
            results.per_op.setdefault(key, []).append(f())
    client.close()


def wake_ups(server: Server, key: str, handle: Handle, name: str, lease: float, count: int) -> list[float]:
    waiter = Waiter(BY_KEY[key], server.url, name, lease)
    found: list[float] = []
    try:
        for i in range(count + 2):
            handle.acquire()
            before = server.blocked_clients()
            waiter.send("go")
            wait_blocked(server, before)
            released = time.monotonic_ns()
            handle.release()
            got = int(waiter.line())
            waiter.expect("released")
            if i >= 2:  # the first two warm up
                found.append(got - released)
    finally:
        waiter.stop()
    return found


def idle_commands(server: Server, key: str, handle: Handle, name: str, lease: float, window: float) -> tuple[int, int]:
    """(commands from the waiter process's connections, commands from this
    process's: the holder's renewals) in `window` seconds."""
    handle.acquire()
    waiter = Waiter(BY_KEY[key], server.url, name, lease)
    try:
        before = server.blocked_clients()
        waiter.send("go")
        wait_blocked(server, before)
        waiter_ports = local_ports(waiter.proc.pid)
        seen = monitor(server, window)
        waiter_ports |= local_ports(waiter.proc.pid)
        holder_ports = local_ports(os.getpid())
        handle.release()
        waiter.line()
        waiter.expect("released")
    finally:
        waiter.stop()
    from_waiter = sum(n for port, n in seen.items() if port in waiter_ports)
    from_holder = sum(n for port, n in seen.items() if port in holder_ports)
    return from_waiter, from_holder


def local_ports(pid: int) -> set[int]:
    """The local TCP ports of the sockets process `pid` has open (its
    descriptors' socket inodes, looked up in /proc/net/tcp): which
    connections of the server belong to which process."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def monitor(server: Server, seconds: float) -> dict[int, int]:
    """Commands the server ran for each client port over `seconds` (MONITOR;
    the commands a script runs inside the server are not counted apart)."""
    counts: dict[int, int] = {}
    with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) as conn:
        conn.sendall(encode("MONITOR"))
        buffer = b""
        end = time.monotonic() + seconds
        started = False
        while (left := end - time.monotonic()) > 0:
            ready, _, _ = select.select([conn], [], [], left)
            if not ready:
                continue
            chunk = conn.recv(1 << 16)
            if not chunk:
                break
            buffer += chunk
            *lines, buffer = buffer.split(b"\r\n")
            for line in lines:
                if line == b"+OK":
                    started = True
                    continue
                # +1700000000.123456 [0 127.0.0.1:54321] "BLPOP" ...
                if started and b" [" in line:
                    addr = line.split(b" [", 1)[1].split(b"]", 1)[0].split()[-1].decode()
                    if addr != "lua":
                        port = int(addr.rsplit(":", 1)[1])
                        counts[port] = counts.get(port, 0) + 1
    return counts


# -- the report


def fmt_ns(ns: float) -> str:
    return f"{ns / 1000:.1f} µs" if ns >= 1000 else f"{ns:.0f} ns"


def verdict(met: bool) -> str:
    return "met" if met else "NOT MET"


def report(results: Results, lease: float, window: float) -> bool:
    all_met = True
    floor = results.per_op["ping_raw"]
    py_floor = results.per_op["ping_redis_py"]
    # The target's own floor: ping() of the same handle, measured in the same
    # rounds (absent only if namedipc could not run).
    own_floor = results.per_op.get("ping_namedipc")
    labels = {
        "ping_namedipc": "namedipc .ping()",
        "ping_raw": "PING, bare socket",
        "ping_redis_py": "PING, redis-py",
        "value_namedipc": "namedipc .value (1 script)",
    } | {s.key: s.label for s in SUBJECTS}
    print("1. acquire() + release(), uncontended, one process")
    print(f"   {'':28} {'median':>10} {'/ ping()':>9} {'/ bare PING':>12} {'/ redis-py PING':>16}")

    def median_ratio(figures: list[float], floors: list[float]) -> float:
        # The median of per-round ratios: each round's figures were taken side by side.
        return statistics.median(f / p for f, p in zip(figures, floors, strict=True))

    for key, figures in results.per_op.items():
        own = f"{median_ratio(figures, own_floor):>8.2f}x" if own_floor else f"{'-':>9}"
        line = (
            f"   {labels[key]:28} {fmt_ns(statistics.median(figures)):>10} {own}"
            f" {median_ratio(figures, floor):>11.2f}x {median_ratio(figures, py_floor):>15.2f}x"
        )
        if key == "namedipc" and own_floor:
            met = median_ratio(figures, own_floor) <= TARGET_PING_RATIO
            all_met &= met
            line += f"   target <= {TARGET_PING_RATIO}x its ping(): {verdict(met)}"
        print(line)
    print()
    print("2. release() to the waiter's acquire() returning, across processes")
    print(f"   {'':28} {'median':>10} {'min':>10} {'max':>10} {'count':>6}")
    for key, figures in results.wake.items():
        line = (
            f"   {labels[key]:28} {fmt_ns(statistics.median(figures)):>10} {fmt_ns(min(figures)):>10}"
            f" {fmt_ns(max(figures)):>10} {len(figures):>6}"
        )
        if key == "namedipc":
            met = statistics.median(figures) < TARGET_WAKE_MS * 1e6
            all_met &= met
            line += f"   target: median < {TARGET_WAKE_MS} ms: {verdict(met)}"
        print(line)
    print()
    thirds = window / (lease / 3)
    print(f"3. an idle waiter for {window:g} s, the holder's lease {lease:g} s ({thirds:g} periods of lease/3)")
    print(f"   {'':28} {'waiter':>8} {'per lease/3':>12} {'holder':>8}")
    for key, (from_waiter, from_holder) in results.idle.items():
        per_third = from_waiter / thirds
        line = f"   {labels[key]:28} {from_waiter:>8} {per_third:>12.2f} {from_holder:>8}"
        if key == "namedipc":
            met = per_third <= TARGET_IDLE_PER_THIRD
            all_met &= met
            line += f"   target <= {TARGET_IDLE_PER_THIRD:g} per lease/3: {verdict(met)}"
        print(line)
    for key, why in results.missing.items():
        print(f"\n{labels[key]} was not measured: {why}")
        if key == "namedipc":
            all_met = False
    return all_met


def run(options: argparse.Namespace) -> int:
    rounds, count, wakes = (5, 300, 30) if options.quick else (options.rounds, 2000, 200)
    lease, window = (1.5, 3.0) if options.quick else (3.0, 9.0)
    server = Server(options.appendfsync_always)
    tag = f"namedipc-bench-{os.getpid()}-{secrets.token_hex(3)}"
    try:
        import namedipc

        print(
            f"namedipc {namedipc.__version__} | redis-server {server.version()} on 127.0.0.1:{server.port} "
            f"({server.persistence}) | CPython {platform.python_version()}, Linux {platform.release()}, "
            f"{os.cpu_count()} CPUs"
        )
        print(f"row 1: {rounds} rounds of {count} (+1 warm-up), interleaved; row 2: {wakes} wake-ups each")
        print(flush=True)
        results = Results()
        handles: dict[str, Handle] = {}
        for subject in SUBJECTS:
            try:
                handles[subject.key] = subject.open(server.url, f"{tag}-{subject.key}", lease)
            except Exception as e:  # noqa: BLE001 - reported in the output, the others still run
                results.missing[subject.key] = f"{type(e).__name__}: {e}"
        uncontended(server, handles, rounds, count, results)
        for key, handle in handles.items():
            results.wake[key] = wake_ups(server, key, handle, f"{tag}-{key}", lease, wakes)
        for key, handle in handles.items():
            results.idle[key] = idle_commands(server, key, handle, f"{tag}-{key}", lease, window)
        met = report(results, lease, window)
    finally:
        server.stop()
    print(f"\nredis-server (pid {server.proc.pid}) stopped, its directory removed")
    return 1 if options.check and not met else 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["--waiter"]:
        key, url, name, lease = argv[1:5]
        waiter_main(key, url, name, float(lease))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds and a shorter idle window")
    parser.add_argument("--rounds", type=int, default=15, help="measured rounds of row 1 (default 15)")
    parser.add_argument(
        "--appendfsync-always", action="store_true", help="run the server with appendonly yes, appendfsync always"
    )
    parser.add_argument("--check", action="store_true", help="exit with status 1 if a target is missed")
    options = parser.parse_args(argv)
    return run(options)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM ends the run like ^C: the server and waiters are stopped on the way out."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    with _sigterm_as_interrupt():
        sys.exit(main(sys.argv[1:]))
