"""The `namedipc` command on a shared machine (issue 12, docs/cli.md):
names that carry control characters reach the terminal escaped, never raw
(and `--json` keeps them exact); `--type` filters before any file is
opened; and root's `ls`, `info` and `rm --stale` survive another user
truncating and restoring their robust semaphore's file meanwhile, because
they read it with pread and never map it."""

from __future__ import annotations

import ctypes
import errno
import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

import namedipc
from support.build import cargo_build
from support.lines import reader_for
from support.names import Names, robust_file, segment_file, semaphore_file
from support.redis_server import RedisServer
from support.users import Users, popen_as
from support.waiting import WAIT

pytest_plugins = ["support.redis_fixtures"]

SCRIPT = Path(sys.executable).parent / "namedipc"

# Each name carries what a hostile name can: an escape sequence that would
# colour (or clear) the terminal, a line break followed by a forged table
# row, a tab, DEL, the C1 control CSI, a right-to-left override and a
# backslash; SHOWN is how the text output must show them (Python's repr).
HOSTILE = "-\x1b[31mred\x1b[0m-\nsem     \u2215forged  root   0600  1s   value 1\t-\x7f-\x9b2J-\u202e-\\"
SHOWN = "-\\x1b[31mred\\x1b[0m-\\nsem     \u2215forged  root   0600  1s   value 1\\t-\\x7f-\\x9b2J-\\u202e-\\\\"


def escaped(text: str) -> str:
    """What docs/cli.md says text output shows for `text`: Python's repr
    of it, without the quotes (the names here have no quote in them)."""
    assert "'" not in text and '"' not in text
    return repr(text)[1:-1]


def test_the_expected_form_is_pythons_repr() -> None:
    assert escaped(HOSTILE) == SHOWN


def cli(*args: str, timeout: float = WAIT) -> subprocess.CompletedProcess[bytes]:
    """Runs `namedipc ARGS` (the script) to completion, output as bytes."""
    if not SCRIPT.exists():
        pytest.fail(f"{SCRIPT} is missing: install the package into this virtualenv (maturin develop)")
    return subprocess.run([str(SCRIPT), *args], capture_output=True, timeout=timeout, check=False)


def assert_no_raw_controls(output: bytes) -> None:
    """Nothing a terminal acts on, but the line ends: no C0 control, DEL, C1
    control (in UTF-8, C2 80 to C2 9F) or bidirectional override."""
    text = output.decode("utf-8")
    raw = [c for c in text if c != "\n" and (ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c == "\u202e")]
    assert raw == [], f"raw control characters {raw!r} in {text!r}"


def test_hostile_names_are_escaped_by_ls_and_info_and_exact_in_json(
    names: Names, shm_names: Names, robust_names: Names
) -> None:
    sem_name = names("esc") + HOSTILE
    shm_name = shm_names("esc") + HOSTILE
    robust_name = robust_names("esc") + HOSTILE
    for tracked, name in ((names, sem_name), (shm_names, shm_name), (robust_names, robust_name)):
        tracked.track(name)
    sem = namedipc.Semaphore(sem_name, namedipc.O_CREX, initial_value=1)
    shm = namedipc.SharedMemory(shm_name, namedipc.O_CREX, size=4096)
    robust = namedipc.RobustSemaphore(robust_name, 2)
    try:
        assert robust.acquire()
        listed = cli("ls")
        assert listed.returncode == 0, listed.stderr
        assert_no_raw_controls(listed.stdout)
        assert_no_raw_controls(listed.stderr)
        lines = listed.stdout.decode().splitlines()
        for kind, name in (("sem", sem_name), ("shm", shm_name), ("robust", robust_name)):
            rows = [line for line in lines if escaped(name) in line]
            assert len(rows) == 1 and rows[0].startswith(kind), (name, lines)
        # The forged row is nowhere a row of its own.
        assert not [line for line in lines if line.startswith("sem     \u2215forged")], lines
        for name in (sem_name, shm_name, robust_name):
            shown = cli("info", name)
            assert shown.returncode == 0, shown.stderr
            assert_no_raw_controls(shown.stdout)
            assert escaped(name) in shown.stdout.decode().splitlines()[0]
            document = json.loads(cli("info", name, "--json").stdout)
            assert [o["name"] for o in document["objects"]] == [name]
        document = json.loads(listed_json := cli("ls", "--json").stdout)
        assert_no_raw_controls(listed_json)
        listed_names = {o["name"] for o in document["objects"]}
        assert {sem_name, shm_name, robust_name} <= listed_names
    finally:
        robust.close()
        sem.close()
        shm.close_fd()


