"""Real redis-server processes for the tests: each on a free loopback port,
in a directory of its own, with no configuration file from the system.

A server is started from /usr/bin/redis-server (Debian's package; ./dev.sh
installs it), stopped by its pid, and never outlives the test: the
`redis_servers` fixture (tests/support/redis_fixtures.py) stops every server it started, an atexit hook stops
what a crashed fixture left, and the kernel kills a server whose test
process died (PR_SET_PDEATHSIG). Options: a password, an append-only file
synced on every write, TLS with a self-signed certificate made here, a
restart on the same port and directory, SIGSTOP and SIGCONT.

`RedisServer.command` speaks RESP over a socket of its own (TLS and AUTH
included), so that the tests can look at the server without the code under
test.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

import namedipc
from support.waiting import WAIT, poll_until, process_gone, process_state

REDIS_SERVER = Path("/usr/bin/redis-server")
OPENSSL = "openssl"

PR_SET_PDEATHSIG = 1

Reply = int | bytes | str | list["Reply"] | None

_LIVE: weakref.WeakSet[RedisServer] = weakref.WeakSet()


class RedisReplyError(Exception):
    """An error reply of the server (the text after '-')."""


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def tls_supported() -> bool:
    """Whether /usr/bin/redis-server was built with TLS (Debian's is, against
    OpenSSL): such a build calls SSL_CTX_new, a build without TLS has no
    OpenSSL in it at all."""
    try:
        return b"SSL_CTX_new" in REDIS_SERVER.read_bytes()
    except OSError:
        return False


def make_certificate(directory: Path) -> tuple[Path, Path, Path]:
    """A self-signed CA and a server certificate it signed for 127.0.0.1 and
    localhost, with the server's key, made with openssl in `directory`:
    (ca, cert, key). Clients trust the CA (TLS libraries such as rustls
    refuse a CA certificate presented as the server's own)."""
    if shutil.which(OPENSSL) is None:
        pytest.fail("openssl is not installed, but the TLS test makes its certificate with it; ./dev.sh installs it")
    ca, ca_key = directory / "ca.crt", directory / "ca.key"
    cert, key, request = directory / "server.crt", directory / "server.key", directory / "server.csr"
    extensions = directory / "server.ext"
    extensions.write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
    )
    new_key = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    ca_subject = ("-subj", "/CN=namedipc test CA", "-addext", "basicConstraints=critical,CA:TRUE")
    ca_usage = ("-addext", "keyUsage=critical,keyCertSign,cRLSign", "-days", "2")
    signed_by_ca = ("-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", "-days", "2")
    steps = [
        [OPENSSL, "req", "-x509", *new_key, "-keyout", str(ca_key), "-out", str(ca), *ca_subject, *ca_usage],
        [OPENSSL, "req", *new_key, "-keyout", str(key), "-out", str(request), "-subj", "/CN=localhost"],
        [OPENSSL, "x509", "-req", "-in", str(request), *signed_by_ca, "-out", str(cert), "-extfile", str(extensions)],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=WAIT * 3, check=False)
        assert done.returncode == 0, f"openssl could not make the certificates ({step}):\n{done.stderr}"
    return ca, cert, key


