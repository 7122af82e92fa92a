"""namedipc.Semaphore as a drop-in for posix_ipc 1.3's Semaphore, including
the cases where posix_ipc crashes or misbehaves and namedipc raises."""

from __future__ import annotations

import errno
import os
import pickle
import re
import socket
import time
from pathlib import Path
from typing import Any

import posix_ipc as real_posix_ipc  # the original, to compare
import pytest

import namedipc
import namedipc as posix_ipc  # the drop-in spelling users write
from support.names import Names
from support.processes import Background, run_as_other_user
from support.waiting import WAIT, wait_until_blocked


def sem_file(name: str) -> Path:
    return Path("/dev/shm") / f"sem.{name.lstrip('/')}"


def test_module_surface_matches_posix_ipc() -> None:
    for attr in [
        "Semaphore",
        "unlink_semaphore",
        "Error",
        "SignalError",
        "PermissionsError",
        "ExistentialError",
        "BusyError",
        "O_CREAT",
        "O_EXCL",
        "O_CREX",
        "O_TRUNC",
        "O_RDONLY",
        "O_WRONLY",
        "O_RDWR",
        "O_NONBLOCK",
        "PAGE_SIZE",
        "SEMAPHORE_TIMEOUT_SUPPORTED",
        "SEMAPHORE_VALUE_SUPPORTED",
        "SEMAPHORE_VALUE_MAX",
        "VERSION",
    ]:
        assert hasattr(posix_ipc, attr), attr
    assert posix_ipc.O_CREX == posix_ipc.O_CREAT | posix_ipc.O_EXCL
    assert posix_ipc.SEMAPHORE_VALUE_MAX == 2**31 - 1
    assert posix_ipc.PAGE_SIZE == os.sysconf("SC_PAGE_SIZE")
    assert posix_ipc.SEMAPHORE_TIMEOUT_SUPPORTED is True
    assert namedipc.__version__ == namedipc.VERSION
    assert re.fullmatch(r"\d+\.\d+\.\d+", namedipc.VERSION)
    for cls in [posix_ipc.SignalError, posix_ipc.PermissionsError, posix_ipc.ExistentialError, posix_ipc.BusyError]:
        assert issubclass(cls, posix_ipc.Error)


def test_create_open_acquire_release_unlink(sem_name: str) -> None:
    creator = posix_ipc.Semaphore(sem_name, posix_ipc.O_CREX, initial_value=2)
    other = posix_ipc.Semaphore(sem_name)
    assert (creator.name, creator.mode, creator.value) == (sem_name, 0o600, 2)
    other.acquire()
    creator.acquire(0)
    assert creator.value == 0
    with pytest.raises(posix_ipc.BusyError):
        other.acquire(0)
    creator.release()
    assert other.value == 1
    creator.unlink()
    assert not sem_file(sem_name).exists()
    # Handles stay usable after the name is gone.
    other.acquire(0)
    other.close()
    creator.close()


def test_o_creat_opens_an_existing_semaphore(sem_name: str) -> None:
    first = posix_ipc.Semaphore(sem_name, posix_ipc.O_CREAT, initial_value=3)
    second = posix_ipc.Semaphore(sem_name, posix_ipc.O_CREAT, initial_value=9)
    assert second.value == 3
    first.unlink()


def test_errors_for_existence(sem_name: str) -> None:
    with pytest.raises(posix_ipc.ExistentialError, match="does not exist"):
        posix_ipc.Semaphore(sem_name)
    posix_ipc.Semaphore(sem_name, posix_ipc.O_CREX)
    with pytest.raises(posix_ipc.ExistentialError, match="already exists"):
        posix_ipc.Semaphore(sem_name, posix_ipc.O_CREX)
    posix_ipc.unlink_semaphore(sem_name)
    with pytest.raises(posix_ipc.ExistentialError, match="does not exist"):
        posix_ipc.unlink_semaphore(sem_name)


