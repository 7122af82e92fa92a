"""CPython's own test.lock_tests.BoundedSemaphoreTests, run unchanged against
RedisSemaphore on a real redis-server (test_redis_semaphore.py rewrites the
same cases in pytest's style, with the semaphore's own words).

Two cases do not apply, by the API: RedisSemaphore.release() gives back one
slot (the caller's; there is no release(n), since each slot is a lease of
its own), and its repr names the server instead of BoundedSemaphore's
"value=v/n" (which would cost a round trip)."""

from __future__ import annotations

import os
import secrets
from typing import Any

import pytest

import namedipc
from support.redis_server import RedisServer

lock_tests = pytest.importorskip("test.lock_tests", reason="CPython's test package is not installed")


class RedisBoundedSemaphoreTests(lock_tests.BoundedSemaphoreTests):  # type: ignore[misc,name-defined]
    server: RedisServer
    prefix: str
    made: list[namedipc.RedisSemaphore]

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.server = RedisServer().start()
        cls.prefix = f"/namedipc-test-{os.getpid()}-{secrets.token_hex(4)}-lock-tests"
        cls.made = []

    @classmethod
    def tearDownClass(cls) -> None:
        for sem in cls.made:
            sem.close()
        cls.server.cleanup()
        super().tearDownClass()

    @classmethod
    def semtype(cls, value: int = 1) -> namedipc.RedisSemaphore:
        sem = namedipc.RedisSemaphore(f"{cls.prefix}-{len(cls.made)}", value, url=cls.server.url(), lease=1.0)
        cls.made.append(sem)
        return sem

    def test_multirelease(self, *args: Any) -> None:
        pytest.skip("RedisSemaphore.release() gives back one slot (each is a lease of its own): no release(n)")

    def test_repr(self, *args: Any) -> None:
        pytest.skip("RedisSemaphore's repr names the server, not BoundedSemaphore's value=v/n")
