"""Throwaway unprivileged users for the multi-user tests (issue 12's cases).

When the tests run as root (as CI does), the session fixture `users` makes
three users and a group with useradd/groupadd:

- `victim` and `attacker`, both members of `group` (the deliberate sharers);
- `outsider`, in no group but its own.

Each name carries the pid of the pytest process that made it
(`nipc<pid>v`, `nipc<pid>a`, `nipc<pid>o`, group `nipc<pid>g`), so that
a later run, or `main_remove_stale()` (which ./dev.sh runs
after the tests), removes the users of a run that was killed
before its teardown, and never those of a run still going. The users have
no home directory and no login shell, and are removed at the end of the
session, also when tests fail.

Not root, or no useradd: the fixture skips with the reason, visibly.

Code runs as one of them through tests/helpers/as_user.py, which imports
namedipc as root and then drops its privileges for good: the user needs no
access to the checkout or the virtualenv.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.waiting import WAIT

AS_USER = Path(__file__).resolve().parent.parent / "helpers" / "as_user.py"
PREFIX = "nipc"
# The names this module makes: prefix, the pid of the run, and a role letter.
OURS = re.compile(rf"^{PREFIX}(\d+)([vaog])$")
COMMENT = "namedipc test user (removed by the tests)"


@dataclass(frozen=True)
class Group:
    name: str
    gid: int


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]


@dataclass(frozen=True)
class Users:
    victim: User
    attacker: User
    outsider: User
    group: Group


def _tool(name: str) -> str | None:
    return shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/sbin") / name) if p.exists()), None
    )


def _admin(*argv: str) -> None:
    """Runs useradd/groupadd/userdel/groupdel, retrying while another run
    holds the lock on /etc/passwd or /etc/group (exit code 10 or a lock message)."""
    deadline = time.monotonic() + WAIT
    while True:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=WAIT, check=False)
        if done.returncode == 0:
            return
        locked = done.returncode == 10 or "lock" in done.stderr
        if not locked or time.monotonic() > deadline:
            raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(keep_pid: int | None = None) -> list[str]:
    """Removes the users and groups of runs whose process is gone; returns their names."""
    removed = []
    userdel, groupdel = _tool("userdel"), _tool("groupdel")
    for entry in pwd.getpwall():
        found = OURS.match(entry.pw_name)
        if found and userdel and entry.pw_gecos == COMMENT:
            pid = int(found.group(1))
            if pid != keep_pid and not _alive(pid):
                _admin(userdel, entry.pw_name)
                removed.append(entry.pw_name)
    for group in grp.getgrall():
        found = OURS.match(group.gr_name)
        if found and groupdel:
            pid = int(found.group(1))
            if pid != keep_pid and not _alive(pid):
                _admin(groupdel, group.gr_name)
                removed.append(group.gr_name)
    return removed


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "the multi-user tests make throwaway users, which needs root (CI runs as root)"
    missing = [t for t in ("useradd", "groupadd", "userdel", "groupdel") if _tool(t) is None]
    if missing:
        return f"the multi-user tests need {', '.join(missing)} (Debian's passwd package)"
    return None


def _make(name: str, supplementary: list[str]) -> User:
    useradd = _tool("useradd")
    assert useradd
    argv = [useradd, "--system", "--no-create-home", "--user-group", "--shell", "/usr/sbin/nologin"]
    argv += ["--comment", COMMENT]
    if supplementary:
        argv += ["--groups", ",".join(supplementary)]
    _admin(*argv, name)
    entry = pwd.getpwnam(name)
    groups = tuple(sorted({g.gr_gid for g in grp.getgrall() if name in g.gr_mem} | {entry.pw_gid}))
    return User(name, entry.pw_uid, entry.pw_gid, groups)


def _remove(names: list[str], group: str | None) -> None:
    userdel, groupdel = _tool("userdel"), _tool("groupdel")
    assert userdel and groupdel
    problems = []
    for name in names:
        try:
            _admin(userdel, name)
        except RuntimeError as e:
            problems.append(str(e))
    if group is not None:
        try:
            _admin(groupdel, group)
        except RuntimeError as e:
            problems.append(str(e))
    if problems:
        raise RuntimeError("; ".join(problems))


@pytest.fixture(scope="session")
def users() -> Iterator[Users]:
    """A victim and an attacker sharing a group, and an outsider; removed at the end."""
    reason = _why_not()
    if reason is not None:
        pytest.skip(reason)
    remove_stale(keep_pid=os.getpid())
    base = f"{PREFIX}{os.getpid()}"
    made: list[str] = []
    group_name: str | None = None
    try:
        groupadd = _tool("groupadd")
        assert groupadd
        _admin(groupadd, "--system", f"{base}g")
        group_name = f"{base}g"
        group = Group(group_name, grp.getgrnam(group_name).gr_gid)
        roles = {}
        for role, letter, supplementary in (
            ("victim", "v", [group_name]),
            ("attacker", "a", [group_name]),
            ("outsider", "o", []),
        ):
            made.append(f"{base}{letter}")
            roles[role] = _make(f"{base}{letter}", supplementary)
        yield Users(roles["victim"], roles["attacker"], roles["outsider"], group)
    finally:
        _remove([name for name in made if _exists(name)], group_name)


def _exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _argv(user: User, mode: str, *rest: str) -> list[str]:
    groups = ",".join(str(g) for g in user.groups)
    return [sys.executable, str(AS_USER), str(user.uid), str(user.gid), groups, mode, *rest]


def as_user(user: User, code: str, *args: str, timeout: float = WAIT) -> subprocess.CompletedProcess[str]:
    """Runs Python `code` (with `args` as sys.argv[1:]) as `user`, to completion (bounded)."""
    return subprocess.run(
        _argv(user, "code", code, *args), capture_output=True, text=True, timeout=timeout, check=False
    )


def popen_as(user: User, code: str, *args: str) -> subprocess.Popen[str]:
    """Starts Python `code` as `user` with pipes for stdin, stdout and stderr
    (text, line-buffered); the caller ends it (kill and wait, bounded)."""
    return subprocess.Popen(
        _argv(user, "code", code, *args),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )


def cli_as(user: User, *args: str, timeout: float = WAIT) -> subprocess.CompletedProcess[str]:
    """Runs `namedipc ARGS` as `user`, to completion (bounded)."""
    return subprocess.run(_argv(user, "cli", *args), capture_output=True, text=True, timeout=timeout, check=False)


def popen_cli_as(user: User, *args: str) -> subprocess.Popen[str]:
    """Starts `namedipc ARGS` as `user` with pipes; the caller ends it."""
    return subprocess.Popen(
        _argv(user, "cli", *args),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )


def main_remove_stale() -> None:
    """What ./dev.sh runs after the tests: removes the users of runs that are gone."""
    if os.geteuid() == 0 and _why_not() is None:
        for gone in remove_stale():
            print(f"removed the leftover test user or group {gone}")
