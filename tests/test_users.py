"""The throwaway users of the multi-user tests (tests/support/users.py) are
real, distinct, unprivileged, in the groups they should be, and removed."""

from __future__ import annotations

import grp
import json
import os
import pwd
import subprocess
import sys

import namedipc
from support.names import Names, semaphore_file
from support.users import Users, as_user, cli_as, remove_stale


def test_each_user_is_real_and_unprivileged(users: Users) -> None:
    for user in (users.victim, users.attacker, users.outsider):
        done = as_user(user, "print(json.dumps([os.getresuid(), os.getresgid(), os.getgroups()]))")
        assert done.returncode == 0, done.stderr
        uids, gids, groups = json.loads(done.stdout)
        assert uids == [user.uid] * 3 and gids == [user.gid] * 3
        assert set(groups) == set(user.groups)
        assert user.uid != 0 and pwd.getpwuid(user.uid).pw_name == user.name
    assert len({users.victim.uid, users.attacker.uid, users.outsider.uid}) == 3
    members = set(grp.getgrgid(users.group.gid).gr_mem)
    assert members == {users.victim.name, users.attacker.name}
    assert users.group.gid not in users.outsider.groups


def test_permission_bits_bind_them(users: Users, names: Names) -> None:
    """Root's file with mode 0600 is closed to the other user: the privileges really dropped."""
    name = names()
    sem = namedipc.Semaphore(name, namedipc.O_CREX, mode=0o600)
    try:
        done = as_user(users.outsider, f"namedipc.Semaphore({name!r})")
        assert done.returncode != 0 and "PermissionsError" in done.stderr, done.stderr
        assert semaphore_file(name).stat().st_uid == 0
    finally:
        sem.unlink()
        sem.close()


def test_the_command_runs_as_another_user(users: Users) -> None:
    done = cli_as(users.attacker, "--version")
    assert done.returncode == 0 and done.stdout.startswith("namedipc "), (done.stdout, done.stderr)


def test_a_killed_runs_users_are_removed_later(users: Users) -> None:
    """Users named after a pid that is gone are removed by remove_stale; the
    users of this (live) run are not."""
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    pid = int(dead.stdout)
    name = f"nipc{pid}o"
    subprocess.run(
        [
            "useradd",
            "--system",
            "--no-create-home",
            "--user-group",
            "--shell",
            "/usr/sbin/nologin",
            "--comment",
            "namedipc test user (removed by the tests)",
            name,
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    try:
        assert name in remove_stale(keep_pid=os.getpid())
        assert name not in {e.pw_name for e in pwd.getpwall()}
        assert users.victim.name in {e.pw_name for e in pwd.getpwall()}
    finally:
        subprocess.run(["userdel", name], capture_output=True, timeout=30, check=False)
