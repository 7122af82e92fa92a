"""Reading what a process writes, line by line, with a deadline.

A pipe's file object cannot be read that way: select() on it says whether
the *descriptor* has data, while its readline() reads ahead into a buffer
of its own. A peer that writes two lines at once leaves the second in that
buffer, select() then says nothing is ready, and the test waits in vain
for a line it already has. So the Reader here reads the descriptor itself
(os.read, after select) into a buffer it owns, and splits lines there.

Whoever reads a stream must read it through the same Reader, or one would
keep lines the other is waiting for: `reader_for(stream)` hands out the one
Reader of a stream. Read a stream's rest through it too (`Reader.take`):
what it has read ahead is no longer in the stream.
"""

from __future__ import annotations

import errno
import os
import re
import select
import time
import weakref
from typing import IO, Any

from support.waiting import WAIT


class Reader:
    """Reads the descriptor `fd` into its own buffer and hands out lines and
    matches of a pattern, each waited for until a deadline."""

    def __init__(self, fd: int, encoding: str = "utf-8", errors: str = "strict") -> None:
        self.fd = fd
        self.encoding = encoding
        self.errors = errors
        self.seen = bytearray()  # everything read so far, for messages
        self.eof = False
        self._pending = bytearray()  # read, not yet handed out

    def _fill(self, deadline: float) -> bool:
        """Reads what the descriptor has, waiting for it until `deadline`;
        False if nothing came by then."""
        if self.eof:
            return False
        ready, _, _ = select.select([self.fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            return False
        try:
            chunk = os.read(self.fd, 65536)
        except OSError as e:
            if e.errno != errno.EIO:  # a terminal whose other side has closed
                raise
            chunk = b""
        if not chunk:
            self.eof = True
        self._pending += chunk
        self.seen += chunk
        return True

    def _decode(self, data: bytes) -> str:
        return data.decode(self.encoding, self.errors)

    def readline(self, timeout: float = WAIT) -> str | None:
        """The next line, with its newline, as a file's readline() gives it:
        what is left without a newline at end of file, "" once at the end.
        None if no whole line came within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            end = self._pending.find(b"\n")
            if end >= 0:
                return self._decode(self.take_bytes(end + 1))
            if self.eof:
                return self._decode(self.take_bytes(len(self._pending)))
            if not self._fill(deadline):
                return None

    def search(self, pattern: bytes | re.Pattern[bytes], timeout: float = WAIT) -> re.Match[bytes] | None:
        """Waits (at most `timeout` seconds) until what has been read and not
        yet handed out matches `pattern`; returns the match and hands out
        everything up to its end. None if there was no match in time (or
        before end of file)."""
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, bytes(self._pending))
            if found:
                self.take_bytes(found.end())
                return found
            if not self._fill(deadline):
                return None

    def take_bytes(self, count: int) -> bytes:
        taken = bytes(self._pending[:count])
        del self._pending[:count]
        return taken

    def take(self) -> str:
        """Hands out, decoded, everything read and not yet handed out (not
        waiting for more): to put before what a later read of the stream gets."""
        return self._decode(self.take_bytes(len(self._pending)))


_READERS: weakref.WeakKeyDictionary[IO[Any], Reader] = weakref.WeakKeyDictionary()


def reader_for(stream: IO[Any]) -> Reader:
    """The one Reader of `stream` (a pipe from subprocess.Popen), made on first use."""
    reader = _READERS.get(stream)
    if reader is None:
        reader = Reader(
            stream.fileno(), getattr(stream, "encoding", None) or "utf-8", getattr(stream, "errors", None) or "strict"
        )
        _READERS[stream] = reader
    return reader
