"""The test suite's own tools (tests/support): a helper that cannot fail, or
that waits in vain, would make every test that uses it prove nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from support.lines import Reader
from support.processes import Peer, read_line
from support.waiting import WAIT, poll_until, process_gone, process_state

# Writes its lines in one write(2), then waits for a line on stdin.
TWO_LINES_AT_ONCE = "import os, sys; os.write(1, b'one\\ntwo\\nthree\\n'); sys.stdin.readline()"


@pytest.fixture
def pipe() -> Iterator[tuple[Reader, int]]:
    """A Reader on a new pipe, and the pipe's write end."""
    read_end, write_end = os.pipe()
    try:
        yield Reader(read_end), write_end
    finally:
        os.close(read_end)
        try:
            os.close(write_end)
        except OSError:
            pass  # the test closed it


def test_expect_reads_lines_a_peer_wrote_at_once(programs: type[Peer]) -> None:
    # A buffered readline() after select() reads all three lines, and the
    # next select() on the pipe then waits for a fourth.
    peer = programs(sys.executable, "-c", TWO_LINES_AT_ONCE)
    assert peer.expect("one") == "one"
    assert peer.expect("two") == "two"
    assert read_line(peer.proc) == "three", "read_line and expect share what was read ahead"
    peer.send("")
    assert peer.finish() == ""


def test_read_line_reads_lines_a_process_wrote_at_once() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", TWO_LINES_AT_ONCE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert [read_line(proc) for _ in range(3)] == ["one", "two", "three"]
    finally:
        proc.kill()
        proc.communicate(timeout=WAIT)


def test_finish_returns_what_was_read_ahead(programs: type[Peer]) -> None:
    peer = programs(sys.executable, "-c", TWO_LINES_AT_ONCE)
    peer.expect("one")
    peer.send("")
    assert peer.finish() == "two\nthree\n"


def test_expect_fails_on_a_wrong_line_the_end_or_no_line_in_time(programs: type[Peer]) -> None:
    wrong = programs(sys.executable, "-c", TWO_LINES_AT_ONCE)
    with pytest.raises(AssertionError, match="peer said 'one', expected 'two'"):
        wrong.expect("two")
    ended = programs(sys.executable, "-c", "print('only', flush=True)")
    ended.expect("only")
    with pytest.raises(AssertionError, match="<end of its output>"):
        ended.expect("")
    silent = programs(sys.executable, "-c", "import sys; sys.stdin.readline()")
    with pytest.raises(AssertionError, match="<no line in time>"):
        silent.expect("", timeout=0.05)


def test_reader_splits_lines_itself(pipe: tuple[Reader, int]) -> None:
    reader, write_end = pipe
    os.write(write_end, b"par")
    assert reader.readline(timeout=0.05) is None, "half a line is not a line"
    os.write(write_end, b"tial\nnext \xe2\x9c")  # a check mark cut in two
    assert reader.readline() == "partial\n"
    assert reader.readline(timeout=0.05) is None
    os.write(write_end, b"\x93 no newline")
    os.close(write_end)
    assert reader.readline() == "next \u2713 no newline", "the rest at end of file, as file.readline()"
    assert reader.readline() == ""
    assert reader.eof


def test_reader_search_hands_out_up_to_the_match(pipe: tuple[Reader, int]) -> None:
    reader, write_end = pipe
    os.write(write_end, b"noise ready ints 3\r\nafter\n")
    assert reader.search(b"ready")
    found = reader.search(rb"ints (\d+)\r?\n")
    assert found is not None and found.group(1) == b"3"
    assert reader.search(b"ready", timeout=0.05) is None, "what a match handed out is not searched again"
    assert reader.readline() == "after\n"
    assert bytes(reader.seen) == b"noise ready ints 3\r\nafter\n"


def test_poll_until_returns_the_first_true_value() -> None:
    calls: list[int] = []

    def third_time() -> str | None:
        calls.append(1)
        return "now" if len(calls) == 3 else None

    assert poll_until(third_time, what="the third call") == "now"
    assert len(calls) == 3


def test_poll_until_names_what_never_came() -> None:
    with pytest.raises(AssertionError, match=r"never reached within 0.05 s: the impossible"):
        poll_until(lambda: False, timeout=0.05, what="the impossible")
    seen = [0]

    def count() -> bool:
        seen[0] += 1
        return False

    with pytest.raises(AssertionError, match=r"checked \d+ times"):
        poll_until(count, timeout=0.05, what=lambda: f"checked {seen[0]} times")
    assert seen[0] >= 2, "checked again at the deadline"


def test_process_state_and_gone() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    assert child.stdin is not None
    try:
        assert process_state(child.pid) not in (None, "Z", "X"), "alive, whatever it is doing"
        assert not process_gone(child.pid)
        child.stdin.close()  # it ends, and stays a zombie until waited for
        poll_until(lambda: process_state(child.pid) == "Z", what="the child a zombie")
        assert process_gone(child.pid)
    finally:
        child.stdin.close()
        child.kill()
        child.wait(WAIT)
    assert process_state(child.pid) is None and process_gone(child.pid)
