"""A robust semaphore on a machine shared with other users (issue 12): a
new one gets exactly the mode and group asked for; an existing one that
another user could have planted or tampered with is refused, by the class
and by `namedipc run`, with a message naming its owner and mode, unless the
caller opts in (trust_owners=, group=, a world-writable mode of its own);
a mode that lets anybody read the file without writing it (who could then
fake live holders) is refused at creation and at open; and a CMD that
drops its privileges can neither free the slot nor crash anybody.

The cases with other users run as throwaway users (tests/support/users.py),
which needs root; they skip, saying so, where there is none."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import namedipc
from namedipc import RobustSemaphore
from support.names import Names, robust_file
from support.processes import Peer
from support.tamper import TAMPER
from support.users import User, Users, as_user, cli_as, popen_as
from support.waiting import WAIT

SCRIPT = Path(sys.executable).parent / "namedipc"
# The Python a command that changed user runs: readable by everybody, unlike
# (maybe) the virtualenv.
SYSTEM_PYTHON = "/usr/bin/python3"

# The allowed modes, as the refusal of another one states them.
ALLOWED = "0o600, 0o660 or 0o666"
READER_CAN_FAKE = "users who may not write it may read it: such a reader can fake a holder's liveness"
FOREIGN = "another user who is not root owns it"
OTHERS_WRITE = "users other than its owner and group may write it"


def cli(*args: str | Path, timeout: float = WAIT) -> subprocess.CompletedProcess[str]:
    """`namedipc ARGS` as this process's user, to completion (bounded)."""
    if not SCRIPT.exists():
        pytest.fail(f"{SCRIPT} is missing: install the package into this virtualenv (maturin develop)")
    return subprocess.run([str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=timeout, check=False)


def ran(done: subprocess.CompletedProcess[str]) -> str:
    """The stdout of a run that must have succeeded."""
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
    return done.stdout


def named(user: User) -> str:
    return f"uid {user.uid} ({user.name})"


# ---------------------------------------------------------------- one user


@pytest.mark.parametrize("mode", [0o600, 0o660, 0o666])
def test_a_new_semaphore_gets_exactly_its_mode_and_reports_its_owner(mode: int, robust_name: str) -> None:
    # The tests' umask (022 here, as usual) would narrow 0o660 and 0o666.
    sem = RobustSemaphore(robust_name, mode=mode)
    st = robust_file(robust_name).stat()
    assert st.st_mode & 0o7777 == mode
    assert (sem.uid, sem.gid, sem.file_mode, sem.mode) == (st.st_uid, st.st_gid, mode, mode)
    assert (sem.uid, sem.gid) == (os.geteuid(), os.getegid())
    sem.close()
    # What describes the handle stays readable after close.
    assert (sem.uid, sem.file_mode, sem.mode) == (st.st_uid, mode, mode)


@pytest.mark.parametrize("mode", [0o640, 0o644, 0o604, 0o620, 0o400, 0o000])
def test_a_mode_that_lets_a_reader_in_without_write_is_refused_at_creation(mode: int, robust_name: str) -> None:
    with pytest.raises(ValueError, match=ALLOWED):
        RobustSemaphore(robust_name, mode=mode)
    assert not robust_file(robust_name).exists()
    done = cli("run", robust_name, "--mode", f"{mode:04o}", "--", "true")
    assert done.returncode == 125 and ALLOWED in done.stderr, done.stderr
    assert not robust_file(robust_name).exists()


def planted(name: str, mode: int) -> None:
    """A persistent semaphore `name` whose file then gets `mode` by chmod."""
    RobustSemaphore(name, persistent=True).close()
    robust_file(name).chmod(mode)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_a_file_a_reader_may_read_without_write_is_refused_at_open(mode: int, robust_name: str) -> None:
    planted(robust_name, mode)
    for kwargs in ({}, {"trust_owners": [os.geteuid()]}, {"mode": 0o666}):
        with pytest.raises(namedipc.PermissionsError) as refused:
            RobustSemaphore(robust_name, **kwargs)
        assert isinstance(refused.value, PermissionError)
        message = str(refused.value)
        assert f"refusing the robust semaphore '{robust_name}'" in message
        assert f"mode {mode:04o}" in message and READER_CAN_FAKE in message, message
    done = cli("run", robust_name, "--", "true")
    assert done.returncode == 125 and READER_CAN_FAKE in done.stderr, done.stderr


def test_a_file_others_may_write_is_refused_unless_the_mode_asked_for_lets_them(robust_name: str) -> None:
    planted(robust_name, 0o666)
    with pytest.raises(namedipc.PermissionsError, match=OTHERS_WRITE):
        RobustSemaphore(robust_name)
    with RobustSemaphore(robust_name, mode=0o666) as sem:
        assert (sem.created, sem.mode) == (False, 0o666)
        # An unpickled copy (a worker's) trusts what the original accepted.
        copy = pickle.loads(pickle.dumps(sem))
        assert (copy.created, copy.file_mode) == (False, 0o666)
        copy.close()
    done = cli("run", robust_name, "--", "true")
    assert done.returncode == 125 and OTHERS_WRITE in done.stderr and "--mode 0666" in done.stderr
    ran(cli("run", robust_name, "--mode", "0666", "--", "true"))


def test_run_notes_when_an_existing_semaphore_has_another_mode_or_group(robust_name: str) -> None:
    RobustSemaphore(robust_name, 2, persistent=True).close()
    done = cli("run", robust_name, "--mode", "0660", "--group", "0", "-n", "3", "--", "true")
    assert done.returncode == 0, done.stderr
    assert "already exists with 2 slots; -n 3 applies only when run creates it" in done.stderr
    assert "already exists with mode 0600; --mode 0660 applies only when run creates it" in done.stderr
    if os.getegid() != 0:
        assert "--group 0 (" in done.stderr
    st = robust_file(robust_name).stat()
    assert st.st_mode & 0o7777 == 0o600, "an existing semaphore keeps its mode"


def test_group_and_trust_owners_take_names_or_numbers_and_refuse_the_rest(robust_name: str) -> None:
    for bad, error in [
        ({"group": 1.5}, TypeError),
        ({"group": b"root"}, TypeError),
        ({"group": -1}, ValueError),
        ({"group": "no-such-group-namedipc"}, ValueError),
        ({"trust_owners": "root"}, TypeError),
        ({"trust_owners": [None]}, TypeError),
        ({"trust_owners": ["no-such-user-namedipc"]}, ValueError),
        ({"trust_owners": [2**32]}, ValueError),
    ]:
        with pytest.raises(error):
            RobustSemaphore(robust_name, **bad)  # type: ignore[arg-type]
    assert not robust_file(robust_name).exists()
    with RobustSemaphore(robust_name, mode=0o660, group=os.getegid(), trust_owners=("root", 0)) as sem:
        assert sem.gid == os.getegid()
    for bad in (["--mode", "0644x"], ["--group", "no-such-group-namedipc"], ["--trust-owner", "no-such-user-namedipc"]):
        done = cli("run", robust_name, *bad, "--", "true")
        assert done.returncode == 125, done.stderr


# ------------------------------------------------------------ other users


def squat(users: Users, name: str, mode: int, slots: int) -> None:
    """The attacker creates the (persistent) semaphore first."""
    group = f", group={users.group.gid}" if mode & 0o070 else ""
    ran(
        as_user(
            users.attacker,
            f"namedipc.RobustSemaphore({name!r}, {slots}, mode={mode:#o}, persistent=True{group}).close()",
        )
    )
    st = robust_file(name).stat()
    assert (st.st_uid, st.st_mode & 0o7777) == (users.attacker.uid, mode)


def opened_as(user: User, name: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Opens `name` as `user` with `kwargs`; prints its slots, or fails with the exception."""
    return as_user(user, f"print(namedipc.RobustSemaphore({name!r}, **{kwargs!r}).slots)")


def test_a_squatted_semaphore_is_refused_and_trusting_its_owner_or_group_accepts_it(
    users: Users, robust_name: str
) -> None:
    squat(users, robust_name, 0o660, 65_536)
    refused = opened_as(users.victim, robust_name)
    assert refused.returncode != 0 and "PermissionsError" in refused.stderr, refused.stderr
    assert (
        f"it belongs to {named(users.attacker)}, group {users.group.gid} ({users.group.name}), mode 0660, and {FOREIGN}"
        in refused.stderr
    ), refused.stderr
    assert f"--trust-owner {users.attacker.name}" in refused.stderr
    # `run -n 2` on it used to print a note and let 65,536 in.
    done = cli_as(users.victim, "run", robust_name, "-n", "2", "--", "true")
    assert done.returncode == 125, done.stderr
    assert f"refusing the robust semaphore '{robust_name}': it belongs to {named(users.attacker)}" in done.stderr
    assert "mode 0660" in done.stderr
    # Shared on purpose: trusting its owner, or its group.
    assert ran(opened_as(users.victim, robust_name, trust_owners=[users.attacker.name])) == "65536\n"
    assert ran(opened_as(users.victim, robust_name, trust_owners=[users.attacker.uid])) == "65536\n"
    assert ran(opened_as(users.victim, robust_name, group=users.group.name)) == "65536\n"
    ran(cli_as(users.victim, "run", robust_name, "--trust-owner", users.attacker.name, "--", "true"))
    ran(cli_as(users.victim, "run", robust_name, "--group", users.group.name, "--", "true"))


def test_a_world_writable_squat_needs_its_owner_trusted_and_a_world_writable_mode(
    users: Users, robust_name: str
) -> None:
    squat(users, robust_name, 0o666, 1)
    refused = opened_as(users.victim, robust_name)
    assert refused.returncode != 0 and f"{named(users.attacker)}" in refused.stderr and FOREIGN in refused.stderr
    trusted = opened_as(users.victim, robust_name, trust_owners=[users.attacker.name])
    assert trusted.returncode != 0 and "mode 0666" in trusted.stderr and OTHERS_WRITE in trusted.stderr
    assert ran(opened_as(users.victim, robust_name, trust_owners=[users.attacker.name], mode=0o666)) == "1\n"
    done = cli_as(users.victim, "run", robust_name, "--trust-owner", users.attacker.name, "--", "true")
    assert done.returncode == 125 and OTHERS_WRITE in done.stderr, done.stderr
    ran(cli_as(users.victim, "run", robust_name, "--trust-owner", users.attacker.name, "--mode", "0666", "--", "true"))


def test_a_reader_cannot_deny_service(users: Users, robust_names: Names) -> None:
    """A read-only user could take read locks on every record's byte (no
    process could attach, a dead holder would stay "alive", nothing could
    be removed): no such file is made, none is used, and the files namedipc
    makes are closed to a user outside their group altogether."""
    readable, private, shared = robust_names(), robust_names(), robust_names()
    for mode in (0o644, 0o640):
        made = as_user(users.victim, f"namedipc.RobustSemaphore({readable!r}, mode={mode:#o})")
        assert made.returncode != 0 and "ValueError" in made.stderr and ALLOWED in made.stderr, made.stderr
        assert not robust_file(readable).exists()
    # A file that became readable (chmod by its owner): refused at open.
    ran(as_user(users.victim, f"namedipc.RobustSemaphore({readable!r}, persistent=True).close()"))
    ran(as_user(users.victim, f"os.chmod({str(robust_file(readable))!r}, 0o644)"))
    refused = opened_as(users.victim, readable)
    assert refused.returncode != 0 and READER_CAN_FAKE in refused.stderr, refused.stderr
    done = cli_as(users.victim, "run", readable, "--", "true")
    assert done.returncode == 125 and READER_CAN_FAKE in done.stderr, done.stderr
    # The modes allowed: the outsider cannot open the file at all.
    ran(as_user(users.victim, f"namedipc.RobustSemaphore({private!r}, persistent=True).close()"))
    ran(
        as_user(
            users.victim,
            f"namedipc.RobustSemaphore({shared!r}, mode=0o660, group={users.group.gid}, persistent=True).close()",
        )
    )
    for name in (private, shared):
        path = str(robust_file(name))
        probe = as_user(users.outsider, f"os.open({path!r}, os.O_RDONLY)")
        assert probe.returncode != 0 and "PermissionError" in probe.stderr, probe.stderr
        denied = opened_as(users.outsider, name)
        assert denied.returncode != 0 and "PermissionsError" in denied.stderr, denied.stderr
    # The group's members may use the shared one, and only it.
    assert ran(opened_as(users.attacker, shared, group=users.group.name)) == "1\n"
    assert opened_as(users.attacker, private, trust_owners=[users.victim.name]).returncode != 0


def test_members_of_a_group_share_a_0660_semaphore(users: Users, robust_name: str) -> None:
    victim = popen_as(
        users.victim,
        f"""
sem = namedipc.RobustSemaphore({robust_name!r}, 1, mode=0o660, group={users.group.name!r})
sem.acquire()
print("held", sem.uid, sem.gid, oct(sem.mode), flush=True)
sys.stdin.readline()
sem.release()
print("released", flush=True)
sys.stdin.readline()
sem.close()
""",
    )
    try:
        assert victim.stdout is not None and victim.stdin is not None
        said = victim.stdout.readline().split()
        assert said == ["held", str(users.victim.uid), str(users.group.gid), "0o660"], said
        st = robust_file(robust_name).stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (users.victim.uid, users.group.gid, 0o660)
        # Without saying so, the attacker does not trust the victim's file.
        assert opened_as(users.attacker, robust_name).returncode != 0
        busy = as_user(
            users.attacker,
            f"print(namedipc.RobustSemaphore({robust_name!r}, group={users.group.name!r}).acquire(blocking=False))",
        )
        assert ran(busy) == "False\n"
        victim.stdin.write("go\n")
        victim.stdin.flush()
        assert victim.stdout.readline() == "released\n"
        took = as_user(
            users.attacker,
            f"print(namedipc.RobustSemaphore({robust_name!r}, group={users.group.gid}).acquire(timeout={WAIT}))",
        )
        assert ran(took) == "True\n"
        victim.stdin.write("go\n")
        victim.stdin.flush()
        assert victim.wait(WAIT) == 0
    finally:
        if victim.poll() is None:
            victim.kill()
        victim.communicate(timeout=WAIT)


def test_run_makes_the_file_with_its_mode_and_group_exactly_under_umask_022(users: Users, robust_name: str) -> None:
    stat = shutil.which("stat")
    assert stat is not None
    path = str(robust_file(robust_name))
    argv = ["namedipc", "run", robust_name, "--mode", "0660", "--group", users.group.name, "--"]
    argv += [stat, "-c", "%a %g %u", path]
    code = f"os.umask(0o022); from namedipc._namedipc import _cli_main; sys.exit(_cli_main({argv!r}))"
    assert ran(as_user(users.victim, code)) == f"660 {users.group.gid} {users.victim.uid}\n"
    # A group the user is not in cannot be given.
    code = code.replace(users.group.name, str(users.outsider.gid))
    refused = as_user(users.victim, code)
    assert refused.returncode == 125 and "not a member of that group" in refused.stderr, refused.stderr


def as_other_user(user: User) -> list[str]:
    """The command line prefix that runs a command as `user`, for good."""
    setpriv = shutil.which("setpriv")
    if setpriv is not None:
        return [setpriv, f"--reuid={user.uid}", f"--regid={user.gid}", "--clear-groups"]
    runuser = shutil.which("runuser") or next(
        (p for p in ("/usr/sbin/runuser", "/sbin/runuser") if Path(p).exists()), None
    )
    if runuser is None:
        pytest.skip("neither setpriv nor runuser is installed (util-linux)")
    return [runuser, "-u", user.name, "--"]


def test_a_cmd_that_drops_privileges_cannot_free_the_slot_or_crash_anybody(
    users: Users, robust_name: str, programs: type[Peer]
) -> None:
    path = robust_file(robust_name)
    job = programs(
        SCRIPT, "run", robust_name, "-n", "1", "--", *as_other_user(users.outsider), SYSTEM_PYTHON, "-c", TAMPER, path
    )
    report = json.loads(job.expect("{"))
    assert report["uid"] == users.outsider.uid
    assert len(report["fds"]) == 1 and report["read_only"] == [True], report
    assert report["truncate"][0] in ("EINVAL", "EBADF") and report["write"] == ["EBADF"], report
    size = path.stat().st_size
    # Root's own run waits and finds the slot still held; nobody crashed.
    busy = cli("run", robust_name, "--timeout", "0.3", "--", "true")
    assert busy.returncode == 75, busy.stderr
    info = json.loads(ran(cli("info", "--json", robust_name)))
    (held,) = info["objects"]
    assert held["free"] == 0 and [h["alive"] for h in held["holders"]] == [True], held
    assert path.stat().st_size == size
    job.send("go")
    job.expect("released")
    job.finish()
    # The parent run exited with CMD's status (0), not a signal, and the
    # slot came back.
    assert job.proc.returncode == 0
    ran(cli("run", robust_name, "--timeout", str(WAIT), "--", "true"))