def test_rm_escapes_names_in_what_it_prints_and_in_its_errors_and_notes(names: Names, robust_names: Names) -> None:
    sem_name = names.track(names("rm") + HOSTILE)
    namedipc.Semaphore(sem_name, namedipc.O_CREX).close()
    removed = cli("rm", sem_name)
    assert removed.returncode == 0, removed.stderr
    assert_no_raw_controls(removed.stdout)
    assert removed.stdout.decode() == f"removed semaphore {escaped(sem_name)}\n"
    # Not there any more: the error names it, escaped.
    missing = cli("rm", sem_name)
    assert missing.returncode == 1
    assert_no_raw_controls(missing.stderr)
    assert escaped(sem_name) in missing.stderr.decode()
    assert missing.stderr.decode().count("\n") == 1
    # A robust semaphore still open: removed, with a note that names it.
    robust_name = robust_names.track(robust_names("rm") + HOSTILE)
    robust = namedipc.RobustSemaphore(robust_name, 1)
    try:
        removed = cli("rm", robust_name)
        assert removed.returncode == 0, removed.stderr
        assert_no_raw_controls(removed.stdout + removed.stderr)
        assert escaped(robust_name) in removed.stderr.decode()
        assert removed.stdout.decode() == f"removed robust semaphore {escaped(robust_name)}\n"
    finally:
        robust.close()
    # --stale keeps a persistent one, and says so, escaped; then removes an unused one.
    kept_name = robust_names.track(robust_names("stale") + HOSTILE)
    namedipc.RobustSemaphore(kept_name, 1, persistent=True).close()
    kept = cli("rm", "--stale", kept_name)
    assert kept.returncode == 0, kept.stderr
    assert_no_raw_controls(kept.stderr)
    assert f"kept robust semaphore '{escaped(kept_name)}'" in kept.stderr.decode()
    assert robust_file(kept_name).exists()


def test_runs_messages_escape_the_name(robust_names: Names) -> None:
    name = robust_names.track(robust_names("run") + HOSTILE)
    held = namedipc.RobustSemaphore(name, 1)
    try:
        assert held.acquire(timeout=WAIT)
        done = cli("run", name, "--timeout", "0", "--", sys.executable, "-c", "pass")
        assert done.returncode == 75, done.stderr
        assert_no_raw_controls(done.stdout + done.stderr)
        message = done.stderr.decode()
        assert escaped(name) in message and message.count("\n") == 1, message
    finally:
        held.close()


def test_redis_semaphores_names_are_escaped_too(redis_server: RedisServer) -> None:
    url = redis_server.url()
    name = f"/cli-{os.getpid()}-{os.urandom(4).hex()}{HOSTILE}"
    sem = namedipc.RedisSemaphore(name, 2, url=url)
    try:
        assert sem.acquire(timeout=WAIT)
        for args in (["ls", "--redis", url], ["info", "--redis", url, name]):
            done = cli(*args)
            assert done.returncode == 0, done.stderr
            assert_no_raw_controls(done.stdout + done.stderr)
            assert escaped(name) in done.stdout.decode(), args
            document = json.loads(cli(*args, "--json").stdout)
            assert [o["name"] for o in document["objects"]] == [name]
        sem.release()
        removed = cli("rm", "--redis", url, name)
        assert removed.returncode == 0, removed.stderr
        assert removed.stdout.decode() == f"removed redis semaphore {escaped(name)}\n"
    finally:
        sem.close()


def test_a_name_that_is_not_utf8_is_left_out_of_the_listing(shm_names: Names) -> None:
    name = shm_names("bytes")
    path = os.fsencode(segment_file(name)) + b"-\xff\x1b[2J"
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    os.close(fd)
    try:
        listed = cli("ls", "--type", "shm")
        assert listed.returncode == 0, listed.stderr
        assert b"\xff" not in listed.stdout and b"\x1b" not in listed.stdout
        assert_no_raw_controls(listed.stdout + listed.stderr)
        assert name not in listed.stdout.decode()
        document = json.loads(cli("ls", "--type", "shm", "--json").stdout)
        assert not [o for o in document["objects"] if o["name"].startswith(name)]
    finally:
        os.unlink(path)


# fanotify(7), through libc: the kernel's own record of which process
# opened a file (other processes on the machine may list /dev/shm meanwhile).
FAN_CLOEXEC = 0x1
FAN_NONBLOCK = 0x2
FAN_MARK_ADD = 0x1
FAN_OPEN = 0x20
AT_FDCWD = -100
EVENT = struct.Struct("=IBBHQii")  # struct fanotify_event_metadata