class RedisServer:
    """One redis-server process (and its directory), restartable on the same
    port and directory. Use through the `redis_servers` fixture, or as a
    context manager; `stop()` is always safe to call."""

    def __init__(
        self,
        *,
        password: str | None = None,
        appendfsync_always: bool = False,
        tls: bool = False,
        extra: tuple[str, ...] = (),
    ) -> None:
        if not REDIS_SERVER.exists():
            pytest.fail(f"{REDIS_SERVER} is missing; ./dev.sh test installs Debian's redis-server")
        self.password = password
        self.appendfsync_always = appendfsync_always
        self.tls = tls
        self.extra = extra
        self.dir = Path(tempfile.mkdtemp(prefix=f"namedipc-redis-{os.getpid()}-"))
        # TLS: the CA clients trust, and the server's certificate and key.
        self.ca: Path | None = None
        self.cert: Path | None = None
        self.key: Path | None = None
        if tls:
            self.ca, self.cert, self.key = make_certificate(self.dir)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = self.dir / "server.log"
        self.is_paused = False

    # -- addresses -------------------------------------------------------------

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def url(self, db: int = 0, *, password: str | None = None, port: int | None = None) -> str:
        """The URL a client gives to reach this server (through `port`, e.g. a
        proxy's, if given); with the server's password unless another is given."""
        secret = self.password if password is None else password
        auth = f":{secret}@" if secret else ""
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://{auth}{self.host}:{port or self.port}/{db}"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "the server is not running"
        return self.proc.pid

    # -- life ------------------------------------------------------------------

    def _argv(self) -> list[str]:
        argv = [
            str(REDIS_SERVER),
            "--bind", self.host,
            "--dir", str(self.dir),
            "--logfile", str(self._log),
            "--daemonize", "no",
            "--save", "",
            "--databases", "16",
            "--protected-mode", "no",
        ]  # fmt: skip
        if self.tls:
            assert self.ca is not None and self.cert is not None and self.key is not None
            argv += [
                "--port", "0",
                "--tls-port", str(self.port),
                "--tls-cert-file", str(self.cert),
                "--tls-key-file", str(self.key),
                "--tls-ca-cert-file", str(self.ca),
                "--tls-auth-clients", "no",
            ]  # fmt: skip
        else:
            argv += ["--port", str(self.port)]
        if self.password:
            argv += ["--requirepass", self.password]
        if self.appendfsync_always:
            argv += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            argv += ["--appendonly", "no"]
        return argv + list(self.extra)

    def start(self) -> RedisServer:
        """Starts the server and waits (bounded) until it answers PING."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.proc = subprocess.Popen(
            self._argv(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent,
        )
        self.is_paused = False
        _LIVE.add(self)
        deadline = time.monotonic() + WAIT
        while True:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                log = self._log.read_text(errors="replace") if self._log.exists() else ""
                self.proc = None
                raise AssertionError(f"redis-server exited at start ({self._argv()}):\n{err}\n{log}")
            try:
                if self.command("PING") in (b"PONG", "PONG"):
                    return self
            except (OSError, RedisReplyError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"redis-server on port {self.port} did not answer PING within {WAIT} s")
            time.sleep(0.005)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _signal(self, sig: int) -> None:
        assert self.proc is not None and self.proc.poll() is None, "the server is not running"
        os.kill(self.proc.pid, sig)

    def pause(self) -> None:
        """SIGSTOP: the server holds its connections but answers nothing."""
        self._signal(signal.SIGSTOP)
        poll_until(lambda: process_state(self.pid) == "T", what=f"redis-server {self.pid} stopped")
        self.is_paused = True

    def resume(self) -> None:
        """SIGCONT after pause()."""
        self._signal(signal.SIGCONT)
        self.is_paused = False

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Paused inside the block, resumed after it (also when it fails)."""
        self.pause()
        try:
            yield
        finally:
            if self.running():
                self.resume()

    def kill(self) -> None:
        """SIGKILL, as a crash: nothing is written on the way out."""
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        """Stops the server by pid if it runs (SIGTERM, then SIGKILL if it
        does not end in time); safe to call at any time and more than once."""
        self._end(signal.SIGTERM)

    def _end(self, sig: int) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, sig)
                if sig != signal.SIGKILL:
                    os.kill(proc.pid, signal.SIGCONT)  # a paused server must run to end
            try:
                proc.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=WAIT)
        if proc.stderr:
            proc.stderr.close()
        self.proc = None
        self.is_paused = False

    def restart(self, *, crash: bool = True) -> None:
        """Ends the server (SIGKILL if `crash`, else SIGTERM) and starts it
        again on the same port and directory."""
        if crash:
            self.kill()
        else:
            self.stop()
        self.start()

    def cleanup(self) -> None:
        """Stops the server and removes its directory."""
        self.stop()
        _LIVE.discard(self)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def log(self) -> str:
        return self._log.read_text(errors="replace") if self._log.exists() else ""

    # -- looking at it -----------------------------------------------------------

    def connect(self, timeout: float = WAIT, port: int | None = None) -> socket.socket:
        """A socket connected to the server (through `port`, e.g. a proxy's,
        if given), TLS-wrapped on a TLS server, not yet authenticated."""
        raw = socket.create_connection((self.host, port or self.port), timeout=timeout)
        if not self.tls:
            return raw
        context = ssl.create_default_context(cafile=str(self.ca))
        return context.wrap_socket(raw, server_hostname="localhost")

    def command(self, *args: str | bytes | int | float, timeout: float = WAIT, port: int | None = None) -> Reply:
        """Sends one command on a connection of its own (AUTH first when the
        server has a password) and returns the reply: bytes for bulk
        strings, str for status replies, int, list or None; an error reply
        raises RedisReplyError."""
        with self.connect(timeout, port) as conn:
            reader = RespReader(conn)
            if self.password:
                send_command(conn, "AUTH", self.password)
                reader.reply()
            send_command(conn, *args)
            return reader.reply()

    def keys(self, pattern: str = "*") -> list[bytes]:
        found = self.command("KEYS", pattern)
        assert isinstance(found, list)
        return sorted(k for k in found if isinstance(k, bytes))

    def blocked_clients(self) -> int:
        """How many clients are blocked in a command (a waiter's BLPOP) now."""
        info = self.command("INFO", "clients")
        assert isinstance(info, bytes)
        for line in info.decode().splitlines():
            if line.startswith("blocked_clients:"):
                return int(line.split(":", 1)[1])
        raise AssertionError(f"INFO clients has no blocked_clients: {info!r}")

    def wait_blocked(self, count: int = 1, timeout: float = WAIT) -> None:
        """Returns once `count` clients are blocked in the server (a test
        waits for waiters to be waiting, not for time to pass)."""
        poll_until(lambda: self.blocked_clients() >= count, timeout, f"{count} client(s) blocked in the server")

    def time(self) -> float:
        """The server's clock, in seconds (TIME)."""
        now = self.command("TIME")
        assert isinstance(now, list) and len(now) == 2
        seconds, micros = (int(part) for part in now if isinstance(part, bytes))
        return seconds + micros / 1e6


