"""`namedipc ls|info|rm|run --redis URL` (docs/cli.md, "Distributed
semaphores"), against real redis-server processes that each test starts on a
free loopback port and stops by pid (tests/support/redis_server.py). Lease
losses are real: the server is paused past the lease (SIGSTOP), or a TCP
proxy between `run` and the server drops every byte."""

from __future__ import annotations

import os
import re
import secrets
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from support.names import Names, robust_file
from support.processes import Peer
from support.redis_server import RedisServer, RedisServers, free_port, random_password, tls_supported
from support.tcp_proxy import TcpProxy
from support.waiting import WAIT, poll_until, process_gone
from test_cli import (  # the local command's helpers; the `entry` fixture runs each entry point
    HOLD,
    TRAP,
    assert_valid,
    entry,  # noqa: F401 - a fixture, found by pytest in this module's namespace
    namedipc_cli,
    parse,
    rust_binary,  # noqa: F401 - the fixture `entry` needs
    script,
)

pytest_plugins = ["support.redis_fixtures"]

# The exit code of `run --redis` when the lease was lost (docs/cli.md).
LEASE_LOST = 124

# A command that reports its pid, ignores SIGTERM (saying so), and holds on
# until it reads a line or is killed.
STUBBORN = """
import os, signal, sys
signal.signal(signal.SIGTERM, lambda signum, frame: print("got", signum, flush=True))
print("ready", os.getpid(), flush=True)
sys.stdin.readline()
"""

# A command that prints its grant and holds on until it reads a line.
SHOW_GRANT = """
import os, sys
print("grant", os.environ["NAMEDIPC_FENCE"], os.environ["NAMEDIPC_SLOT"], flush=True)
sys.stdin.readline()
"""


def unique_name() -> str:
    return f"/cli-{os.getpid()}-{secrets.token_hex(4)}"


@pytest.fixture
def name() -> str:
    """A name of its own (the server is the test's own too: nothing to remove)."""
    return unique_name()


def redis_run(url: str, name: str, *args: str | Path) -> list[str]:
    """The command line of `namedipc run --redis URL NAME ARGS` (through the script)."""
    return [*script(), "run", "--redis", url, name, *map(str, args)]


def info(url: str, name: str) -> dict[str, Any]:
    """`info --redis URL NAME --json`: the one object, checked against the schema."""
    done = namedipc_cli("info", "--redis", url, name, "--json")
    assert done.returncode == 0, done.stderr
    document = parse(done.stdout)
    assert_valid(document)
    (found,) = document["objects"]
    assert found["type"] == "redis"
    return dict(found)


