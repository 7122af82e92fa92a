"""Owners, trust and exact modes (issue 12, docs/security.md): every handle
reports its object's owner, group and mode; NamedSemaphore refuses an
existing semaphore another user could have planted or that others may
write, unless told to share; the posix_ipc classes keep posix_ipc's
behaviour and never do worse than it (fs.protected_regular).

The multi-user cases run as throwaway users (tests/support/users.py)."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import posix_ipc
import pytest

import namedipc
from namedipc import MessageQueue, NamedSemaphore, PermissionsError, Semaphore, SharedMemory
from support.names import Names, segment_file, semaphore_file
from support.users import User, Users, as_user
from support.waiting import WAIT

VALUE_MAX = namedipc.SEMAPHORE_VALUE_MAX
OTHERS_MAY_WRITE = "users other than its owner and group may write it"
FOREIGN = "another user who is not root owns it"


def file_mode(path: Path) -> int:
    return path.stat().st_mode & 0o7777


def run_as(user: User, code: str, *args: str) -> str:
    """Runs `code` as `user`; its stdout. Fails the test with its stderr if it failed."""
    done = as_user(user, code, *args)
    assert done.returncode == 0, f"as {user.name}: {done.stderr}"
    return done.stdout


# What a squatter runs: creates the name first, with umask 0 so that the
# mode asked for is the file's.
SQUAT_SEMAPHORE = """
os.umask(0)
s = namedipc.Semaphore(sys.argv[1], namedipc.O_CREX, mode=int(sys.argv[2], 8), initial_value=int(sys.argv[3]))
print(s.file_mode)
"""

# What the victim runs: NamedSemaphore with the keyword arguments in
# sys.argv[2] (JSON); prints what it found or the PermissionsError's message.
OPEN_NAMED = """
kwargs = json.loads(sys.argv[2])
try:
    s = namedipc.NamedSemaphore(sys.argv[1], **kwargs)
except namedipc.PermissionsError as e:
    print(json.dumps({"refused": str(e), "is_permission_error": isinstance(e, PermissionError)}))
else:
    print(json.dumps({"value": s.value, "uid": s.uid, "gid": s.gid, "mode": s.mode, "file_mode": s.file_mode,
                      "created": s.created}))
    s.close()
