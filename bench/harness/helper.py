"""A helper process (Helper): a ping-pong side, the shm partner, a robust
holder or the C floor, driven one line at a time; and the sample that a pair
of ping-pong sides gives.
"""

from __future__ import annotations

import os
import select
import subprocess
import time
from collections.abc import Callable, Sequence

# A helper that has not answered in this long is stuck (its partner died
# while it waited on a semaphore, say): better to fail than to hang.
REPLY_TIMEOUT_S = 60.0


class Helper:
    """A long-lived child process (a ping-pong side, the shm partner, or the
    C floor) that answers one line per command line. A process per sample
    would put process start-up, page faults and cold caches into every
    sample."""

    def __init__(self, label: str, argv: Sequence[str]) -> None:
        self.label = label
        # A session of its own keeps a terminal's Ctrl-C away from the
        # helper: the harness gets it and closes the helpers in order.
        self._proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
            start_new_session=True,
        )
        self._pending = b""

    def ask(self, command: int | str) -> str:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        try:
            self._proc.stdin.write(f"{command}\n".encode())
        except BrokenPipeError:
            raise RuntimeError(f"{self.label}: exited with status {self._proc.wait()}") from None
        return self.read_line()

    def read_line(self) -> str:
        """The helper's next line."""
        assert self._proc.stdout is not None
        # Raw reads with a deadline rather than readline(), so that a helper
        # that hangs or dies is reported instead of stalling the run.
        fd = self._proc.stdout.fileno()
        deadline = time.monotonic() + REPLY_TIMEOUT_S
        while b"\n" not in self._pending:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise RuntimeError(f"{self.label}: no answer in {REPLY_TIMEOUT_S:.0f} s")
            chunk = os.read(fd, 4096)
            if not chunk:
                raise RuntimeError(f"{self.label}: exited with status {self._proc.wait()}")
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        return line.decode()

    def kill(self) -> None:
        """SIGKILLs the helper and reaps it."""
        self._proc.kill()
        self._proc.wait()

    def close(self) -> None:
        # EOF on stdin tells the helper to exit; one stuck in a semaphore
        # wait cannot see it, so it is killed after a grace period. Its
        # stdout stays open until it is gone: a helper interrupted mid-sample
        # still writes its answer, and must not die of a broken pipe.
        if self._proc.stdin is not None:
            try:
                self._proc.stdin.close()
            except OSError:
                pass
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()


def round_trips(side_a: Helper, side_b: Helper, n: int) -> Callable[[], int]:
    """One sample of a ping-pong row: n round trips, timed inside side a."""

    def job() -> int:
        # b answers before it starts serving, so its stdin read is not timed.
        if side_b.ask(n) != "ready":
            raise RuntimeError(f"{side_b.label}: unexpected answer")
        return int(side_a.ask(n))

    return job