def _encode(args: tuple[str | bytes | int | float, ...]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class RespReader:
    """Reads RESP replies from a socket through a buffer of its own (a
    socket file would read ahead into one that a second reader cannot see)."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self._buffer = bytearray()

    def _fill(self) -> None:
        chunk = self.conn.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self._buffer += chunk

    def _line(self) -> bytes:
        while (end := self._buffer.find(b"\r\n")) < 0:
            self._fill()
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 2]
        return line

    def _exactly(self, size: int) -> bytes:
        while len(self._buffer) < size + 2:
            self._fill()
        data = bytes(self._buffer[:size])
        del self._buffer[: size + 2]
        return data

    def reply(self) -> Reply:
        """The next reply (bounded by the socket's timeout); an error reply
        raises RedisReplyError."""
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RedisReplyError(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            return None if size < 0 else self._exactly(size)
        if kind == b"*":
            count = int(rest)
            return None if count < 0 else [self.reply() for _ in range(count)]
        raise AssertionError(f"unexpected reply line {line!r}")


def send_command(conn: socket.socket, *args: str | bytes | int | float) -> None:
    """Writes one command on `conn` (read its reply with a RespReader)."""
    conn.sendall(_encode(args))


def random_password() -> str:
    return secrets.token_urlsafe(12)


class RedisServers:
    """Starts servers for one test and stops every one of them at the end."""

    def __init__(self) -> None:
        self.started: list[RedisServer] = []

    def __call__(
        self,
        *,
        password: str | None = None,
        appendfsync_always: bool = False,
        tls: bool = False,
        extra: tuple[str, ...] = (),
    ) -> RedisServer:
        server = RedisServer(password=password, appendfsync_always=appendfsync_always, tls=tls, extra=extra)
        self.started.append(server)
        return server.start()

    def cleanup(self) -> None:
        errors = []
        for server in self.started:
            try:
                server.cleanup()
            except Exception as e:  # noqa: BLE001 - stop the others, then report
                errors.append(e)
        self.started.clear()
        if errors:
            raise errors[0]


class RedisSemaphores:
    """Opens RedisSemaphore handles under unique names on one server, and
    closes every one at the end of the test (the server goes with it)."""

    def __init__(self, server: RedisServer) -> None:
        self.server = server
        self._prefix = f"/namedipc-test-{os.getpid()}-{secrets.token_hex(4)}"
        self._count = 0
        self.opened: list[namedipc.RedisSemaphore] = []

    def name(self, label: str = "redis") -> str:
        """A fresh unique name."""
        self._count += 1
        return f"{self._prefix}-{label}-{self._count}"

    def __call__(
        self, value: int = 1, *, name: str | None = None, lease: float = 1.0, url: str | None = None
    ) -> namedipc.RedisSemaphore:
        sem = namedipc.RedisSemaphore(
            name or self.name(), value, url=url or self.server.url(), lease=lease, connect_timeout=WAIT
        )
        self.opened.append(sem)
        return sem

    def track(self, sem: namedipc.RedisSemaphore) -> namedipc.RedisSemaphore:
        """Closes `sem`, opened elsewhere, at the end of the test too."""
        self.opened.append(sem)
        return sem

    def cleanup(self) -> None:
        for sem in self.opened:
            sem.close()


@atexit.register
def _stop_leftovers() -> None:
    for server in list(_LIVE):
        server.cleanup()


def wait_gone(pid: int) -> None:
    poll_until(lambda: process_gone(pid), what=f"process {pid} gone")