"""


def open_named_as(user: User, name: str, **kwargs: object) -> dict[str, object]:
    found: dict[str, object] = json.loads(run_as(user, OPEN_NAMED, name, json.dumps(kwargs)))
    return found


# ---------------------------------------------------------------- one user


def test_every_handle_reports_its_objects_owner_also_after_close(names: Names, shm_name: str, mq_name: str) -> None:
    me = (os.geteuid(), os.getegid())
    sem = Semaphore(names(), namedipc.O_CREX, mode=0o600)
    named = NamedSemaphore(names(), 1, NamedSemaphore.Flags.RAISE_IF_EXISTS, mode=0o640)
    shm = SharedMemory(shm_name, namedipc.O_CREX, mode=0o600, size=16)
    mq = MessageQueue(mq_name, namedipc.O_CREX, mode=0o600)
    handles: list[Semaphore | NamedSemaphore | SharedMemory | MessageQueue] = [sem, named, shm, mq]
    try:
        for handle in handles:
            assert (handle.uid, handle.gid) == me, type(handle)
        assert (sem.file_mode, named.file_mode, named.mode, shm.file_mode, mq.file_mode) == (
            0o600,
            0o640,
            0o640,
            0o600,
            0o600,
        )
        assert file_mode(semaphore_file(named.name)) == 0o640
        # An opened handle reports the object's mode, not the one it asked for.
        os.chmod(semaphore_file(named.name), 0o604)
        again = NamedSemaphore(named.name, mode=0o600)
        assert (again.created, again.mode, again.file_mode) == (False, 0o604, 0o604)
        again.close()
        posix = Semaphore(sem.name, mode=0o666)
        assert (posix.mode, posix.file_mode) == (0o666, 0o600)  # posix_ipc's .mode: the one asked for
        posix.close()
    finally:
        sem.unlink()
        sem.close()
        named.close()
        shm.unlink()
        shm.close()
        mq.unlink()
        mq.close()
    for handle in handles:
        assert handle.closed
        assert (handle.uid, handle.gid) == me


@pytest.mark.parametrize("kind", ["shm", "mq"])
def test_the_posix_ipc_segment_and_queue_read_their_owner_when_first_asked(
    kind: str, shm_name: str, mq_name: str
) -> None:
    # Their open makes posix_ipc's calls only: .uid, .gid and .file_mode come
    # from the descriptor at the first ask, and are kept from then on.
    cls: type[SharedMemory] | type[MessageQueue]
    if kind == "shm":
        name, cls = shm_name, SharedMemory
        SharedMemory(name, namedipc.O_CREX, mode=0o600, size=16).close_fd()
    else:
        name, cls = mq_name, MessageQueue
        MessageQueue(name, namedipc.O_CREX, mode=0o600).close()
    try:
        handle = cls(name)
        chmod_through_descriptor(handle, 0o640)
        assert (handle.uid, handle.file_mode) == (os.geteuid(), 0o640)  # read now, not at open
        chmod_through_descriptor(handle, 0o604)
        assert handle.file_mode == 0o640  # kept
        handle.close()
        assert (handle.uid, handle.gid, handle.file_mode) == (os.geteuid(), os.getegid(), 0o640)

        never_asked = cls(name)
        never_asked.close()
        for attribute in ("uid", "gid", "file_mode"):
            with pytest.raises(namedipc.ExistentialError, match=r"read one of them before close\(\) to keep them"):
                getattr(never_asked, attribute)
        if kind == "shm":
            fd_closed = SharedMemory(name)
            fd_closed.close_fd()
            with pytest.raises(namedipc.ExistentialError, match=r"cannot be read after close_fd\(\)"):
                getattr(fd_closed, "uid")  # noqa: B009 (a property read for its error)
            fd_closed.close()
    finally:
        if kind == "shm":
            namedipc.unlink_shared_memory(name)
        else:
            namedipc.unlink_message_queue(name)


def chmod_through_descriptor(handle: SharedMemory | MessageQueue, mode: int) -> None:
    """Changes the mode of the object open at `handle`, through its descriptor."""
    fd = handle.fd if isinstance(handle, SharedMemory) else handle.mqd
    os.fchmod(fd, mode)


UMASK_CHILD = """
import json, os, sys
import namedipc, posix_ipc
os.umask(0o022)
names = json.loads(sys.argv[1])
named = namedipc.NamedSemaphore(names["named"], 1, namedipc.Flags.RAISE_IF_EXISTS, mode=0o660, unlink_on_close=False)
sem = namedipc.Semaphore(names["sem"], namedipc.O_CREX, mode=0o660)
shm = namedipc.SharedMemory(names["shm"], namedipc.O_CREX, mode=0o660, size=8)
mq = namedipc.MessageQueue(names["mq"], namedipc.O_CREX, mode=0o660)
posix_ipc.Semaphore(names["posix_sem"], posix_ipc.O_CREX, mode=0o660).close()
posix_ipc.SharedMemory(names["posix_shm"], posix_ipc.O_CREX, mode=0o660, size=8).close_fd()
print(json.dumps({
    "named": [named.mode, named.file_mode],
    "sem": [sem.mode, sem.file_mode],
    "shm": [shm.mode, shm.file_mode],
    "mq": [mq.mode, mq.file_mode],
}))
"""


def test_modes_are_exact_under_umask_022_and_the_posix_ipc_classes_keep_the_umask(
    names: Names, shm_names: Names, mq_name: str
) -> None:
    """The umask is set in a child process: the test process keeps its own."""
    made = {
        "named": names(),
        "sem": names(),
        "posix_sem": names(),
        "shm": shm_names(),
        "posix_shm": shm_names(),
        "mq": mq_name,
    }
    done = subprocess.run(
        [sys.executable, "-c", UMASK_CHILD, json.dumps(made)], capture_output=True, text=True, timeout=WAIT, check=False
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen == {
        "named": [0o660, 0o660],  # exact
        "sem": [0o660, 0o640],  # posix_ipc's: .mode as asked, the umask applied
        "shm": [0o660, 0o640],
        "mq": [0o660, 0o640],
    }
    assert file_mode(semaphore_file(made["named"])) == 0o660
    # What posix_ipc itself makes under the same umask, side by side.
    assert file_mode(semaphore_file(made["sem"])) == file_mode(semaphore_file(made["posix_sem"])) == 0o640
    assert file_mode(segment_file(made["shm"])) == file_mode(segment_file(made["posix_shm"])) == 0o640


def test_an_own_world_writable_semaphore_is_refused_unless_the_mode_asks_for_it(sem_name: str) -> None:
    sem = Semaphore(sem_name, namedipc.O_CREX)
    try:
        os.chmod(semaphore_file(sem_name), 0o666)
        with pytest.raises(PermissionsError) as refused:
            NamedSemaphore(sem_name)
        message = str(refused.value)
        assert message.startswith(f"refusing the semaphore '{sem_name}': it belongs to uid {os.geteuid()}")
        assert f", mode 0666, and {OTHERS_MAY_WRITE}; " in message
        assert message.endswith("see docs/security.md")
        assert isinstance(refused.value, PermissionError)
        # Asking for a world-writable mode accepts one.
        shared = NamedSemaphore(sem_name, mode=0o666)
        assert (shared.created, shared.mode) == (False, 0o666)
        shared.close()
        # An unpickled copy trusts what the original accepted.
        copy = pickle.loads(pickle.dumps(shared))
        assert (copy.created, copy.file_mode) == (False, 0o666)
        copy.close()
        # The posix_ipc class checks nothing, as posix_ipc.
        Semaphore(sem_name).close()
    finally:
        sem.unlink()
        sem.close()


@pytest.mark.parametrize(
    ("kwargs", "error", "needle"),
    [
        ({"group": 1.5}, TypeError, "group must be a name (str) or a number between 0 and 4294967294 (int), not float"),
        ({"group": True}, TypeError, "not bool"),
        ({"group": b"staff"}, TypeError, "not bytes"),
        ({"group": -1}, ValueError, "group must be between 0 and 4294967294, not -1"),
        ({"group": 2**32}, ValueError, "group must be between 0 and 4294967294"),
        ({"group": 2**80}, ValueError, "group must be between 0 and 4294967294"),
        ({"group": "no-such-group-namedipc"}, ValueError, 'unknown group "no-such-group-namedipc"'),
        ({"group": "99999999999"}, ValueError, "out of range"),
        ({"trust_owners": "root"}, TypeError, "not a single str; put it in a list"),
        ({"trust_owners": 0}, TypeError, "trust_owners must be an iterable of user names (str) or uids (int)"),
        ({"trust_owners": [None]}, TypeError, "each of trust_owners must be a name (str) or a number"),
        ({"trust_owners": [-1]}, ValueError, "each of trust_owners must be between 0 and 4294967294, not -1"),
        ({"trust_owners": ["no-such-user-namedipc"]}, ValueError, 'unknown user "no-such-user-namedipc"'),
        ({"trust_owners": ["a\0b"]}, ValueError, "unknown user"),
    ],
)
def test_bad_group_and_trust_owners_say_what_is_allowed(
    sem_name: str, kwargs: dict[str, object], error: type[Exception], needle: str
) -> None:
    with pytest.raises(error) as raised:
        NamedSemaphore(sem_name, **kwargs)  # type: ignore[arg-type]
    assert needle in str(raised.value)
    assert not semaphore_file(sem_name).exists()  # nothing was made


def test_group_and_trust_owners_take_names_numbers_and_any_iterable(sem_name: str) -> None:
    owners: list[str | int] = ["root", 0, os.geteuid()]
    sem = NamedSemaphore(sem_name, mode=0o660, group="root", trust_owners=iter(owners))
    try:
        assert (sem.created, sem.gid, sem.file_mode) == (True, 0, 0o660)
        assert NamedSemaphore(sem_name, group=0, trust_owners=(str(os.geteuid()),)).created is False
    finally:
        sem.close()


# ---------------------------------------------------------------- other users


@pytest.mark.parametrize(("value", "mode"), [(0, "666"), (VALUE_MAX, "666"), (VALUE_MAX, "606")])
def test_a_semaphore_squatted_world_writable_is_refused(users: Users, names: Names, value: int, mode: str) -> None:
    """Value 0 (the victim would wait for ever) or 2**31-1 (every acquire
    would pass), writable by everyone: refused, naming owner and mode."""
    name = names()
    assert run_as(users.attacker, SQUAT_SEMAPHORE, name, mode, str(value)).strip() == str(int(mode, 8))
    attacker = users.attacker
    found = open_named_as(users.victim, name, value=1)
    assert found["is_permission_error"] is True
    refused = str(found["refused"])
    assert refused.startswith(
        f"refusing the semaphore '{name}': it belongs to uid {attacker.uid} ({attacker.name}), "
        f"group {attacker.gid} ({attacker.name}), mode 0{mode}, and "
    ), refused
    # Trusting the attacker is not enough: everyone may write it.
    found = open_named_as(users.victim, name, trust_owners=[attacker.name])
    assert OTHERS_MAY_WRITE in str(found["refused"])
    # The semaphore is as the attacker left it.
    assert semaphore_file(name).stat().st_uid == attacker.uid


SQUAT_FOR_GROUP = """
s = namedipc.NamedSemaphore(sys.argv[1], int(sys.argv[3]), mode=0o660, group=sys.argv[2], unlink_on_close=False)
print(json.dumps([s.uid, s.gid, s.file_mode]))
"""


def test_a_group_members_semaphore_is_refused_by_default_and_accepted_by_opt_in(users: Users, names: Names) -> None:
    name = names()
    attacker, group = users.attacker, users.group
    made = json.loads(run_as(attacker, SQUAT_FOR_GROUP, name, group.name, str(VALUE_MAX)))
    assert made == [attacker.uid, group.gid, 0o660]
    assert file_mode(semaphore_file(name)) == 0o660
    found = open_named_as(users.victim, name)
    refused = str(found["refused"])
    assert (
        f"it belongs to uid {attacker.uid} ({attacker.name}), group {group.gid} ({group.name}), mode 0660, "
        f"and {FOREIGN}; if it is shared on purpose, trust its owner (trust_owners=['{attacker.name}'], "
        f"--trust-owner {attacker.name}) or its group (group='{group.name}', --group {group.name}); "
        "see docs/security.md"
    ) in refused, refused
    for opt_in in (
        {"trust_owners": [attacker.name]},
        {"trust_owners": [attacker.uid]},
        {"group": group.name},
        {"group": group.gid},
    ):
        found = open_named_as(users.victim, name, **opt_in)
        assert found == {
            "value": VALUE_MAX,
            "uid": attacker.uid,
            "gid": group.gid,
            "mode": 0o660,
            "file_mode": 0o660,
            "created": False,
        }, opt_in
    # An unpickled copy (e.g. in a worker) trusts the owner its original
    # accepted. (What pickle.loads calls, called directly: the user cannot
    # import more of the standard library once its privileges are dropped.)
    code = """