def test_permissions_error(sem_name: str) -> None:
    posix_ipc.Semaphore(sem_name, posix_ipc.O_CREX, mode=0o600)
    os.chmod(sem_file(sem_name), 0o600)  # whatever the umask did
    # Another user may not open it. Root ignores mode bits, so as root the
    # opening process drops to the unprivileged user "nobody".
    code = (
        "import namedipc, sys\n"
        "try:\n"
        f"    namedipc.Semaphore({sem_name!r})\n"
        "except namedipc.PermissionsError as e:\n"
        "    assert isinstance(e, PermissionError) and e.errno == 13, e\n"
        "    print('refused:', e)\n"
    )
    result = run_as_other_user(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("refused: permission denied for semaphore"), result.stdout


def test_random_name_requires_o_excl(names: Names) -> None:
    with pytest.raises(ValueError, match="O_CREX"):
        posix_ipc.Semaphore(None)
    # Each is tracked as soon as it exists, so that it is removed whatever fails next.
    a = posix_ipc.Semaphore(None, posix_ipc.O_CREX, initial_value=1)
    names.track(a.name)
    b = posix_ipc.Semaphore(None, posix_ipc.O_CREX)
    names.track(b.name)
    assert a.name != b.name
    assert a.name.startswith("/") and sem_file(a.name).exists()
    assert (a.value, b.value) == (1, 0)


def test_random_names_do_not_collide_across_processes_started_together(names: Names) -> None:
    # posix_ipc seeds rand() with the time: processes started in the same
    # second pick the same name. namedipc uses the OS's CSPRNG.
    import subprocess
    import sys

    code = "import namedipc as p; s = p.Semaphore(None, p.O_CREX); print(s.name)"
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(4)]
    got = [p.communicate(timeout=30)[0].strip() for p in procs]
    for n in got:
        names.track(n)
    assert all(n for n in got) and len(set(got)) == 4


def test_acquire_timeout_semantics(sem_name: str) -> None:
    sem = posix_ipc.Semaphore(sem_name, posix_ipc.O_CREX, initial_value=0)
    started = time.monotonic()
    with pytest.raises(posix_ipc.BusyError):
        sem.acquire(0.2)
    elapsed = time.monotonic() - started
    assert 0.2 <= elapsed < 2.0
    started = time.monotonic()
    with pytest.raises(posix_ipc.BusyError):
        sem.acquire(0)
    assert time.monotonic() - started < 0.5
    sem.release()
    sem.acquire(5)  # a free slot is taken at once
    with pytest.raises(TypeError, match=r"non-negative|>= 0"):
        sem.acquire(-1)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nan_and_infinite_timeouts_are_rejected(sem_name: str, bad: float) -> None:
    sem = posix_ipc.Semaphore(sem_name, posix_ipc.O_CREX, initial_value=0)
    with pytest.raises((ValueError, TypeError), match="finite number of seconds"):
        sem.acquire(bad)


def test_timeout_type_errors(sem_name: str) -> None:
    sem = posix_ipc.Semaphore(sem_name, posix_ipc.O_CREX, initial_value=1)
    with pytest.raises(TypeError, match="timeout must be None"):
        sem.acquire("1")  # type: ignore[arg-type]
    sem.acquire(10**400)  # absurdly long: waits as long as it takes, here not at all


def test_context_manager_and_str_repr(sem_name: str) -> None:
    sem = posix_ipc.Semaphore(sem_name, posix_ipc.O_CREX, initial_value=1)
    with sem as entered:
        assert entered is sem
        assert sem.value == 0
    assert sem.value == 1
    assert str(sem) == sem_name
    assert repr(sem) == f'namedipc.Semaphore("{sem_name}", mode=0600)'


def test_use_after_close_raises_existential_error(sem_name: str) -> None:
    sem = posix_ipc.Semaphore(sem_name, posix_ipc.O_CREX, initial_value=1)
    sem.close()
    for action in (lambda: sem.acquire(), lambda: sem.release(), lambda: sem.value, lambda: sem.close()):
        with pytest.raises(posix_ipc.ExistentialError, match="closed"):
            action()
    assert sem.name == sem_name  # still readable, as in posix_ipc
    sem.unlink()