def wait_for(url: str, name: str, check: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
    """Looks at the semaphore until `check` holds (bounded): a state waited for, not a time."""
    seen: list[dict[str, Any]] = []

    def reached() -> dict[str, Any] | None:
        seen[:] = [info(url, name)]
        return seen[0] if check(seen[0]) else None

    found = poll_until(reached, what=lambda: f"{name}: {what}; last seen {seen}")
    assert found is not None
    return found


def blocked_waiters(server: RedisServer) -> int:
    """Clients of `server` blocked in BLPOP now (a waiting `run`)."""
    listing = server.command("CLIENT", "LIST")
    assert isinstance(listing, bytes)
    return sum(" cmd=blpop " in f" {line} " for line in listing.decode().splitlines())


def connections_received(server: RedisServer) -> int:
    """How many connections the server has accepted so far (this one included)."""
    stats = server.command("INFO", "stats")
    assert isinstance(stats, bytes)
    found = re.search(r"^total_connections_received:(\d+)", stats.decode(), re.M)
    assert found, stats
    return int(found[1])


# -- run: exit codes, the grant, the slot given back


def test_every_entry_point_runs_with_redis(entry: list[str], redis_server: RedisServer, name: str) -> None:  # noqa: F811
    url = redis_server.url()
    done = namedipc_cli(
        "run", "--redis", url, name, "--", "sh", "-c", 'echo "$NAMEDIPC_FENCE $NAMEDIPC_SLOT"; exit 7', entry=entry
    )
    assert done.returncode == 7, done.stderr
    fence, slot = done.stdout.split()
    assert int(fence) > 0 and slot == "0"
    assert done.stderr == ""
    after = info(url, name)
    assert (after["slots"], after["free"], after["holders"]) == (1, 1, []), "the slot is back as soon as run ends"


def test_run_exits_with_the_status_of_cmd(redis_server: RedisServer, name: str, tmp_path: Path) -> None:
    url = redis_server.url()
    assert namedipc_cli("run", "--redis", url, name, "--", "true").returncode == 0
    assert namedipc_cli("run", "--redis", url, name, "--", "sh", "-c", "exit 3").returncode == 3
    killed = namedipc_cli("run", "--redis", url, name, "--", "sh", "-c", "kill -TERM $$")
    assert killed.returncode == 128 + signal.SIGTERM
    missing = namedipc_cli("run", "--redis", url, name, "--", "namedipc-no-such-command")
    assert missing.returncode == 127
    assert "cannot run 'namedipc-no-such-command': command not found" in missing.stderr
    not_executable = tmp_path / "job.sh"
    not_executable.write_text("#!/bin/sh\n")
    refused = namedipc_cli("run", "--redis", url, name, "--", not_executable)
    assert refused.returncode == 126 and "cannot run" in refused.stderr
    echoed = namedipc_cli("run", "--redis", url, name, "--lease", "3", "echo", "-n", "--timeout")
    assert (echoed.returncode, echoed.stdout) == (0, "--timeout")
    after = info(url, name)
    assert (after["free"], after["holders"]) == (1, []), "no failed start kept the slot"


def test_cmd_gets_its_fence_and_slot(redis_server: RedisServer, name: str, programs: type[Peer]) -> None:
    url = redis_server.url()
    first = programs(*redis_run(url, name, "-n", "2", "--", sys.executable, "-c", SHOW_GRANT))
    _, fence1, slot1 = first.expect("grant").split()
    second = programs(*redis_run(url, name, "-n", "2", "--", sys.executable, "-c", SHOW_GRANT))
    _, fence2, slot2 = second.expect("grant").split()
    assert {slot1, slot2} == {"0", "1"}
    assert int(fence2) > int(fence1) > 0, "each grant's fence is larger than every one before"
    held = info(url, name)
    assert held["free"] == 0
    by_pid = {h["pid"]: h for h in held["holders"]}
    assert (by_pid[first.proc.pid]["fence"], by_pid[first.proc.pid]["slot"]) == (int(fence1), int(slot1))
    assert (by_pid[second.proc.pid]["fence"], by_pid[second.proc.pid]["slot"]) == (int(fence2), int(slot2))
    for peer in (first, second):
        peer.send("go")
        peer.finish()
    again = namedipc_cli("run", "--redis", url, name, "--", "sh", "-c", 'echo "$NAMEDIPC_FENCE"')
    assert int(again.stdout) > int(fence2), "fences never go back"


def test_run_never_lets_more_than_slots_commands_in(redis_server: RedisServer, name: str, tmp_path: Path) -> None:
    """Six runs on two slots, the oracle a kernel flock'ed file (test_cli's SEAT)."""
    from test_cli import SEAT

    state = tmp_path / "seats"
    state.write_text("0 0 0")
    jobs = [
        Peer(*redis_run(redis_server.url(), name, "-n", "2", "--", sys.executable, "-c", SEAT, state)) for _ in range(6)
    ]
    try:
        codes = [job.proc.wait(WAIT * 3) for job in jobs]
    finally:
        for job in jobs:
            job.kill()
    assert codes == [0] * 6, [job.communicate() for job in jobs]
    inside, most, entered = map(int, state.read_text().split())
    assert (inside, entered) == (0, 6)
    assert most == 2, f"{most} commands were inside at once with 2 slots"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_to_run_reaches_cmd_and_the_slot_comes_back(
    signum: signal.Signals, redis_server: RedisServer, name: str, programs: type[Peer]
) -> None:
    url = redis_server.url()
    job = programs(*redis_run(url, name, "--", sys.executable, "-c", TRAP))
    job.expect("ready")
    assert info(url, name)["free"] == 0
    os.kill(job.proc.pid, signum)
    job.expect(f"got {int(signum)}")
    assert job.proc.wait(WAIT) == 42, "run exits with CMD's status after passing the signal on"
    after = info(url, name)
    assert (after["free"], after["holders"]) == (1, []), "the slot is back when run ends, not when its lease runs out"


def test_sigterm_to_run_ends_a_cmd_that_does_not_handle_it(
    redis_server: RedisServer, name: str, programs: type[Peer]
) -> None:
    url = redis_server.url()
    job = programs(*redis_run(url, name, "--", "sh", "-c", "echo ready; exec sleep 60"))
    job.expect("ready")
    os.kill(job.proc.pid, signal.SIGTERM)
    assert job.proc.wait(WAIT) == 128 + signal.SIGTERM
    assert info(url, name)["free"] == 1


def test_a_signal_while_waiting_ends_run_without_starting_cmd(
    redis_server: RedisServer, name: str, programs: type[Peer], tmp_path: Path
) -> None:
    url = redis_server.url()
    holder = programs(*redis_run(url, name, "--", sys.executable, "-c", HOLD))
    holder.expect("holding")
    marker = tmp_path / "started"
    waiter = programs(*redis_run(url, name, "--", "touch", marker))
    poll_until(lambda: blocked_waiters(redis_server) == 1, what="the second run blocked waiting for a slot")
    os.kill(waiter.proc.pid, signal.SIGTERM)
    assert waiter.proc.wait(WAIT) == 128 + signal.SIGTERM
    assert not marker.exists()
    held = info(url, name)
    assert [h["pid"] for h in held["holders"]] == [holder.proc.pid], "the waiter took nothing"
    holder.send("go")
    holder.finish()
    assert info(url, name)["free"] == 1


def test_run_timeout_exits_75_or_the_chosen_code(redis_server: RedisServer, name: str, programs: type[Peer]) -> None:
    url = redis_server.url()
    holder = programs(*redis_run(url, name, "--", sys.executable, "-c", HOLD))
    holder.expect("holding")
    started = time.monotonic()
    done = namedipc_cli("run", "--redis", url, name, "--timeout", "0.3", "--", "true")
    assert time.monotonic() - started >= 0.3
    assert done.returncode == 75, done.stderr
    assert done.stderr.startswith(
        f"namedipc: no slot of redis semaphore '{name}' came free within 0.3 s "
        f"(1 slot, held by pid {holder.proc.pid} on "
    ), done.stderr
    assert done.stderr.endswith("); try again later or raise --timeout\n"), done.stderr
    assert namedipc_cli("run", "--redis", url, name, "--timeout", "0", "-E", "9", "--", "true").returncode == 9
    noted = namedipc_cli("run", "--redis", url, name, "-n", "5", "--timeout", "0", "--", "true")
    assert "already exists with 1 slot; -n 5 applies only when run creates it" in noted.stderr
    holder.send("go")
    holder.finish()
    assert namedipc_cli("run", "--redis", url, name, "--timeout", "0", "--", "true").returncode == 0


def test_a_waiting_run_gets_the_slot_when_it_is_released(
    redis_server: RedisServer, name: str, programs: type[Peer]
) -> None:
    url = redis_server.url()
    holder = programs(*redis_run(url, name, "--", sys.executable, "-c", HOLD))
    holder.expect("holding")
    waiter = programs(*redis_run(url, name, "--timeout", str(WAIT), "--", "echo", "ran"))
    poll_until(lambda: blocked_waiters(redis_server) == 1, what="the second run blocked waiting for a slot")
    holder.send("go")
    holder.finish()
    out, err = waiter.communicate()
    assert (waiter.proc.returncode, out, err) == (0, "ran\n", "")


# -- run: the lease lost


def test_cmd_is_stopped_when_the_server_is_paused_past_the_lease(
    redis_server: RedisServer, name: str, programs: type[Peer]
) -> None:
    """The server answers nothing; the lease cannot be renewed. CMD gets
    SIGTERM at the local deadline, while the server is still paused."""
    url = redis_server.url()
    job = programs(*redis_run(url, name, "--lease", "1", "--", sys.executable, "-c", TRAP))
    job.expect("ready")
    with redis_server.paused():
        paused_at = time.monotonic()
        job.expect(f"got {int(signal.SIGTERM)}")
        assert time.monotonic() - paused_at < 1.0 + 1.5, "stopped by the local deadline, within about a lease"
        assert job.proc.wait(WAIT) == LEASE_LOST
        assert redis_server.is_paused, "all of it happened before the server came back"
    _, err = job.communicate()
    assert f"lease of redis semaphore '{name}' was lost while CMD ran" in err, err
    assert "SIGTERM now, SIGKILL in 2 s" in err, err
    # Nothing of it is left on the server (released, or expired by now).
    wait_for(url, name, lambda o: o["free"] == 1, "the lost slot free again")


def test_a_cmd_that_ignores_sigterm_gets_sigkill_after_kill_after(
    redis_server: RedisServer, name: str, programs: type[Peer], tcp_proxies: Callable[[int], TcpProxy]
) -> None:
    """Renewals cut off by a proxy that drops every byte: CMD gets SIGTERM,
    ignores it, and gets SIGKILL --kill-after later; run exits 124. The
    server, reached directly, admits a new holder once it has expired the lease."""
    proxy = tcp_proxies(redis_server.port)
    through_proxy = proxy.url_for(redis_server.url(), redis_server.port)
    job = programs(
        *redis_run(through_proxy, name, "--lease", "1", "--kill-after", "0.5", "--", sys.executable, "-c", STUBBORN)
    )
    cmd_pid = int(job.expect("ready").split()[1])
    dropped_at = time.monotonic()
    proxy.drop()
    job.expect(f"got {int(signal.SIGTERM)}")
    assert job.proc.wait(WAIT) == LEASE_LOST
    # SIGTERM came after the drop, SIGKILL at least --kill-after later.
    assert time.monotonic() - dropped_at >= 0.5
    # CMD ignores SIGTERM and would read its stdin (still open) for ever: it is gone, so it was killed.
    poll_until(lambda: process_gone(cmd_pid), what="CMD killed")
    _, err = job.communicate()
    assert "SIGTERM now, SIGKILL in 0.5 s" in err, err
    # The server expires the lease by its own clock; a new holder gets in, with a larger fence.
    new = namedipc_cli("run", "--redis", redis_server.url(), name, "--timeout", str(WAIT), "--", "true")
    assert new.returncode == 0, new.stderr


def test_cmd_gets_sigterm_at_once_if_run_is_killed(redis_server: RedisServer, name: str, programs: type[Peer]) -> None:
    """Nothing renews the lease once run is dead: CMD must not go on."""
    job = programs(*redis_run(redis_server.url(), name, "--", sys.executable, "-c", TRAP))
    cmd_pid = int(job.expect("ready").split()[1])
    try:
        job.proc.kill()
        assert job.proc.wait(WAIT) == -signal.SIGKILL
        # CMD still writes to the same pipe. The parent-death signal comes
        # once per thread of run as they exit one by one (the kernel hands
        # CMD to the next thread of the process and signals again), so a
        # second SIGTERM may interrupt the first handler's print.
        said = job.expect("got")
        assert said.split()[-1] == str(int(signal.SIGTERM)) and set(said.split()) <= {
            "got",
            str(int(signal.SIGTERM)),
        }, said
        poll_until(lambda: process_gone(cmd_pid), what="CMD ended")
    finally:
        if not process_gone(cmd_pid):
            os.kill(cmd_pid, signal.SIGKILL)


# -- ls, info, rm


def test_ls_lists_every_semaphore_with_its_holders(redis_server: RedisServer, programs: type[Peer]) -> None:
    url = redis_server.url()
    busy, idle = sorted([unique_name(), unique_name()])
    holder = programs(*redis_run(url, busy, "-n", "2", "--", sys.executable, "-c", HOLD))
    holder.expect("holding")
    assert namedipc_cli("run", "--redis", url, idle, "-n", "3", "--", "true").returncode == 0
    try:
        table = namedipc_cli("ls", "--redis", url)
        assert table.returncode == 0, table.stderr
        lines = table.stdout.splitlines()
        assert lines[0].split() == ["TYPE", "NAME", "STATE"]
        assert re.fullmatch(rf"redis +{busy} +1 of 2 slots free", lines[1]), lines
        assert re.fullmatch(
            rf" +- slot 0: pid {holder.proc.pid} on \S+( for \d+s)?, lease expires in \d+\.\ds, fence \d+", lines[2]
        ), lines
        assert re.fullmatch(rf"redis +{idle} +3 of 3 slots free", lines[3]), lines
        assert len(lines) == 4, lines

        document = parse(namedipc_cli("ls", "--redis", url, "--json").stdout)
        assert_valid(document)
        assert (document["redis"], document["mqueue_dir"], document["notes"]) == (url, None, [])
        by_name = {o["name"]: o for o in document["objects"]}
        assert [o["name"] for o in document["objects"]] == [busy, idle], "sorted by name"
        assert (by_name[busy]["slots"], by_name[busy]["free"]) == (2, 1)
        (lease,) = by_name[busy]["holders"]
        assert (lease["pid"], lease["slot"]) == (holder.proc.pid, 0)
        assert 0 < lease["expires_in"] <= 10.0 and lease["fence"] > 0
        assert abs(lease["since"] - redis_server.time()) < 60
        assert (by_name[idle]["slots"], by_name[idle]["free"], by_name[idle]["holders"]) == (3, 3, [])
    finally:
        holder.send("go")
        holder.finish()


def test_ls_of_an_empty_server(redis_server: RedisServer) -> None:
    url = redis_server.url()
    table = namedipc_cli("ls", "--redis", url)
    assert (table.returncode, table.stdout, table.stderr) == (0, f"no redis semaphores on {url}\n", "")
    document = parse(namedipc_cli("ls", "--redis", url, "--json").stdout)
    assert_valid(document)
    assert document["objects"] == []


def test_info_describes_one_semaphore(redis_server: RedisServer, name: str, programs: type[Peer]) -> None:
    url = redis_server.url()
    holder = programs(*redis_run(url, name, "-n", "2", "--", sys.executable, "-c", HOLD))
    holder.expect("holding")
    try:
        text = namedipc_cli("info", "--redis", url, name.lstrip("/"))  # the leading slash may be left out
        assert text.returncode == 0, text.stderr
        lines = text.stdout.splitlines()
        assert lines[:3] == [f"redis semaphore {name}", f"  server   {url}", "  slots    2 (1 free)"], lines
        assert re.fullmatch(
            rf"  holders  slot 0: pid {holder.proc.pid} on \S+ since \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d UTC"
            r"( \(\d+s ago\))?, lease expires in \d+\.\ds, fence \d+",
            lines[3],
        ), lines
        found = info(url, name)
        assert [h["pid"] for h in found["holders"]] == [holder.proc.pid]
    finally:
        holder.send("go")
        holder.finish()


def test_info_of_nothing_exits_1_with_a_message_and_an_empty_document(redis_server: RedisServer, name: str) -> None:
    url = redis_server.url()
    says = (
        f"namedipc: no redis semaphore is named '{name}' on {url}; "
        "`namedipc ls --redis URL` lists the semaphores there are\n"
    )
    text = namedipc_cli("info", "--redis", url, name)
    assert (text.returncode, text.stdout, text.stderr) == (1, "", says)
    done = namedipc_cli("info", "--redis", url, name, "--json")
    assert (done.returncode, done.stderr) == (1, says)
    document = parse(done.stdout)
    assert_valid(document)
    assert document["objects"] == []


def test_rm_removes_semaphores_and_goes_on_after_a_missing_one(redis_server: RedisServer) -> None:
    url = redis_server.url()
    first, missing, second = unique_name(), unique_name(), unique_name()
    for made in (first, second):
        assert namedipc_cli("run", "--redis", url, made, "--", "true").returncode == 0
    done = namedipc_cli("rm", "--redis", url, first, missing, second)
    assert done.returncode == 1
    assert done.stdout.splitlines() == [f"removed redis semaphore {first}", f"removed redis semaphore {second}"]
    assert f"no redis semaphore is named '{missing}' on {url}" in done.stderr
    assert parse(namedipc_cli("ls", "--redis", url, "--json").stdout)["objects"] == []
    assert redis_server.keys() == [], "every key of the semaphores is gone"


def test_rm_of_a_semaphore_in_use_says_its_holders_lose_their_leases(
    redis_server: RedisServer, name: str, programs: type[Peer]
) -> None:
    url = redis_server.url()
    job = programs(*redis_run(url, name, "--lease", "1", "--", sys.executable, "-c", TRAP))
    job.expect("ready")
    done = namedipc_cli("rm", "--redis", url, name)
    assert (done.returncode, done.stdout) == (0, f"removed redis semaphore {name}\n"), done.stderr
    assert f"1 holder still held a slot of redis semaphore '{name}': their leases are lost" in done.stderr
    # The holder learns it at its next renewal: its CMD is stopped.
    job.expect(f"got {int(signal.SIGTERM)}")
    assert job.proc.wait(WAIT) == LEASE_LOST


# -- URLs, servers that cannot be reached, and staying local without --redis


def test_a_password_is_never_shown(redis_servers: RedisServers, name: str) -> None:
    secret = random_password()
    server = redis_servers(password=secret)
    url = server.url()
    assert namedipc_cli("run", "--redis", url, name, "--", "true").returncode == 0
    document = parse(namedipc_cli("ls", "--redis", url, "--json").stdout)
    assert_valid(document)
    assert secret not in document["redis"] and "***" in document["redis"]
    assert [o["name"] for o in document["objects"]] == [name]
    wrong = server.url(password="not-" + secret)
    for args, code in [(["ls"], 1), (["info", name], 1), (["rm", name], 1), (["run", name, "--", "true"], 125)]:
        command, *rest = args
        done = namedipc_cli(command, "--redis", wrong, *rest)
        assert done.returncode == code, (args, done.stderr)
        assert done.stderr.startswith("namedipc: ") and secret not in done.stderr, done.stderr
        assert "***" in done.stderr, done.stderr


@pytest.mark.skipif(not tls_supported(), reason="this redis-server was built without TLS")
def test_tls(redis_servers: RedisServers, name: str) -> None:
    """rediss:// URLs: the test's own CA trusted with ?ca=, or no check with
    #insecure; the system's roots refuse the certificate."""
    server = redis_servers(tls=True)
    assert server.ca is not None
    url = f"{server.url()}?ca={server.ca}"
    done = namedipc_cli("run", "--redis", url, name, "--", "sh", "-c", 'echo "$NAMEDIPC_SLOT"')
    assert (done.returncode, done.stdout, done.stderr) == (0, "0\n", "")
    for listed in (url, f"{server.url()}#insecure"):
        document = parse(namedipc_cli("ls", "--redis", listed, "--json").stdout)
        assert [o["name"] for o in document["objects"]] == [name]
    untrusted = namedipc_cli("ls", "--redis", server.url())
    assert untrusted.returncode == 1 and "certificate" in untrusted.stderr, untrusted.stderr


def test_an_unreachable_server_is_an_error_not_a_hang() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    for args, code in [(["ls"], 1), (["info", "/x"], 1), (["rm", "/x"], 1), (["run", "/x", "--", "true"], 125)]:
        command, *rest = args
        done = namedipc_cli(command, "--redis", url, *rest)
        assert done.returncode == code, (args, done.stderr)
        assert url in done.stderr, done.stderr


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["ls", "--redis", ""], 2, "the URL is empty (is NAMEDIPC_REDIS set?)"),
        (["ls", "--redis", "redis://127.0.0.1:1/0", "--type", "sem"], 2, "cannot be used with"),
        (["rm", "--redis", "redis://127.0.0.1:1/0", "--stale"], 2, "cannot be used with"),
        (["run", "/x", "--lease", "3", "--", "true"], 125, "--redis"),
        (["run", "/x", "--kill-after", "3", "--", "true"], 125, "--redis"),
        (["run", "--redis", "redis://127.0.0.1:1/0", "/x", "--lease", "0", "--", "true"], 125, "positive"),
        (["run", "--redis", "", "/x", "--", "true"], 125, "the URL is empty"),
    ],
)
def test_bad_redis_arguments_get_a_message_and_the_documented_code(args: list[str], code: int, says: str) -> None:
    done = namedipc_cli(*args)
    assert done.returncode == code, done.stderr
    assert says in done.stderr, done.stderr


