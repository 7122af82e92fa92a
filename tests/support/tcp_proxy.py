"""A TCP proxy on loopback, for partitions and delays between a client and
a server: it passes traffic, drops all of it (both ways, or one way), delays
it, cuts every connection (RST) or refuses new ones, as the test says.

It runs in one thread of the test process (a selector loop), started by the
`tcp_proxies` fixture (tests/support/redis_fixtures.py) or by `TcpProxy(...)` and always stopped with `stop()`,
which closes every socket it opened and joins the thread (bounded).
Changing the mode takes effect at once for data read from then on;
`delay()` gives every chunk read a due time (order kept per direction).
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field

from support.waiting import WAIT, poll_until

TO_SERVER = "to_server"
TO_CLIENT = "to_client"
BOTH = (TO_SERVER, TO_CLIENT)


@dataclass
class _Side:
    """One socket of a proxied connection, and what waits to be written to it."""

    sock: socket.socket
    outbox: bytearray = field(default_factory=bytearray)
    # (due, data) chunks not yet due, in order (due times never decrease).
    later: list[tuple[float, bytes]] = field(default_factory=list)


@dataclass
class _Pair:
    client: _Side
    server: _Side
    closed: bool = False


class TcpProxy:
    """Listens on 127.0.0.1 (an ephemeral port, `port`) and forwards each
    connection to (target_host, target_port)."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._dropping: set[str] = set()
        self._delay: dict[str, float] = {TO_SERVER: 0.0, TO_CLIENT: 0.0}
        self._refusing = False
        self._cuts_requested = 0
        self._cuts_done = 0
        self._pairs: list[_Pair] = []
        self.accepted = 0
        self.forwarded = {TO_SERVER: 0, TO_CLIENT: 0}
        self.dropped = {TO_SERVER: 0, TO_CLIENT: 0}
        self._stopping = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, "accept")
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"tcp-proxy-{self.port}", daemon=True)
        self._thread.start()

    # -- what the test says ------------------------------------------------------

    def url_for(self, server_url: str, server_port: int) -> str:
        """`server_url` with the server's port replaced by the proxy's."""
        return server_url.replace(f":{server_port}/", f":{self.port}/", 1)

    def passing(self) -> None:
        """Forward everything, at once (the default)."""
        with self._lock:
            self._dropping.clear()
            self._delay = {TO_SERVER: 0.0, TO_CLIENT: 0.0}
            self._refusing = False
        self._wake()

    def drop(self, *directions: str) -> None:
        """Discard every byte read from now on, in `directions` (default: both):
        connections stay open, nothing gets through, as in a partition."""
        with self._lock:
            self._dropping = set(directions or BOTH)
        self._wake()

    def delay(self, seconds: float, *directions: str) -> None:
        """Hold every chunk read from now on for `seconds` before passing it on,
        in `directions` (default: both)."""
        with self._lock:
            for direction in directions or BOTH:
                self._delay[direction] = seconds
        self._wake()

    def refuse(self, refusing: bool = True) -> None:
        """Close new connections as soon as they are accepted."""
        with self._lock:
            self._refusing = refusing
        self._wake()

    def cut(self) -> None:
        """Reset every open connection now (both sides see a reset); new ones
        are accepted as the mode says. Returns once they are closed."""
        with self._lock:
            self._cuts_requested += 1
            wanted = self._cuts_requested
        self._wake()
        poll_until(
            lambda: self._cuts_done >= wanted or not self._thread.is_alive(), what="the proxy cut its connections"
        )

    @property
    def connections(self) -> int:
        """Connections open through the proxy now."""
        with self._lock:
            return sum(not pair.closed for pair in self._pairs)

    def wait_connections(self, count: int, timeout: float = WAIT) -> None:
        poll_until(lambda: self.connections >= count, timeout, f"{count} connection(s) through the proxy")

    def stop(self) -> None:
        """Closes every socket and ends the thread; safe more than once."""
        with self._lock:
            self._stopping = True
        self._wake()
        self._thread.join(WAIT)
        assert not self._thread.is_alive(), "the proxy thread did not end"
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise AssertionError("the proxy thread failed") from failure

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the loop ----------------------------------------------------------------

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def _run(self) -> None:
        try:
            while True:
                with self._lock:
                    if self._stopping:
                        break
                    cuts = self._cuts_requested
                if cuts > self._cuts_done:
                    for pair in list(self._pairs):
                        self._close(pair, reset=True)
                    self._cuts_done = cuts
                now = time.monotonic()
                self._flush_due(now)
                timeout = self._next_due(now)
                for key, events in self._selector.select(timeout):
                    if key.data == "wake":
                        with contextlib.suppress(BlockingIOError):
                            self._wake_r.recv(4096)
                    elif key.data == "accept":
                        self._accept()
                    else:
                        pair, side_name = key.data
                        if not pair.closed:
                            self._service(pair, side_name, events)
        except BaseException as e:  # noqa: BLE001 - handed to the test by stop()
            self._failure = e
        finally:
            for pair in list(self._pairs):
                self._close(pair, reset=True)
            self._selector.close()
            self._listener.close()
            self._wake_r.close()
            self._wake_w.close()

    def _next_due(self, now: float) -> float | None:
        dues = [
            side.later[0][0]
            for pair in self._pairs
            if not pair.closed
            for side in (pair.client, pair.server)
            if side.later
        ]
        if not dues:
            return None
        return max(0.0, min(dues) - now)

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        with self._lock:
            refusing = self._refusing
        if refusing:
            _reset(client)
            return
        try:
            server = socket.create_connection(self.target, timeout=WAIT)
        except OSError:
            _reset(client)
            return
        for sock in (client, server):
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pair = _Pair(_Side(client), _Side(server))
        with self._lock:
            self._pairs.append(pair)
            self.accepted += 1
        self._selector.register(client, selectors.EVENT_READ, (pair, "client"))
        self._selector.register(server, selectors.EVENT_READ, (pair, "server"))

    def _service(self, pair: _Pair, side_name: str, events: int) -> None:
        source = pair.client if side_name == "client" else pair.server
        dest = pair.server if side_name == "client" else pair.client
        direction = TO_SERVER if side_name == "client" else TO_CLIENT
        if events & selectors.EVENT_WRITE:
            self._write(pair, source)
        if pair.closed or not events & selectors.EVENT_READ:
            return
        try:
            data = source.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            self._close(pair, reset=True)
            return
        if not data:
            self._close(pair, reset=False)
            return
        with self._lock:
            dropping = direction in self._dropping
            delay = self._delay[direction]
            if dropping:
                self.dropped[direction] += len(data)
        if dropping:
            return
        if delay > 0 or dest.later:
            due = time.monotonic() + delay
            if dest.later:
                due = max(due, dest.later[-1][0])
            dest.later.append((due, data))
        else:
            self._send(pair, dest, data, direction)

    def _flush_due(self, now: float) -> None:
        for pair in list(self._pairs):
            if pair.closed:
                continue
            for dest, direction in ((pair.server, TO_SERVER), (pair.client, TO_CLIENT)):
                while dest.later and dest.later[0][0] <= now and not pair.closed:
                    _, data = dest.later.pop(0)
                    self._send(pair, dest, data, direction)

    def _send(self, pair: _Pair, dest: _Side, data: bytes, direction: str) -> None:
        with self._lock:
            self.forwarded[direction] += len(data)
        dest.outbox += data
        self._write(pair, dest)

    def _write(self, pair: _Pair, side: _Side) -> None:
        if side.outbox:
            try:
                sent = side.sock.send(side.outbox)
                del side.outbox[:sent]
            except BlockingIOError:
                pass
            except OSError:
                self._close(pair, reset=True)
                return
        wanted = selectors.EVENT_READ | (selectors.EVENT_WRITE if side.outbox else 0)
        label = "client" if side is pair.client else "server"
        self._selector.modify(side.sock, wanted, (pair, label))

    def _close(self, pair: _Pair, *, reset: bool) -> None:
        if pair.closed:
            return
        pair.closed = True
        for side in (pair.client, pair.server):
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(side.sock)
            if reset:
                _reset(side.sock)
            else:
                side.sock.close()
        with self._lock:
            self._pairs.remove(pair)


def _reset(sock: socket.socket) -> None:
    """Closes `sock` with an RST (linger 0), not a FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()