def test_name_rules(names: Names) -> None:
    with pytest.raises(ValueError, match="NUL"):
        posix_ipc.Semaphore("/bad\0name", posix_ipc.O_CREAT)
    for bad in ["", "/", "/a/b", "/" + "x" * 300]:
        with pytest.raises(ValueError, match="followed by 1 to 251"):
            posix_ipc.Semaphore(bad, posix_ipc.O_CREAT)
    with pytest.raises(TypeError, match="name must be a str"):
        posix_ipc.Semaphore(42)  # type: ignore[arg-type]
    # Like glibc and posix_ipc: no leading slash is accepted and kept as given.
    plain = names.track(names().lstrip("/"))
    sem = posix_ipc.Semaphore(plain, posix_ipc.O_CREX)
    assert sem.name == plain and sem_file(plain).exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"initial_value": -1}, "initial_value must be between 0 and 2147483647"),
        ({"initial_value": 2**32 + 1}, "initial_value must be between 0 and 2147483647"),
        ({"initial_value": 10**100}, "initial_value must be between 0 and 2147483647"),
        ({"mode": 0o10000}, "mode must be between 0 and 4095"),
        ({"mode": -1}, "mode must be between"),
    ],
)
def test_out_of_range_arguments(sem_name: str, kwargs: dict[str, int], message: str) -> None:
    # posix_ipc silently wraps initial_value=2**32+1 to 1.
    with pytest.raises(ValueError, match=message):
        posix_ipc.Semaphore(sem_name, posix_ipc.O_CREX, **kwargs)
    assert not sem_file(sem_name).exists()


def test_wrong_argument_types(sem_name: str) -> None:
    with pytest.raises(TypeError, match="initial_value must be an int"):
        posix_ipc.Semaphore(sem_name, posix_ipc.O_CREX, initial_value=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="mode must be an int"):
        posix_ipc.Semaphore(sem_name, posix_ipc.O_CREX, mode="600")  # type: ignore[arg-type]


def test_release_past_the_maximum_raises(sem_name: str) -> None:
    sem = posix_ipc.Semaphore(sem_name, posix_ipc.O_CREX, initial_value=posix_ipc.SEMAPHORE_VALUE_MAX)
    with pytest.raises(ValueError, match="maximum value"):
        sem.release()
    assert sem.value == posix_ipc.SEMAPHORE_VALUE_MAX


@pytest.mark.parametrize(
    "content",
    [
        b"",  # posix_ipc: SIGBUS
        b"\x00" * 7,
        b"\x00" * 64,
        b"\xff" * 32,  # value field beyond SEM_VALUE_MAX
        (1).to_bytes(8, "little") + (5).to_bytes(4, "little") + b"\x00" * 20,  # unknown sharing field
    ],
    ids=["empty", "short", "long", "garbage", "foreign"],
)
@pytest.mark.parametrize("flags", [0, posix_ipc.O_CREAT])
def test_corrupt_file_at_the_name_raises(sem_name: str, content: bytes, flags: int) -> None:
    sem_file(sem_name).write_bytes(content)
    with pytest.raises(namedipc.CorruptError, match="remove it and create it again"):
        posix_ipc.Semaphore(sem_name, flags)


def test_non_file_at_the_name_raises(sem_name: str, tmp_path: Path) -> None:
    sem_file(sem_name).mkdir()
    with pytest.raises(namedipc.CorruptError, match=r"directory|not a regular file"):
        posix_ipc.Semaphore(sem_name)
    sem_file(sem_name).rmdir()
    target = tmp_path / "target"
    target.write_bytes(b"\x00" * 32)
    sem_file(sem_name).symlink_to(target)
    with pytest.raises(namedipc.CorruptError, match="symbolic link"):
        posix_ipc.Semaphore(sem_name)


def test_close_while_another_thread_waits(sem_name: str) -> None:
    # posix_ipc: segfault. namedipc: the waiter gets ExistentialError.
    sem = posix_ipc.Semaphore(sem_name, posix_ipc.O_CREX, initial_value=0)
    waiter = Background(lambda: sem.acquire(10))
    wait_until_blocked(sem_name)
    sem.close()
    outcome = waiter.join(WAIT)
    assert isinstance(outcome, posix_ipc.ExistentialError)
    assert "closed by another thread while this one waited" in str(outcome)


class Flagged(posix_ipc.Semaphore):
    """A subclass with its own __init__ signature, as posix_ipc users write."""

    def __init__(self, label: str, value: int) -> None:
        super().__init__(None, posix_ipc.O_CREX, initial_value=value)
        self.label = label


def test_subclass_with_its_own_init(names: Names) -> None:
    sem = Flagged("jobs", 3)
    names.track(sem.name)
    assert (sem.label, sem.value) == ("jobs", 3)
    assert repr(sem).startswith(f"{__name__}.Flagged(")
    copy = pickle.loads(pickle.dumps(sem))
    assert type(copy) is Flagged and copy.label == "jobs" and copy.value == 3


