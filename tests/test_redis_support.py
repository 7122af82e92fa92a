"""The Redis tests' own tools: the redis-server fixture (tests/support/redis_server.py)
and the TCP proxy (tests/support/tcp_proxy.py). A fixture that leaves a server
behind, or a proxy that passes what it should drop, would make every test
that relies on it prove nothing."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from support.processes import read_line
from support.redis_server import (
    RedisReplyError,
    RedisServer,
    RedisServers,
    RespReader,
    random_password,
    send_command,
    tls_supported,
    wait_gone,
)
from support.tcp_proxy import TO_CLIENT, TO_SERVER, TcpProxy
from support.waiting import WAIT, poll_until, process_gone

# The fixtures redis_server, redis_servers and tcp_proxies.
pytest_plugins = ["support.redis_fixtures"]

SUPPORT = Path(__file__).resolve().parent / "support"


def test_server_answers_on_loopback_with_its_own_dir_and_no_persistence(redis_server: RedisServer) -> None:
    assert redis_server.command("PING") == "PONG"
    assert redis_server.command("CONFIG", "GET", "dir") == [b"dir", str(redis_server.dir).encode()]
    assert redis_server.command("CONFIG", "GET", "save") == [b"save", b""]
    assert redis_server.command("CONFIG", "GET", "appendonly") == [b"appendonly", b"no"]
    assert redis_server.command("CONFIG", "GET", "bind") == [b"bind", b"127.0.0.1"]
    assert redis_server.url() == f"redis://127.0.0.1:{redis_server.port}/0"
    assert redis_server.url(3) == f"redis://127.0.0.1:{redis_server.port}/3"
    assert abs(redis_server.time() - time.time()) < 5


def test_stop_ends_the_process_and_cleanup_removes_the_dir(redis_servers: RedisServers) -> None:
    server = redis_servers()
    pid, directory = server.pid, server.dir
    server.stop()
    assert process_gone(pid)
    assert not server.running()
    server.stop()  # twice is fine
    server.cleanup()
    assert not directory.exists()


def test_restart_without_persistence_loses_the_data_on_the_same_port(redis_server: RedisServer) -> None:
    port = redis_server.port
    redis_server.command("SET", "k", "v")
    old_pid = redis_server.pid
    redis_server.restart()
    assert process_gone(old_pid)
    assert redis_server.port == port
    assert redis_server.command("GET", "k") is None


def test_appendfsync_always_keeps_every_acknowledged_write_across_a_crash(redis_servers: RedisServers) -> None:
    server = redis_servers(appendfsync_always=True)
    assert server.command("CONFIG", "GET", "appendfsync") == [b"appendfsync", b"always"]
    for _ in range(50):
        server.command("INCR", "counter")
    server.restart(crash=True)  # SIGKILL: only what was synced survives
    assert server.command("GET", "counter") == b"50"


def test_pause_stops_answers_until_resume(redis_server: RedisServer) -> None:
    with redis_server.paused(), pytest.raises(TimeoutError):
        redis_server.command("PING", timeout=0.2)
    assert redis_server.command("PING") == "PONG"


def test_a_paused_server_is_stopped_too(redis_servers: RedisServers) -> None:
    server = redis_servers()
    pid = server.pid
    server.pause()
    server.stop()
    assert process_gone(pid)


def test_password_server_refuses_a_client_without_it(redis_servers: RedisServers) -> None:
    password = random_password()
    server = redis_servers(password=password)
    assert server.command("PING") == "PONG"  # command() authenticates
    assert server.url() == f"redis://:{password}@127.0.0.1:{server.port}/0"
    with server.connect() as conn:
        send_command(conn, "PING")
        with pytest.raises(RedisReplyError, match="NOAUTH"):
            RespReader(conn).reply()


@pytest.mark.skipif(not tls_supported(), reason="/usr/bin/redis-server was built without TLS")
def test_tls_server_speaks_tls_only(redis_servers: RedisServers) -> None:
    server = redis_servers(tls=True)
    assert server.url().startswith(f"rediss://127.0.0.1:{server.port}/")
    assert server.ca is not None and server.ca.exists()
    assert server.command("PING") == "PONG"  # over TLS, trusting the self-signed certificate
    with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) as plain:
        send_command(plain, "PING")
        with pytest.raises((ConnectionError, OSError)):
            RespReader(plain).reply()


def test_a_server_dies_with_the_process_that_started_it() -> None:
    # A test process killed outright runs no finalizer: the kernel ends its servers.
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from support.redis_server import RedisServer\n"
        "server = RedisServer().start()\n"
        "print(server.pid, server.dir, flush=True)\n"
        "sys.stdin.readline()\n"
    )
    starter = subprocess.Popen(
        [sys.executable, "-c", code, str(SUPPORT.parent)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        said = read_line(starter).split()
        pid, directory = int(said[0]), Path(said[1])
        assert not process_gone(pid)
        starter.kill()
        starter.wait(WAIT)
        wait_gone(pid)
        shutil.rmtree(directory)
    finally:
        if starter.poll() is None:
            starter.kill()
        starter.communicate(timeout=WAIT)


# -- the proxy --------------------------------------------------------------------


def _ping_on(conn: socket.socket) -> object:
    send_command(conn, "PING")
    return RespReader(conn).reply()


def _ping_through(proxy: TcpProxy, server: RedisServer, timeout: float = WAIT) -> object:
    return server.command("PING", timeout=timeout, port=proxy.port)


def test_proxy_passes_traffic_and_counts_it(redis_server: RedisServer, tcp_proxies: Callable[[int], TcpProxy]) -> None:
    proxy = tcp_proxies(redis_server.port)
    assert _ping_through(proxy, redis_server) == "PONG"
    assert proxy.forwarded[TO_SERVER] > 0 and proxy.forwarded[TO_CLIENT] > 0
    assert proxy.url_for(redis_server.url(), redis_server.port) == f"redis://127.0.0.1:{proxy.port}/0"


def test_proxy_drop_lets_nothing_through_until_passing(
    redis_server: RedisServer, tcp_proxies: Callable[[int], TcpProxy]
) -> None:
    proxy = tcp_proxies(redis_server.port)
    with redis_server.connect(port=proxy.port) as conn:
        conn.settimeout(0.3)
        reader = RespReader(conn)
        send_command(conn, "PING")
        assert reader.reply() == "PONG"
        proxy.drop()
        send_command(conn, "SET", "dropped", "1")
        with pytest.raises(TimeoutError):
            reader.reply()
        assert proxy.connections == 1, "a drop keeps the connection open"
        poll_until(lambda: proxy.dropped[TO_SERVER] > 0, what="the command dropped")
    assert redis_server.command("GET", "dropped") is None, "the dropped command never reached the server"
    proxy.passing()
    assert _ping_through(proxy, redis_server) == "PONG"


def test_proxy_drop_of_one_direction(redis_server: RedisServer, tcp_proxies: Callable[[int], TcpProxy]) -> None:
    proxy = tcp_proxies(redis_server.port)
    proxy.drop(TO_CLIENT)
    with redis_server.connect(port=proxy.port) as conn:
        conn.settimeout(0.3)
        send_command(conn, "SET", "one-way", "1")
        with pytest.raises(TimeoutError):
            RespReader(conn).reply()
    poll_until(lambda: redis_server.command("GET", "one-way") == b"1", what="the command reached the server")


def test_proxy_delay_holds_every_chunk_in_order(
    redis_server: RedisServer, tcp_proxies: Callable[[int], TcpProxy]
) -> None:
    proxy = tcp_proxies(redis_server.port)
    proxy.delay(0.3, TO_SERVER)
    with redis_server.connect(port=proxy.port) as conn:
        reader = RespReader(conn)
        started = time.monotonic()
        send_command(conn, "SET", "order", "first")
        send_command(conn, "SET", "order", "second")
        assert reader.reply() == "OK"
        assert reader.reply() == "OK"
        assert time.monotonic() - started >= 0.3
    assert redis_server.command("GET", "order") == b"second"
    proxy.passing()
    started = time.monotonic()
    assert _ping_through(proxy, redis_server) == "PONG"
    assert time.monotonic() - started < 0.3


def test_proxy_cut_resets_open_connections(redis_server: RedisServer, tcp_proxies: Callable[[int], TcpProxy]) -> None:
    proxy = tcp_proxies(redis_server.port)
    with redis_server.connect(port=proxy.port) as conn:
        reader = RespReader(conn)
        send_command(conn, "PING")
        assert reader.reply() == "PONG"
        proxy.wait_connections(1)
        proxy.cut()
        assert proxy.connections == 0
        with pytest.raises(OSError):
            _ping_on(conn)
    assert _ping_through(proxy, redis_server) == "PONG", "new connections pass again"


def test_proxy_refuse_closes_new_connections(redis_server: RedisServer, tcp_proxies: Callable[[int], TcpProxy]) -> None:
    proxy = tcp_proxies(redis_server.port)
    proxy.refuse()
    with pytest.raises(OSError):
        _ping_through(proxy, redis_server, timeout=1)
    proxy.refuse(False)
    assert _ping_through(proxy, redis_server) == "PONG"


def test_proxy_stop_closes_everything(redis_server: RedisServer) -> None:
    proxy = TcpProxy(redis_server.port)
    port = proxy.port
    with redis_server.connect(port=port) as conn:
        proxy.wait_connections(1)
        proxy.stop()
        proxy.stop()  # twice is fine
        conn.settimeout(WAIT)
        with pytest.raises(OSError):
            _ping_on(conn)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=WAIT).close()


def test_blocked_clients_counts_a_client_in_blpop(redis_server: RedisServer) -> None:
    assert redis_server.blocked_clients() == 0
    with redis_server.connect() as conn:
        send_command(conn, "BLPOP", "namedipc-test-list", "5")
        redis_server.wait_blocked(1)
        redis_server.command("RPUSH", "namedipc-test-list", "x")
        assert RespReader(conn).reply() == [b"namedipc-test-list", b"x"]
    poll_until(lambda: redis_server.blocked_clients() == 0, what="no client blocked")
