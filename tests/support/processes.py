"""Independent processes (separate programs, not forked copies of the test):
peers spoken to line by line, programs run to completion, a process of
another user; and a call run in a background thread of the test itself.
Every wait on them is bounded."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from support.lines import reader_for
from support.waiting import WAIT

HELPERS = Path(__file__).resolve().parent.parent / "helpers"


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
        assert self.proc.stdout is not None
        self.lines = reader_for(self.proc.stdout)

    def expect(self, wanted: str, timeout: float = WAIT) -> str:
        """Reads the next line (waiting at most `timeout` seconds for it) and
        checks that it starts with `wanted`; returns it, stripped."""
        line = self.lines.readline(timeout)
        if line is None:
            said = "<no line in time>"
        elif line == "":
            said = "<end of its output>"
        else:
            said = line.strip()
            if said.startswith(wanted):
                return said
        self.proc.kill()
        _, err = self.proc.communicate(timeout=WAIT)
        raise AssertionError(f"peer said {said!r}, expected {wanted!r}; stderr:\n{err}")

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def ask(self, request: str, wanted: str) -> str:
        """Sends a line and checks the answer."""
        self.send(request)
        return self.expect(wanted)

    def communicate(self, timeout: float = WAIT) -> tuple[str, str]:
        """Waits (bounded) for the process to exit; returns the rest of its
        stdout (also what was read ahead of the lines expected) and its stderr."""
        out, err = self.proc.communicate(timeout=timeout)
        return self.lines.take() + (out or ""), err or ""

    def finish(self) -> str:
        """Waits for the process to exit successfully; returns the rest of its output."""
        out, err = self.communicate()
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


def read_line(proc: subprocess.Popen[str], timeout: float = WAIT) -> str:
    """The next line `proc` prints, stripped ("" at the end of its output),
    waiting at most `timeout` seconds (readline alone would block for ever
    if the process hung). Reads through the same Reader as a Peer of `proc`."""
    assert proc.stdout is not None
    line = reader_for(proc.stdout).readline(timeout)
    if line is None:
        proc.kill()
        _, err = proc.communicate(timeout=WAIT)
        raise AssertionError(f"no output within {timeout} s; stderr:\n{err}")
    return line.strip()


def run_program(*argv: str | Path, timeout: float = WAIT) -> subprocess.CompletedProcess[str]:
    """Runs a program to completion, bounded by `timeout`."""
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout, check=False)


def program_ok(*argv: str | Path, timeout: float = WAIT) -> str:
    """Runs a program, checks that it succeeded, and returns its stdout, stripped."""
    done = run_program(*argv, timeout=timeout)
    command = " ".join(str(a) for a in argv)
    assert done.returncode == 0, f"{command} failed ({done.returncode}): {done.stderr}"
    return done.stdout.strip()


def run_helper(*args: str, timeout: float = WAIT) -> subprocess.CompletedProcess[str]:
    """Runs semctl.py to completion and returns its result."""
    return run_program(sys.executable, HELPERS / "semctl.py", *args, timeout=timeout)


def run_as_other_user(code: str) -> subprocess.CompletedProcess[str]:
    """Runs Python `code` in a process of another, unprivileged user. Root
    ignores permission bits, so when the tests run as root the process
    imports namedipc first (the interpreter lives under /root) and then
    drops to the user "nobody"."""
    preamble = "import namedipc\n"
    if os.geteuid() == 0:
        preamble += "import os\nos.setgroups([])\nos.setgid(65534)\nos.setuid(65534)\n"
    return run_program(sys.executable, "-c", preamble + code)


class Background:
    """Runs `call` in a daemon thread and keeps what it returned or raised,
    so that the test can act while the call blocks, then check."""

    def __init__(self, call: Callable[[], object]) -> None:
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