class Opens:
    """Which of some files a process opened, as the kernel reports it."""

    def __init__(self, paths: list[Path]) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.fanotify_mark.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_uint64, ctypes.c_int, ctypes.c_char_p]
        self.fd = self.libc.fanotify_init(FAN_CLOEXEC | FAN_NONBLOCK, os.O_RDONLY | os.O_CLOEXEC)
        if self.fd < 0:
            error = ctypes.get_errno()
            if error == errno.EPERM:
                pytest.skip("fanotify, which names the process that opened a file, needs CAP_SYS_ADMIN (root)")
            raise OSError(error, os.strerror(error))
        for path in paths:
            if self.libc.fanotify_mark(self.fd, FAN_MARK_ADD, FAN_OPEN, AT_FDCWD, os.fsencode(path)) != 0:
                error = ctypes.get_errno()
                os.close(self.fd)
                raise OSError(error, os.strerror(error), str(path))

    def take(self, pid: int) -> set[Path]:
        """The files `pid` opened since the last call (the events of other
        processes are dropped)."""
        seen: set[Path] = set()
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                return seen
            offset = 0
            while offset < len(chunk):
                length, _version, _, _, _mask, fd, opener = EVENT.unpack_from(chunk, offset)
                if fd >= 0:
                    try:
                        if opener == pid:
                            seen.add(Path(os.readlink(f"/proc/self/fd/{fd}")))
                    finally:
                        os.close(fd)
                offset += length

    def close(self) -> None:
        os.close(self.fd)