def test_subclass_that_skips_init_gets_a_clear_error() -> None:
    class Lazy(posix_ipc.Semaphore):
        def __init__(self) -> None:
            pass

    with pytest.raises(TypeError, match="never initialised"):
        Lazy().acquire()


def test_pickle_reopens_by_name_with_value_untouched(sem_name: str) -> None:
    sem = posix_ipc.Semaphore(sem_name, posix_ipc.O_CREX, initial_value=2)
    copy = pickle.loads(pickle.dumps(sem))
    assert copy.name == sem_name and copy.value == 2
    copy.acquire(0)
    assert sem.value == 1


def test_close_while_another_thread_waits_without_timeout(sem_name: str) -> None:
    # A wait without a deadline sleeps in one piece; when it is woken after
    # its handle was closed, it gives the slot back and raises.
    sem = posix_ipc.Semaphore(sem_name, posix_ipc.O_CREX, initial_value=0)
    other = posix_ipc.Semaphore(sem_name)
    waiter = Background(sem.acquire)
    try:
        wait_until_blocked(sem_name)
        sem.close()
        other.release()
        outcome = waiter.join(WAIT)
    finally:
        if waiter.is_alive():
            other.release()
    assert isinstance(outcome, posix_ipc.ExistentialError)
    assert "closed by another thread" in str(outcome)
    assert other.value == 1  # the slot came back


def test_init_twice_creates_nothing(names: Names) -> None:
    first, second = names("first"), names("second")
    sem = posix_ipc.Semaphore(first, posix_ipc.O_CREX)
    with pytest.raises(TypeError, match="already initialised"):
        sem.__init__(second, posix_ipc.O_CREX)  # type: ignore[misc]
    assert not sem_file(second).exists()
    assert sem.name == first


def test_o_excl_without_o_creat_is_refused_like_posix_ipc(sem_name: str) -> None:
    """posix_ipc (and namedipc's SharedMemory and MessageQueue) refuse O_EXCL
    alone before looking at the name; it is no NotFoundError."""
    with pytest.raises(ValueError, match="O_EXCL must be combined with O_CREAT"):
        namedipc.Semaphore(sem_name, namedipc.O_EXCL)
    with pytest.raises(ValueError, match="O_EXCL must be combined with O_CREAT"):
        real_posix_ipc.Semaphore(sem_name, real_posix_ipc.O_EXCL)
    assert not sem_file(sem_name).exists()


def test_release_at_the_maximum_is_an_os_error_as_in_posix_ipc(sem_name: str) -> None:
    """posix_ipc raises OSError(EOVERFLOW); namedipc's error is that and a
    ValueError (the rule's class for a count past its maximum) (issue 13, item 3)."""
    for module in (posix_ipc, real_posix_ipc):
        sem = module.Semaphore(sem_name, module.O_CREX, initial_value=module.SEMAPHORE_VALUE_MAX)
        try:
            with pytest.raises(OSError) as raised:
                sem.release()
            assert raised.value.errno == errno.EOVERFLOW
        finally:
            sem.unlink()
            sem.close()
    assert issubclass(namedipc.OverflowValueError, ValueError)
    assert issubclass(namedipc.OverflowValueError, namedipc.Error)


def test_an_os_failure_without_a_class_of_its_own_is_an_os_error_with_errno(shm_names: Names) -> None:
    """Mapping a (sparse) segment of 4 EiB fails in mmap with ENOMEM, which
    has no class of its own: `except OSError` catches it, errno says why."""
    shm = namedipc.SharedMemory(None, namedipc.O_CREX, size=2**62)
    shm_names.track(shm.name)
    try:
        with pytest.raises(namedipc.SystemCallError, match="mmap") as raised:
            shm.buf  # noqa: B018 - reading .buf maps the segment
        assert isinstance(raised.value, OSError) and raised.value.errno == errno.ENOMEM
    finally:
        shm.unlink()
        shm.close()


@pytest.mark.parametrize("cls", [posix_ipc.Semaphore, namedipc.NamedSemaphore])
def test_a_socket_at_the_name_is_a_corrupt_error(cls: type[Any], sem_name: str) -> None:
    """A UNIX socket cannot even be opened (ENXIO); the error says what is there (issue 13, item 6)."""
    with socket.socket(socket.AF_UNIX) as planted:
        planted.bind(str(sem_file(sem_name)))
        with pytest.raises(namedipc.CorruptError, match="is a socket, not a regular file"):
            cls(sem_name)
