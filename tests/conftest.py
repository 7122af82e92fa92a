"""Shared fixtures: unique object names that are always removed, and
independent helper processes (separate scripts, not forked copies)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

import namedipc

HELPERS = Path(__file__).parent / "helpers"

# Every wait in a test is bounded by this many seconds.
WAIT = 10.0


def _remove_planted(path: Path) -> None:
    """Removes whatever a test left at `path`: a file, link, FIFO or directory."""
    if path.is_dir() and not path.is_symlink():
        path.rmdir()
    else:
        path.unlink(missing_ok=True)


def remove_semaphore(name: str) -> None:
    try:
        namedipc.unlink_semaphore(name)
    except namedipc.ExistentialError:
        pass
    # A test may plant a file at the name that is not a semaphore.
    _remove_planted(Path("/dev/shm") / f"sem.{name.lstrip('/')}")


def remove_segment(name: str) -> None:
    # A segment is a file in /dev/shm; so is anything a test planted instead.
    _remove_planted(Path("/dev/shm") / name.lstrip("/"))


def remove_queue(name: str) -> None:
    try:
        namedipc.unlink_message_queue(name)
    except namedipc.ExistentialError:
        pass


def remove_robust(name: str) -> None:
    # A robust semaphore is the file /dev/shm/namedipc-robust.<name>.
    _remove_planted(Path("/dev/shm") / f"namedipc-robust.{name.lstrip('/')}")


class Names:
    """Hands out unique names (pid + random) and removes whatever is at
    them at teardown, also when the test fails."""

    def __init__(self, remove: Callable[[str], None], label: str) -> None:
        self._prefix = f"/namedipc-test-{os.getpid()}-{secrets.token_hex(4)}"
        self._remove = remove
        self._label = label
        self._made: list[str] = []

    def __call__(self, label: str | None = None) -> str:
        name = f"{self._prefix}-{label or self._label}-{len(self._made)}"
        self._made.append(name)
        return name

    def track(self, name: str) -> str:
        """Registers a name chosen elsewhere (e.g. a random one) for removal."""
        self._made.append(name)
        return name

    def cleanup(self) -> None:
        for name in self._made:
            self._remove(name)


def _names(remove: Callable[[str], None], label: str) -> Iterator[Names]:
    made = Names(remove, label)
    try:
        yield made
    finally:
        made.cleanup()


@pytest.fixture
def names() -> Iterator[Names]:
    """Unique semaphore names, removed after the test."""
    yield from _names(remove_semaphore, "sem")


@pytest.fixture
def sem_name(names: Names) -> str:
    """One unique semaphore name, removed after the test."""
    return names()


@pytest.fixture
def shm_names() -> Iterator[Names]:
    """Unique shared memory names, removed after the test."""
    yield from _names(remove_segment, "shm")


@pytest.fixture
def shm_name(shm_names: Names) -> str:
    """One unique shared memory name, removed after the test."""
    return shm_names()


@pytest.fixture
def mq_names() -> Iterator[Names]:
    """Unique message queue names, removed after the test."""
    yield from _names(remove_queue, "mq")


@pytest.fixture
def mq_name(mq_names: Names) -> str:
    """One unique message queue name, removed after the test."""
    return mq_names()


@pytest.fixture
def robust_names() -> Iterator[Names]:
    """Unique robust semaphore names, removed after the test."""
    yield from _names(remove_robust, "robust")


@pytest.fixture
def robust_name(robust_names: Names) -> str:
    """One unique robust semaphore name, removed after the test."""
    return robust_names()


class Peer:
    """An independent process, spoken to line by line over its stdin and stdout."""

    def __init__(self, *argv: str | Path) -> None:
        self.proc = subprocess.Popen(
            [str(a) for a in argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def expect(self, wanted: str, timeout: float = WAIT) -> str:
        """Reads the next line (waiting at most `timeout` seconds for it) and
        checks that it starts with `wanted`."""
        import select

        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline().strip() if ready else "<no line in time>"
        if not line.startswith(wanted):
            self.proc.kill()
            _, err = self.proc.communicate(timeout=WAIT)
            raise AssertionError(f"peer said {line!r}, expected {wanted!r}; stderr:\n{err}")
        return line

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def ask(self, request: str, wanted: str) -> str:
        """Sends a line and checks the answer."""
        self.send(request)
        return self.expect(wanted)

    def finish(self) -> str:
        """Waits for the process to exit successfully; returns the rest of its output."""
        out, err = self.proc.communicate(timeout=WAIT)
        assert self.proc.returncode == 0, f"peer failed ({self.proc.returncode}): {err}"
        return out

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=WAIT)


class Helper(Peer):
    """An independent Python process running tests/helpers/semctl.py."""

    def __init__(self, *args: str) -> None:
        super().__init__(sys.executable, HELPERS / "semctl.py", *args)


P = TypeVar("P", bound=Peer)
T = TypeVar("T")


def tracking(cls: type[P]) -> Iterator[type[P]]:
    """For a fixture: yields a subclass of `cls` whose processes are all
    killed at teardown, whatever the test did."""
    started: list[Peer] = []

    class Tracked(cls):  # type: ignore[valid-type,misc]
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            started.append(self)

    try:
        yield Tracked
    finally:
        for peer in started:
            peer.kill()


@pytest.fixture
def programs() -> Iterator[type[Peer]]:
    """Starts any program as a Peer; any still running at teardown are killed."""
    yield from tracking(Peer)


@pytest.fixture
def helper() -> Iterator[type[Helper]]:
    """Starts semctl.py helper processes; any still running at teardown are killed."""
    yield from tracking(Helper)


def read_line(proc: subprocess.Popen[str], timeout: float = WAIT) -> str:
    """The next line `proc` prints, waiting at most `timeout` seconds
    (readline alone would block for ever if the process hung)."""
    import select

    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        proc.kill()
        _, err = proc.communicate(timeout=WAIT)
        raise AssertionError(f"no output within {timeout} s; stderr:\n{err}")
    return proc.stdout.readline().strip()


def run_program(*argv: str | Path, timeout: float = WAIT) -> subprocess.CompletedProcess[str]:
    """Runs a program to completion, bounded by `timeout`."""
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout, check=False)


def program_ok(*argv: str | Path, timeout: float = WAIT) -> str:
    """Runs a program, checks that it succeeded, and returns its stdout, stripped."""
    done = run_program(*argv, timeout=timeout)
    command = " ".join(str(a) for a in argv)
    assert done.returncode == 0, f"{command} failed ({done.returncode}): {done.stderr}"
    return done.stdout.strip()


def compile_c(source: Path, out_dir: Path) -> Path:
    """Compiles one of the C peers in tests/helpers with gcc (strict warnings),
    failing the test with a clear message if gcc is missing."""
    import shutil

    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.fail(
            f"gcc is not installed, but the C interop tests need it to compile {source.name}; "
            "install it (./dev.sh test does: apt-get install gcc libc6-dev)"
        )
    binary = out_dir / source.stem
    build = subprocess.run(
        [gcc, "-std=c11", "-Wall", "-Wextra", "-Werror", "-O1", "-o", str(binary), str(source), "-pthread", "-lrt"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert build.returncode == 0, f"gcc failed to compile {source}:\n{build.stderr}"
    return binary


def cargo_build(what: str, *selector: str) -> Path:
    """Builds one target of the core crate (`selector`: cargo's options that
    name it, e.g. "--example", "semctl") and returns the executable cargo
    reports; fails the test with a clear message if cargo is missing or
    the build fails."""
    import json
    import shutil

    cargo = shutil.which("cargo")
    if cargo is None:
        pytest.fail(f"cargo is not on PATH, but the tests build {what} with it")
    build = subprocess.run(
        [cargo, "build", "-q", "-p", "namedipc", *selector, "--message-format=json"],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert build.returncode == 0, f"cargo build of {what} failed:\n{build.stderr}"
    target = selector[-1]
    executables = [
        message["executable"]
        for message in map(json.loads, build.stdout.splitlines())
        if message.get("reason") == "compiler-artifact"
        and message["target"]["name"] == target
        and message.get("executable")
    ]
    assert len(executables) == 1, f"cargo reported no single {target} executable: {executables}"
    return Path(executables[0])


def run_helper(*args: str, timeout: float = WAIT) -> subprocess.CompletedProcess[str]:
    """Runs semctl.py to completion and returns its result."""
    return subprocess.run(
        [sys.executable, str(HELPERS / "semctl.py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class Background:
    """Runs `call` in a daemon thread and keeps what it returned or raised,
    so that the test can act while the call blocks, then check."""

    def __init__(self, call: Callable[[], object]) -> None:
        import threading

        self._outcome: list[object] = []

        def run() -> None:
            try:
                self._outcome.append(call())
            except BaseException as e:  # noqa: BLE001 - handed to the test by join()
                self._outcome.append(e)

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float = WAIT) -> object:
        """Waits (bounded) for the call to end; returns what it returned or raised."""
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"the call in the background did not return within {timeout} s"
        assert len(self._outcome) == 1, self._outcome
        return self._outcome[0]


def blocked_waiters(name: str) -> int:
    """How many threads are blocked in a wait on the semaphore `name`: glibc
    keeps the count in the high half of the first 64-bit word of the file."""
    data = (Path("/dev/shm") / f"sem.{name.lstrip('/')}").read_bytes()
    return int.from_bytes(data[4:8], sys.byteorder)


def robust_waiters(name: str) -> int:
    """How many processes are in a blocking wait on the robust semaphore
    `name`: the `waiters` word of its file's header (offset 28)."""
    data = (Path("/dev/shm") / f"namedipc-robust.{name.lstrip('/')}").read_bytes()
    return int.from_bytes(data[28:32], sys.byteorder)