s = namedipc.NamedSemaphore(sys.argv[1], group=sys.argv[2])
reopen, args = s.__reduce__()[:2]
copy = reopen(*args)
print(json.dumps([copy.created, copy.uid, copy.value]))
"""
    assert json.loads(run_as(users.victim, code, name, group.name)) == [False, attacker.uid, VALUE_MAX]
    # Someone else's trust does not help.
    assert "refused" in open_named_as(users.victim, name, trust_owners=[users.outsider.name])


def test_only_members_may_give_a_new_semaphore_a_group(users: Users, names: Names) -> None:
    name = names()
    code = """
try:
    namedipc.NamedSemaphore(sys.argv[1], group=sys.argv[2])
except ValueError as e:
    print(e)
"""
    out = run_as(users.outsider, code, name, users.group.name)
    assert "this process is not a member of that group" in out, out
    assert not semaphore_file(name).exists()


def test_roots_semaphore_is_accepted(users: Users, names: Names) -> None:
    name = names()
    sem = NamedSemaphore(name, 2, mode=0o660, group=users.group.name)
    try:
        stat = semaphore_file(name).stat()
        assert (stat.st_uid, stat.st_gid, stat.st_mode & 0o7777) == (0, users.group.gid, 0o660)
        found = open_named_as(users.victim, name)
        assert found == {
            "value": 2,
            "uid": 0,
            "gid": users.group.gid,
            "mode": 0o660,
            "file_mode": 0o660,
            "created": False,
        }
    finally:
        sem.close()


SQUAT_POSIX_CLASSES = """
os.umask(0)
namedipc.Semaphore(sys.argv[1], namedipc.O_CREX, mode=0o666, initial_value=0).close()
namedipc.SharedMemory(sys.argv[2], namedipc.O_CREX, mode=0o666, size=16).close()
namedipc.MessageQueue(sys.argv[3], namedipc.O_CREX, mode=0o666).close()
"""

OPEN_POSIX_CLASSES = """
out = []
for handle in (namedipc.Semaphore(sys.argv[1], namedipc.O_CREAT), namedipc.SharedMemory(sys.argv[2]),
               namedipc.MessageQueue(sys.argv[3], namedipc.O_CREAT)):
    out.append([handle.created, handle.uid, handle.gid, handle.mode, handle.file_mode])
    handle.close()