def test_without_redis_nothing_goes_to_redis_whatever_the_environment_says(
    redis_server: RedisServer, robust_names: Names, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NAMEDIPC_REDIS", redis_server.url())
    local = robust_names()
    before = connections_received(redis_server)
    ran = namedipc_cli("run", local, "--", "sh", "-c", 'echo "fence=${NAMEDIPC_FENCE-unset}"')
    assert (ran.returncode, ran.stdout) == (0, "fence=unset\n"), ran.stderr
    assert not robust_file(local).exists(), "a local robust semaphore, removed by its last user"
    assert namedipc_cli("ls", "--json").returncode == 0
    assert namedipc_cli("info", local).returncode == 1
    assert namedipc_cli("rm", local).returncode == 1
    # One more connection: the one that asks.
    assert connections_received(redis_server) == before + 1, "a command without --redis connected to the server"
    assert redis_server.keys() == []


def test_help_names_the_redis_options() -> None:
    for command, words in {
        "ls": ["--redis <URL>"],
        "info": ["--redis <URL>"],
        "rm": ["--redis <URL>"],
        "run": ["--redis <URL>", "--lease", "--kill-after", "NAMEDIPC_FENCE", "NAMEDIPC_SLOT", "124"],
    }.items():
        helped = namedipc_cli(command, "--help")
        assert helped.returncode == 0, helped.stderr
        for word in words:
            assert word in helped.stdout, f"`namedipc {command} --help` lacks {word!r}:\n{helped.stdout}"
    assert "124 if the lease was lost" in namedipc_cli("--help").stdout