def cli_with_pid(*args: str) -> tuple[subprocess.CompletedProcess[bytes], int]:
    """Runs `namedipc ARGS` (the script, which runs the command in its own
    process) to completion; returns the result and the process's pid."""
    with subprocess.Popen([str(SCRIPT), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        out, err = proc.communicate(timeout=WAIT)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), proc.pid


def test_type_filters_before_any_file_of_another_kind_is_opened(
    names: Names, robust_names: Names, shm_names: Names
) -> None:
    base = names("kinds")
    robust_names.track(base)
    shm_names.track(base)
    sem = namedipc.Semaphore(base, namedipc.O_CREX)
    shm = namedipc.SharedMemory(base, namedipc.O_CREX, size=4096)
    robust = namedipc.RobustSemaphore(base, 1)
    files = {"sem": semaphore_file(base), "shm": segment_file(base), "robust": robust_file(base)}
    opens = Opens(list(files.values()))
    try:
        # The control: without --type, `ls` and `info` open the semaphore's
        # file and the robust semaphore's (a segment's size is fstat's).
        for args in (["ls"], ["info", base]):
            done, pid = cli_with_pid(*args)
            assert done.returncode == 0, done.stderr
            assert opens.take(pid) == {files["sem"], files["robust"]}, args
        for kind in ("sem", "shm", "mq", "robust"):
            for args in (["ls", "--type", kind], ["info", "--type", kind, base], ["ls", "--type", kind, "--json"]):
                done, pid = cli_with_pid(*args)
                assert done.returncode in (0, 1), done.stderr
                opened = opens.take(pid)
                allowed = {files[kind]} if kind in ("sem", "robust") else set()
                assert opened == allowed, (args, opened)
    finally:
        opens.close()
        robust.close()
        sem.close()
        shm.close_fd()


# The other user's side of the truncate/restore loop. It makes its robust
# semaphore's file from a template (a real file's bytes, with one process
# record registered and one slot held; it writes its own pid and uid into
# the record) and holds the record's liveness lock, as a process attached
# to it does. Told to go on, it truncates the file to nothing and writes
# its bytes back, round after round, as fast as it can, printing how many
# rounds it has done every hundred, until SIGUSR1 comes; then it prints the
# total.
TRUNCATOR = r"""
import os, signal, struct, sys, fcntl
path, template = sys.argv[1], bytearray(bytes.fromhex(sys.argv[2]))
stop = []
signal.signal(signal.SIGUSR1, lambda *_: stop.append(True))
RECORD, R_PID, R_UID, LOCK_BASE = 64, 8, 12, 1 << 40
struct.pack_into("=II", template, RECORD + R_PID, os.getpid(), os.getuid())
data = bytes(template)
fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
os.pwrite(fd, data, 0)
fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, LOCK_BASE, os.SEEK_SET)
print("ready", os.getpid(), flush=True)
sys.stdin.readline()
rounds = 0
while not stop:
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    rounds += 1
    if rounds % 100 == 0:
        print("rounds", rounds, flush=True)
print("done", rounds, flush=True)
"""


def template_bytes(robust_names: Names) -> bytes:
    """A robust semaphore's file with 2 slots, its first process record
    registered and one slot held by it."""
    name = robust_names("template")
    sem = namedipc.RobustSemaphore(name, 2)
    try:
        assert sem.acquire(timeout=WAIT)
        data = robust_file(name).read_bytes()
        sem.release()
    finally:
        sem.close()
    state = int.from_bytes(data[64:72], sys.byteorder)
    assert state & 1 == 1, "the first record is the one registered"
    return data


# How many times at least each command runs while the file is truncated
# and restored, and how long the loop may take at most (a loaded 2-core
# machine included); the peer must do at least ROUNDS rounds meanwhile.
CALLS_EACH = 150
ROUNDS = 1000
BUDGET = 30.0


@pytest.fixture(scope="module")
def rust_binary() -> Path:
    """The plain Rust binary: the quickest way to start the command many times."""
    return cargo_build("the namedipc binary", "--features", "cli", "--bin", "namedipc")


def test_root_survives_another_user_truncating_and_restoring_a_robust_semaphore(
    users: Users, robust_names: Names, rust_binary: Path
) -> None:
    name = robust_names("truncated")
    path = robust_file(name)
    peer = popen_as(users.attacker, TRUNCATOR, str(path), template_bytes(robust_names).hex())
    try:
        assert peer.stdout is not None
        lines = reader_for(peer.stdout)
        first = lines.readline(WAIT)
        if first is None or not first.startswith("ready "):
            peer.kill()
            _, err = peer.communicate(timeout=WAIT)
            pytest.fail(f"the peer said {first!r}, not ready; stderr:\n{err}")
        peer_pid = int(first.split()[1])
        assert path.stat().st_uid == users.attacker.uid
        # Before the loop: the other user's process is attached, and holds a slot.
        seen = json.loads(
            subprocess.run(
                [str(rust_binary), "info", "--type", "robust", name, "--json"],
                capture_output=True,
                timeout=WAIT,
                check=True,
            ).stdout
        )["objects"][0]
        assert (seen["uid"], seen["attached"], seen["free"]) == (users.attacker.uid, 1, 1), seen
        assert [(h["pid"], h["uid"], h["alive"]) for h in seen["holders"]] == [(peer_pid, users.attacker.uid, True)]
        assert peer.stdin is not None
        peer.stdin.write("go\n")
        peer.stdin.flush()
        commands = (["ls"], ["info", name], ["rm", "--stale", name])
        outcomes: dict[str, int] = {}
        calls = 0
        rounds_seen = 0
        started = time.monotonic()
        while calls < CALLS_EACH * len(commands) or rounds_seen < ROUNDS:
            assert time.monotonic() - started < BUDGET, (
                f"{calls} calls and {rounds_seen} rounds in {BUDGET} s; the peer said {lines.take()!r}"
            )
            for args in commands:
                done = subprocess.run(
                    [str(rust_binary), *args], capture_output=True, text=True, timeout=WAIT, check=False
                )
                calls += 1
                assert done.returncode in (0, 1), (
                    f"namedipc {' '.join(args)} ended with {done.returncode} (a signal if negative): {done.stderr}"
                )
                if done.returncode == 1:
                    # A clean error: one line or more, each a message of namedipc.
                    messages = done.stderr.splitlines()
                    assert messages and all(m.startswith("namedipc: ") for m in messages), done.stderr
                key = f"{args[0]} exit {done.returncode}"
                outcomes[key] = outcomes.get(key, 0) + 1
            while (line := lines.readline(0)) is not None and line.startswith("rounds "):
                rounds_seen = int(line.split()[1])
        elapsed = time.monotonic() - started
        # rm --stale never removed it: a live process was attached all along.
        assert path.exists()
        peer.send_signal(signal.SIGUSR1)
        while (line := lines.readline(WAIT)) is not None and line.startswith("rounds "):
            pass
        assert line is not None and line.startswith("done "), f"peer said {line!r}"
        total = int(line.split()[1])
        assert peer.wait(WAIT) == 0, peer.stderr.read() if peer.stderr else ""
        assert total >= ROUNDS
        print(f"\n{total} truncate/restore rounds during {calls} CLI calls in {elapsed:.1f} s: {outcomes}")
    finally:
        if peer.poll() is None:
            peer.kill()
        peer.communicate(timeout=WAIT)