print(json.dumps(out))
"""


def test_the_posix_ipc_classes_open_a_foreign_object_and_report_its_owner(
    users: Users, sem_name: str, shm_name: str, mq_name: str
) -> None:
    run_as(users.attacker, SQUAT_POSIX_CLASSES, sem_name, shm_name, mq_name)
    attacker = users.attacker
    seen = json.loads(run_as(users.victim, OPEN_POSIX_CLASSES, sem_name, shm_name, mq_name))
    # .mode is the one asked for (posix_ipc's), .file_mode the object's.
    assert seen == [[False, attacker.uid, attacker.gid, 0o600, 0o666]] * 3


@pytest.fixture
def protected_regular() -> Iterator[None]:
    """fs.protected_regular at 1 or more for the test, restored afterwards (needs root)."""
    path = Path("/proc/sys/fs/protected_regular")
    before = path.read_text().strip()
    if int(before) == 0:
        path.write_text("1")
    try:
        yield
    finally:
        path.write_text(before)


SHM_AS_POSIX_IPC = """
import posix_ipc
out = {}
for label, module in (("posix_ipc", posix_ipc), ("namedipc", namedipc)):
    try:
        module.SharedMemory(sys.argv[1], module.O_CREAT).close_fd()
    except module.PermissionsError as e:
        out[label] = "PermissionsError"
    else:
        out[label] = "opened"
