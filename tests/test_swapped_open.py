"""Opening a name while another process keeps renaming different files over
it (too short, empty, too long, garbage, a directory, a symbolic link, a
FIFO, a socket, a good object): every open gives a working handle or a clear
exception (CorruptError; ExistentialError in the instant the name is empty),
never a crash. The files placed are never changed once placed."""

from __future__ import annotations

import mmap
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import namedipc
from support.names import segment_file, semaphore_file
from support.processes import Peer

# The swapper: puts one file after another at PATH by rename(2), says READY
# after the first, and stops when its stdin closes.
SWAPPER = r"""
import os, socket, sys, threading, time
kind, path = sys.argv[1], sys.argv[2]
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
good = bytes([1, 0, 0, 0, 0, 0, 0, 0, 128]) + bytes(23) if kind == "sem" else bytes(4096)
foreign = bytes([1, 0, 0, 0, 0, 0, 0, 0, 5]) + bytes(23)
target = path + ".target"
with open(target, "wb") as f:
    f.write(good)

def make(variant, temp):
    contents = {"good": good, "empty": b"", "short": bytes(7), "long": bytes(64),
                "garbage": b"\xff" * 32, "foreign": foreign}
    if variant in contents:
        with open(temp, "wb") as f:
            f.write(contents[variant])
    elif variant == "directory":
        os.mkdir(temp)
    elif variant == "symlink":
        os.symlink(target, temp)
    elif variant == "fifo":
        os.mkfifo(temp)
    else:
        with socket.socket(socket.AF_UNIX) as s:
            s.bind(temp)

def remove(p):
    try:
        os.unlink(p)
    except IsADirectoryError:
        os.rmdir(p)
    except FileNotFoundError:
        pass

variants = ["good", "empty", "short", "long", "garbage", "foreign", "directory", "symlink", "fifo", "socket"]
started = time.monotonic()
i = 0
while not stop.is_set() and time.monotonic() - started < 60:
    temp = f"{path}.swap-{i}"
    make(variants[i % len(variants)], temp)
    for attempt in range(1000):
        try:
            os.rename(temp, path)
            break
        except OSError:
            # A directory and a file cannot replace each other: empty the
            # name first (again, if the opening side created a semaphore there).
            remove(path)
    else:
        raise RuntimeError(f"could not put {temp} at {path}")
    if i == 0:
        print("READY", flush=True)
    i += 1
remove(path)
remove(target)
"""

# The opening side stops once it has made this many opens and seen both a
# handle and a CorruptError, or at the deadline.
OPENS = 2000
DEADLINE = 20.0


@pytest.fixture
def swapper(programs: type[Peer]) -> Iterator[Callable[[str, Path], Peer]]:
    started: list[tuple[Peer, Path]] = []

    def start(kind: str, path: Path) -> Peer:
        peer = programs(sys.executable, "-c", SWAPPER, kind, str(path))
        started.append((peer, path))
        peer.expect("READY")
        return peer

    try:
        yield start
        for peer, _ in started:
            # Closes its stdin, which stops it, and waits for it to exit.
            peer.finish()
    finally:
        for _, path in started:
            # What a swapper that did not finish may have left beside the name.
            for left in path.parent.glob(f"{path.name}.*"):
                if left.is_dir() and not left.is_symlink():
                    left.rmdir()
                else:
                    left.unlink(missing_ok=True)


class Outcomes:
    def __init__(self) -> None:
        self.handles = 0
        self.corrupt = 0
        self.missing = 0
        self.reasons: set[str] = set()

    def run(self, open_once: Callable[[], None]) -> None:
        """Calls `open_once` (which opens, uses and closes a handle) until
        enough was seen or the deadline passes; counts what happened."""
        started = time.monotonic()
        opens = 0
        while time.monotonic() - started < DEADLINE:
            try:
                open_once()
                self.handles += 1
            except namedipc.CorruptError as e:
                self.reasons.add(str(e).split(": ", 1)[-1])
                self.corrupt += 1
            except namedipc.ExistentialError:
                # The name is empty for an instant while a directory goes in or out.
                self.missing += 1
            opens += 1
            if opens >= OPENS and self.handles and self.corrupt:
                break
        assert self.handles and self.corrupt, vars(self)
        # Every CorruptError says what to do about the file.
        assert all("remove it and create it again" in reason for reason in self.reasons), self.reasons


@pytest.mark.parametrize("flags", [0, namedipc.O_CREAT], ids=["existing", "O_CREAT"])
def test_a_semaphore_swapped_during_opens(sem_name: str, flags: int, swapper: Callable[[str, Path], Peer]) -> None:
    swapper("sem", semaphore_file(sem_name))

    def open_once() -> None:
        sem = namedipc.Semaphore(sem_name, flags)
        try:
            assert 0 <= sem.value <= namedipc.SEMAPHORE_VALUE_MAX
            try:
                sem.acquire(0)
            except namedipc.BusyError:
                pass
            else:
                sem.release()
        finally:
            sem.close()

    Outcomes().run(open_once)


def test_a_segment_swapped_during_opens(shm_name: str, swapper: Callable[[str, Path], Peer]) -> None:
    swapper("shm", segment_file(shm_name))

    def open_once() -> None:
        shm = namedipc.SharedMemory(shm_name)
        try:
            # A regular file of any length is a segment, every byte of which can be read.
            if shm.size:
                with mmap.mmap(shm.fd, shm.size, access=mmap.ACCESS_READ) as mapped:
                    assert len(mapped[:]) == shm.size
        finally:
            shm.close_fd()

    Outcomes().run(open_once)