def wait_until_blocked(
    name: str, count: int = 1, timeout: float = WAIT, waiters: Callable[[str], int] = blocked_waiters
) -> None:
    """Returns once `count` waiters are blocked on `name` (a test waits for
    the state of the semaphore itself, not for time to pass); `waiters`
    reads the count (default: a POSIX semaphore's, see `robust_waiters`)."""
    import time

    deadline = time.monotonic() + timeout
    while waiters(name) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{count} waiter(s) never blocked on {name}")
        time.sleep(0.0005)


def run_as_other_user(code: str) -> subprocess.CompletedProcess[str]:
    """Runs Python `code` in a process of another, unprivileged user. Root
    ignores permission bits, so when the tests run as root the process
    imports namedipc first (the interpreter lives under /root) and then
    drops to the user "nobody"."""
    preamble = "import namedipc\n"
    if os.geteuid() == 0:
        preamble += "import os\nos.setgroups([])\nos.setgid(65534)\nos.setuid(65534)\n"
    return subprocess.run(
        [sys.executable, "-c", preamble + code],
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Runs a test's coroutine on a fresh event loop, bounded by 3 * WAIT."""
    import asyncio

    async def bounded() -> T:
        async with asyncio.timeout(WAIT * 3):
            return await coroutine

    return asyncio.run(bounded())


def aio_threads() -> list[threading.Thread]:
    """The asyncio glue's semaphore waiter threads alive now."""
    return [t for t in threading.enumerate() if t.name.startswith("namedipc-aio")]


def join_aio_threads() -> None:
    """Waits (bounded) for every semaphore waiter thread to end: one with no
    waiter left must not live on."""
    for thread in aio_threads():
        thread.join(WAIT)
        assert not thread.is_alive(), f"{thread.name} outlived its waiters"


async def settle() -> None:
    """Joins the waiter threads, then lets the loop run what they handed it
    (a slot for a waiter that is gone goes back to the semaphore there)."""
    import asyncio

    join_aio_threads()
    for _ in range(3):
        await asyncio.sleep(0)