print(json.dumps(out))
"""


def test_shared_memory_o_creat_on_a_squatted_segment_fails_as_in_posix_ipc(
    users: Users, shm_name: str, protected_regular: None
) -> None:
    run_as(
        users.attacker,
        "os.umask(0); namedipc.SharedMemory(sys.argv[1], namedipc.O_CREX, mode=0o666, size=16)",
        shm_name,
    )
    assert segment_file(shm_name).stat().st_uid == users.attacker.uid
    # Side by side, as root (whom the kernel's check binds too)...
    with pytest.raises(posix_ipc.PermissionsError):
        posix_ipc.SharedMemory(shm_name, posix_ipc.O_CREAT)
    with pytest.raises(PermissionsError):
        SharedMemory(shm_name, namedipc.O_CREAT)
    # ...and as the victim.
    assert json.loads(run_as(users.victim, SHM_AS_POSIX_IPC, shm_name)) == {
        "posix_ipc": "PermissionsError",
        "namedipc": "PermissionsError",
    }
    # Without O_CREAT both open it, as before.
    theirs = posix_ipc.SharedMemory(shm_name)
    theirs.close_fd()
    ours = SharedMemory(shm_name)
    assert (ours.created, ours.uid, ours.file_mode, ours.size) == (False, users.attacker.uid, 0o666, 16)
    ours.close()
    # Nothing was made or changed on the way.
    stat = segment_file(shm_name).stat()
    assert (stat.st_uid, stat.st_mode & 0o7777, stat.st_size) == (users.attacker.uid, 0o666, 16)
