"""The fixtures of the Redis tests: real redis-server processes and TCP
proxies, every one stopped after the test, also when it fails.

A test module takes them with ``pytest_plugins = ["support.redis_fixtures"]``
(and never imports this module itself: pytest must be the first to import
it, to rewrite its asserts)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from support.redis_server import RedisSemaphores, RedisServer, RedisServers
from support.tcp_proxy import TcpProxy


@pytest.fixture
def redis_servers() -> Iterator[RedisServers]:
    """A factory of redis-server processes (keyword options as RedisServer's:
    password, appendfsync_always, tls, extra); every one is stopped and its
    directory removed after the test."""
    servers = RedisServers()
    try:
        yield servers
    finally:
        servers.cleanup()


@pytest.fixture
def redis_server(redis_servers: RedisServers) -> RedisServer:
    """One plain redis-server (no password, no persistence), stopped after the test."""
    return redis_servers()


@pytest.fixture
def tcp_proxies() -> Iterator[Callable[[int], TcpProxy]]:
    """A factory of proxies to a port on 127.0.0.1; all stopped after the test."""
    made: list[TcpProxy] = []

    def make(target_port: int) -> TcpProxy:
        proxy = TcpProxy(target_port)
        made.append(proxy)
        return proxy

    try:
        yield make
    finally:
        for proxy in made:
            proxy.stop()


@pytest.fixture
def redis_sems(redis_server: RedisServer) -> Iterator[RedisSemaphores]:
    """RedisSemaphore handles (unique names, lease 1 s by default) on the
    test's own server; closed after the test, then the server is stopped."""
    made = RedisSemaphores(redis_server)
    try:
        yield made
    finally:
        made.cleanup()
