"""The `namedipc` command (docs/cli.md), run as a separate process through
its three entry points: the `namedipc` script, `python -m namedipc` and the
plain Rust binary. Every object gets a unique name and is removed at
teardown; every process a test starts is bounded and killed at teardown."""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from jsonschema import TypeChecker, ValidationError
from jsonschema.protocols import Validator
from jsonschema.validators import extend, validator_for

import namedipc
from support.build import cargo_build
from support.lines import Reader
from support.names import Names, robust_file
from support.processes import Peer, read_line
from support.waiting import WAIT, poll_until

ROOT = Path(__file__).resolve().parent.parent
SHM = Path("/dev/shm")
SCRIPT = Path(sys.executable).parent / "namedipc"
MODULE = [sys.executable, "-m", "namedipc"]

# A command that reports its pid, holds on until it reads a line (or EOF),
# and says so before it exits.
HOLD = """
import os, sys
print("holding", os.getpid(), flush=True)
sys.stdin.readline()
print("released", flush=True)
"""

# A command that reports the signals it gets and exits with 42 on the first.
TRAP = """
import os, signal, sys
def handler(signum, frame):
    print("got", signum, flush=True)
    sys.exit(42)
for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(s, handler)
print("ready", os.getpid(), flush=True)
while True:
    signal.pause()
"""

# The independent oracle of the contention test: each command counts itself
# in and out of a file under a kernel flock, keeping the most seen inside
# at once; the first waits (bounded) until a second one has come in.
SEAT = """
import fcntl, sys, time
path = sys.argv[1]
def update(delta):
    with open(path, "r+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        inside, most, entered = map(int, f.read().split())
        inside += delta
        most = max(most, inside)
        entered += delta > 0
        f.seek(0)
        f.truncate()
        f.write(f"{inside} {most} {entered}")
        return most
most = update(+1)
deadline = time.monotonic() + 5
while most < 2 and time.monotonic() < deadline:
    time.sleep(0.005)
    most = update(0)
update(-1)
"""


def script() -> list[str]:
    if not SCRIPT.exists():
        pytest.fail(f"{SCRIPT} is missing: install the package into this virtualenv (maturin develop)")
    return [str(SCRIPT)]


@pytest.fixture(scope="session")
def rust_binary() -> Path:
    """The plain Rust binary, built once per session."""
    return cargo_build("the namedipc binary", "--features", "cli", "--bin", "namedipc")


@pytest.fixture(params=["script", "module", "rust"])
def entry(request: pytest.FixtureRequest) -> list[str]:
    """The command line that starts `namedipc`, for each entry point."""
    if request.param == "script":
        return script()
    if request.param == "module":
        return list(MODULE)
    binary: Path = request.getfixturevalue("rust_binary")
    return [str(binary)]


def namedipc_cli(
    *args: str | Path, entry: list[str] | None = None, timeout: float = WAIT
) -> subprocess.CompletedProcess[str]:
    """Runs `namedipc ARGS` to completion (bounded) through `entry` (default: the script)."""
    return subprocess.run(
        [*(entry or script()), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def parse(output: str) -> dict[str, Any]:
    def no_constant(value: str) -> None:
        raise AssertionError(f"JSON has {value}, which JSON does not allow")

    document = json.loads(output, parse_constant=no_constant)
    assert isinstance(document, dict), document
    return document


def info_json(name: str, *extra: str) -> dict[str, Any]:
    done = namedipc_cli("info", name, "--json", *extra)
    assert done.returncode == 0, done.stderr
    document = parse(done.stdout)
    assert_valid(document)
    return document


def only_object(name: str, *extra: str) -> dict[str, Any]:
    objects = info_json(name, *extra)["objects"]
    assert len(objects) == 1, objects
    found: dict[str, Any] = objects[0]
    return found


def wait_for(name: str, check: Any, what: str) -> dict[str, Any]:
    """Looks at the robust semaphore `name` until `check(object)` holds
    (bounded by WAIT): the test waits for the state itself, not for time."""
    seen: list[dict[str, Any]] = []

    def reached() -> dict[str, Any] | None:
        seen[:] = [only_object(name, "--type", "robust")]
        return seen[0] if check(seen[0]) else None

    found = poll_until(reached, what=lambda: f"{name}: {what}; last seen {seen}")
    assert found is not None
    return found


def mqueue_mounted() -> bool:
    return any(line.split()[2] == "mqueue" for line in Path("/proc/self/mounts").read_text().splitlines())


# -- the documented JSON schema, checked with the jsonschema package


def documented_schema() -> dict[str, Any]:
    """The JSON Schema in docs/cli.md: the tests check documents against
    the text users read, so the two cannot drift apart."""
    text = (ROOT / "docs" / "cli.md").read_text()
    blocks = [b for b in re.findall(r"```json\n(.*?)```", text, re.S) if '"$schema"' in b]
    assert len(blocks) == 1, "docs/cli.md should hold exactly one JSON Schema block"
    schema = json.loads(blocks[0])
    assert isinstance(schema, dict)
    return schema


def strict_integers(checker: TypeChecker, instance: object) -> bool:
    """JSON Schema counts 1.0 as an integer; the command prints integers as
    integers (Python's json reads 1.0 as a float), so here only an int is one."""
    return isinstance(instance, int) and not isinstance(instance, bool)


@functools.cache
def schema_validator() -> Validator:
    """A validator of the documented schema, for the draft its $schema names,
    after checking the schema itself against that draft's meta-schema."""
    schema = documented_schema()
    draft = validator_for(schema)
    known = draft.META_SCHEMA["$id"].rstrip("#")
    assert known == schema["$schema"], f"jsonschema does not know the draft {schema['$schema']}"
    draft.check_schema(schema)
    # (types-jsonschema leaves extend untyped.)
    strict: type[Validator] = extend(  # type: ignore[no-untyped-call]
        draft, type_checker=draft.TYPE_CHECKER.redefine("integer", strict_integers)
    )
    return strict(schema)


def describe(error: ValidationError) -> str:
    """The error, and for an object that matches none of the kinds (oneOf),
    what is wrong with it as the kind its "type" names."""
    said = f"{error.json_path}: {error.message}"
    branches: dict[object, list[ValidationError]] = {}
    for sub in error.context or []:
        branches.setdefault(sub.schema_path[0], []).append(sub)
    for subs in branches.values():
        if not any(list(sub.schema_path)[1:] == ["properties", "type", "const"] for sub in subs):
            said += "".join(f"\n  as its type: {sub.json_path}: {sub.message}" for sub in subs)
    return said


def schema_errors(document: dict[str, Any]) -> list[str]:
    """What is wrong with `document` under the documented schema (empty if nothing)."""
    return [describe(error) for error in schema_validator().iter_errors(document)]


def assert_valid(document: dict[str, Any]) -> None:
    errors = schema_errors(document)
    assert not errors, "\n".join(errors)


def test_the_validator_rejects_what_the_schema_forbids() -> None:
    good: dict[str, Any] = {
        "schema_version": 1,
        "objects": [
            {
                "type": "shm", "name": "/x", "path": "/dev/shm/x", "uid": 0, "user": "root",
                "mode": "0600", "created": 1.0, "age": 2.0, "problem": None, "size": 4096,
            }
        ],
        "mqueue_dir": None,
        "notes": [],
    }  # fmt: skip
    assert schema_errors(good) == []
    bad_cases: list[tuple[str, Any]] = [
        ("schema_version", 2),
        ("schema_version", True),
        ("objects", [{**good["objects"][0], "size": -1}]),
        ("objects", [{**good["objects"][0], "size": True}]),
        ("objects", [{**good["objects"][0], "size": 4096.0}]),
        ("objects", [{**good["objects"][0], "mode": "600"}]),
        ("objects", [{**good["objects"][0], "extra": 1}]),
        ("objects", [{**good["objects"][0], "type": "sem"}]),
        ("objects", [{k: v for k, v in good["objects"][0].items() if k != "uid"}]),
        ("mqueue_dir", 3),
    ]
    for key, value in bad_cases:
        assert schema_errors({**good, key: value}), f"{key}={value!r} passed"


# -- entry points, help, arguments


def test_every_entry_point_runs_the_same_command(entry: list[str], robust_name: str) -> None:
    version = namedipc_cli("--version", entry=entry)
    assert (version.returncode, version.stdout.strip()) == (0, f"namedipc {namedipc.VERSION}")
    listing = namedipc_cli("ls", "--type", "robust", "--json", entry=entry)
    assert listing.returncode == 0, listing.stderr
    assert_valid(parse(listing.stdout))
    ran = namedipc_cli("run", robust_name, "-n", "1", "--", "sh", "-c", "echo from cmd; exit 7", entry=entry)
    assert (ran.returncode, ran.stdout, ran.stderr) == (7, "from cmd\n", "")
    assert not robust_file(robust_name).exists(), "the last process to detach removes the semaphore"


def test_help_says_what_each_command_does() -> None:
    top = namedipc_cli("--help")
    assert top.returncode == 0
    for command in ("ls", "info", "rm", "run"):
        assert re.search(rf"^  {command} +\S", top.stdout, re.M), top.stdout
    assert "Exit codes" in top.stdout
    expected = {
        "ls": ["--type", "--json", "- robust:", "holders", "mqueue"],
        "info": ["NAME", "--json"],
        "rm": ["--stale", "--type", "no live process"],
        "run": ["--timeout", "--slots", "-E", "SIGTERM", "killed"],
    }
    for command, words in expected.items():
        helped = namedipc_cli(command, "--help")
        assert helped.returncode == 0, helped.stderr
        for word in words:
            assert word in helped.stdout, f"`namedipc {command} --help` lacks {word!r}:\n{helped.stdout}"


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["frobnicate"], 2, "unrecognized subcommand"),
        ([], 2, "Usage"),
        (["ls", "--type", "pipe"], 2, "possible values: sem, shm, mq, robust"),
        (["rm"], 2, "required"),
        (["rm", "--stale", "--type", "sem"], 2, "cannot be used with"),
        (["info"], 2, "required"),
        (["info", "/a/b"], 1, "invalid name \"/a/b\": a name is '/' followed by"),
        (["run", "/x"], 125, "required"),
        (["run", "/x", "-n", "0", "--", "true"], 125, "1..=65536"),
        (["run", "/x", "--timeout", "-1", "--", "true"], 125, "not a finite, non-negative number"),
        (["run", "/x", "--timeout", "soon", "--", "true"], 125, "not a number of seconds"),
        (["run", "/a/b", "--", "true"], 125, "invalid robust semaphore name"),
    ],
)
def test_bad_arguments_get_a_message_and_the_documented_code(args: list[str], code: int, says: str) -> None:
    done = namedipc_cli(*args)
    assert done.returncode == code, done.stderr
    assert says in done.stderr, done.stderr


# -- ls and info


def test_ls_lists_each_kind_with_owner_mode_age_and_state(
    sem_name: str, shm_name: str, robust_name: str, programs: type[Peer]
) -> None:
    sem = namedipc.Semaphore(sem_name, namedipc.O_CREX, initial_value=3)
    shm = namedipc.SharedMemory(shm_name, namedipc.O_CREX, size=8192)
    holder = programs(*script(), "run", robust_name, "-n", "2", "--", sys.executable, "-c", HOLD)
    holder.expect("holding")
    try:
        table = namedipc_cli("ls")
        assert table.returncode == 0, table.stderr
        lines = table.stdout.splitlines()
        assert lines[0].split() == ["TYPE", "NAME", "OWNER", "MODE", "AGE", "STATE"]
        rows = {line.split()[1]: line for line in lines[1:] if line.split()[0] in ("sem", "shm", "mq", "robust")}
        assert re.search(r"^sem +\S+ +root +0600 +\d+s +value 3$", rows[sem_name]), rows[sem_name]
        assert re.search(r"^shm +\S+ +root +0600 +\d+s +8\.0 KiB$", rows[shm_name]), rows[shm_name]
        assert re.search(
            r"^robust +\S+ +root +0600 +\d+s +1 of 2 slots free, 1 process attached$", rows[robust_name]
        ), rows[robust_name]
        holder_line = lines[lines.index(rows[robust_name]) + 1]
        assert re.search(rf"^ +- pid {holder.proc.pid} \(root\) holds a slot for \d+s \(alive\)$", holder_line)

        document = parse(namedipc_cli("ls", "--json").stdout)
        assert_valid(document)
        by_name = {(o["type"], o["name"]): o for o in document["objects"]}
        assert by_name["sem", sem_name]["value"] == 3
        assert by_name["sem", sem_name]["path"] == f"/dev/shm/sem.{sem_name[1:]}"
        assert by_name["shm", shm_name]["size"] == 8192
        robust = by_name["robust", robust_name]
        assert (robust["slots"], robust["free"], robust["attached"]) == (2, 1, 1)
        assert [(h["pid"], h["alive"]) for h in robust["holders"]] == [(holder.proc.pid, True)]
        for found in (by_name["sem", sem_name], by_name["shm", shm_name], robust):
            assert (found["uid"], found["mode"]) == (os.getuid(), "0600")
            assert 0 <= found["age"] < 60 and abs(time.time() - found["age"] - found["created"]) < 5
        kinds = ["sem", "shm", "mq", "robust"]
        order = [(kinds.index(o["type"]), o["name"]) for o in document["objects"]]
        assert order == sorted(order), "objects are sorted by type, then name"
    finally:
        holder.send("go")
        holder.finish()
        sem.close()
        shm.close_fd()


def test_ls_type_keeps_one_kind(sem_name: str, shm_name: str) -> None:
    sem = namedipc.Semaphore(sem_name, namedipc.O_CREX)
    shm = namedipc.SharedMemory(shm_name, namedipc.O_CREX, size=16)
    try:
        document = parse(namedipc_cli("ls", "--type", "shm", "--json").stdout)
        assert_valid(document)
        assert {o["type"] for o in document["objects"]} == {"shm"}
        names = [o["name"] for o in document["objects"]]
        assert shm_name in names and sem_name not in names
    finally:
        sem.close()
        shm.close_fd()


def test_ls_says_once_when_message_queues_cannot_be_listed(mq_name: str) -> None:
    mq = namedipc.MessageQueue(mq_name, namedipc.O_CREX, max_messages=2, max_message_size=16)
    try:
        table = namedipc_cli("ls")
        document = parse(namedipc_cli("ls", "--json").stdout)
        assert_valid(document)
        listed = [o["name"] for o in document["objects"] if o["type"] == "mq"]
        if mqueue_mounted():
            assert mq_name in listed and document["mqueue_dir"] is not None
            assert "mqueue" not in table.stderr
        else:
            assert table.stderr.count("no mqueue file system is mounted") == 1, table.stderr
            assert listed == [] and document["mqueue_dir"] is None
            assert len(document["notes"]) == 1 and "no mqueue file system is mounted" in document["notes"][0]
        # Not about queues, not about them: no note.
        assert namedipc_cli("ls", "--type", "sem").stderr == ""
    finally:
        mq.close()


def test_info_finds_a_message_queue_by_name_even_unmounted(mq_name: str) -> None:
    mq = namedipc.MessageQueue(mq_name, namedipc.O_CREX, max_messages=4, max_message_size=64)
    try:
        mq.send(b"one")
        mq.send(b"two")
        found = only_object(mq_name)
        assert found["type"] == "mq"
        assert (found["messages"], found["max_messages"], found["max_message_size"]) == (2, 4, 64)
        text = namedipc_cli("info", mq_name)
        assert text.returncode == 0, text.stderr
        assert text.stdout.startswith(f"message queue {mq_name}\n")
        assert re.search(r"^  messages +2$", text.stdout, re.M), text.stdout
    finally:
        mq.close()


def test_info_describes_every_object_with_the_name(names: Names, shm_names: Names) -> None:
    name = shm_names.track(names())
    sem = namedipc.Semaphore(name, namedipc.O_CREX, initial_value=1)
    shm = namedipc.SharedMemory(name, namedipc.O_CREX, size=100)
    try:
        text = namedipc_cli("info", name.lstrip("/"))  # the leading slash may be left out
        assert text.returncode == 0, text.stderr
        assert f"semaphore {name}\n" in text.stdout and f"shared memory segment {name}\n" in text.stdout
        assert re.search(r"^  size +100 bytes \(100 bytes\)$", text.stdout, re.M), text.stdout
        assert re.search(r"^  created +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(\d+s ago\)$", text.stdout, re.M)
        assert [o["type"] for o in info_json(name)["objects"]] == ["sem", "shm"]
        assert [o["type"] for o in info_json(name, "--type", "shm")["objects"]] == ["shm"]
    finally:
        sem.close()
        shm.close_fd()


def test_info_of_nothing_exits_1_with_a_message(sem_name: str) -> None:
    done = namedipc_cli("info", sem_name)
    assert done.returncode == 1
    assert done.stderr == (
        f"namedipc: no semaphore, shared memory segment, message queue or robust semaphore is named "
        f"'{sem_name}'; `namedipc ls` lists the objects there are\n"
    )
    assert namedipc_cli("info", sem_name, "--type", "robust").stderr.startswith(
        "namedipc: no robust semaphore is named"
    )


def test_info_json_of_nothing_prints_a_document_with_no_objects_and_exits_1(sem_name: str) -> None:
    """`info --json` prints the same document as `ls --json`, with only the
    objects named: here none. The exit code and the message stay those of
    `info` for a name nothing has."""
    for extra, says in [
        ([], "no semaphore, shared memory segment, message queue or robust semaphore is named"),
        (["--type", "robust"], "no robust semaphore is named"),
    ]:
        done = namedipc_cli("info", sem_name, "--json", *extra)
        assert done.returncode == 1, done.stderr
        assert done.stderr == f"namedipc: {says} '{sem_name}'; `namedipc ls` lists the objects there are\n"
        document = parse(done.stdout)
        assert_valid(document)
        assert (document["objects"], document["notes"]) == ([], [])
        listed = parse(namedipc_cli("ls", "--type", "sem", "--json").stdout)
        assert document["mqueue_dir"] == listed["mqueue_dir"]


def test_a_corrupt_file_is_listed_with_its_problem(sem_name: str, robust_names: Names) -> None:
    (SHM / f"sem.{sem_name[1:]}").write_bytes(b"")
    robust = robust_names()
    robust_file(robust).write_bytes(b"not a semaphore at all, but long enough for a header......." * 2)
    sem_found = only_object(sem_name)
    assert sem_found["value"] is None and "not a valid semaphore" in sem_found["problem"]
    robust_found = only_object(robust)
    assert robust_found["slots"] is None and "not a valid robust semaphore" in robust_found["problem"]
    table = namedipc_cli("ls", "--type", "sem").stdout
    assert re.search(rf"^sem +{sem_name} .*value \? \(not a valid semaphore: .*\)$", table, re.M), table


# -- rm


def test_rm_removes_objects_by_name(sem_name: str, shm_name: str, mq_name: str) -> None:
    namedipc.Semaphore(sem_name, namedipc.O_CREX).close()
    namedipc.SharedMemory(shm_name, namedipc.O_CREX, size=1).close_fd()
    namedipc.MessageQueue(mq_name, namedipc.O_CREX).close()
    done = namedipc_cli("rm", sem_name, shm_name, mq_name)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"removed semaphore {sem_name}",
        f"removed shared memory segment {shm_name}",
        f"removed message queue {mq_name}",
    ]
    for name in (sem_name, shm_name, mq_name):
        assert namedipc_cli("info", name).returncode == 1, f"{name} is still there"


def test_rm_goes_on_after_a_missing_name_and_exits_1(sem_name: str, shm_name: str) -> None:
    namedipc.SharedMemory(shm_name, namedipc.O_CREX, size=1).close_fd()
    done = namedipc_cli("rm", sem_name, shm_name)
    assert done.returncode == 1
    assert f"is named '{sem_name}'" in done.stderr
    assert done.stdout == f"removed shared memory segment {shm_name}\n"


def test_rm_of_a_name_with_several_kinds_needs_type(names: Names, shm_names: Names) -> None:
    name = shm_names.track(names())
    namedipc.Semaphore(name, namedipc.O_CREX).close()
    namedipc.SharedMemory(name, namedipc.O_CREX, size=1).close_fd()
    done = namedipc_cli("rm", name)
    assert done.returncode == 1
    assert f"'{name}' names a semaphore and a shared memory segment; say which to remove with --type" in done.stderr
    assert len(info_json(name)["objects"]) == 2, "nothing was removed"
    assert namedipc_cli("rm", "--type", "shm", name).returncode == 0
    assert [o["type"] for o in info_json(name)["objects"]] == ["sem"]


def test_rm_leaves_what_is_not_an_object_of_that_kind_alone(shm_names: Names, tmp_path: Path) -> None:
    target = tmp_path / "precious"
    target.write_text("keep me")
    link = shm_names()
    (SHM / link[1:]).symlink_to(target)
    directory = shm_names()
    (SHM / f"sem.{directory[1:]}").mkdir()
    shm_names.track(f"/sem.{directory[1:]}")
    for args, says in [
        (["--type", "shm", link], "is a symbolic link, not a shared memory segment"),
        ([link], "is named"),  # a symbolic link is not listed as anything
        (["--type", "sem", directory], "is a directory, not a semaphore"),
        (["--type", "shm", f"/sem.{directory[1:]}"], f"is the file of the semaphore '{directory}'"),
    ]:
        done = namedipc_cli("rm", *args)
        assert done.returncode == 1 and says in done.stderr, (args, done.stderr)
    assert (SHM / link[1:]).is_symlink() and target.read_text() == "keep me"
    assert (SHM / f"sem.{directory[1:]}").is_dir()


def test_rm_of_a_robust_semaphore_in_use_warns(robust_name: str, programs: type[Peer]) -> None:
    holder = programs(*script(), "run", robust_name, "--", sys.executable, "-c", HOLD)
    holder.expect("holding")
    done = namedipc_cli("rm", robust_name)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"removed robust semaphore {robust_name}\n"
    assert "1 process still had robust semaphore" in done.stderr
    assert not robust_file(robust_name).exists()
    holder.send("go")
    holder.finish()


# -- run


def test_run_exits_with_the_status_of_cmd(robust_name: str, tmp_path: Path) -> None:
    assert namedipc_cli("run", robust_name, "--", "true").returncode == 0
    assert namedipc_cli("run", robust_name, "--", "sh", "-c", "exit 3").returncode == 3
    assert namedipc_cli("run", robust_name, "--", "sh", "-c", "kill -TERM $$").returncode == 128 + signal.SIGTERM
    missing = namedipc_cli("run", robust_name, "--", "namedipc-no-such-command")
    assert missing.returncode == 127
    assert "cannot run 'namedipc-no-such-command': command not found" in missing.stderr
    not_executable = tmp_path / "job.sh"
    not_executable.write_text("#!/bin/sh\n")
    refused = namedipc_cli("run", robust_name, "--", not_executable)
    assert refused.returncode == 126 and "cannot run" in refused.stderr
    # Options after the name, CMD's own options left alone.
    echoed = namedipc_cli("run", robust_name, "-n", "3", "echo", "-n", "--timeout")
    assert (echoed.returncode, echoed.stdout) == (0, "--timeout")
    assert not robust_file(robust_name).exists()


def test_run_gives_cmd_default_signal_dispositions(robust_name: str) -> None:
    # The `namedipc` script is a Python program: it ignores SIGPIPE and SIGXFSZ itself.
    done = namedipc_cli("run", robust_name, "--", "grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status")
    assert done.returncode == 0, done.stderr
    masks = {k: int(v, 16) for k, v in (line.split(":") for line in done.stdout.splitlines())}
    assert masks["SigBlk"] == 0
    for s in (signal.SIGPIPE, signal.SIGXFSZ):
        assert not masks["SigIgn"] & (1 << (s - 1)), f"CMD starts with {s.name} ignored"


def test_run_never_lets_more_than_slots_commands_in_at_once(robust_name: str, tmp_path: Path) -> None:
    state = tmp_path / "seats"
    state.write_text("0 0 0")
    jobs = [
        subprocess.Popen(
            [*script(), "run", robust_name, "-n", "2", "--", sys.executable, "-c", SEAT, str(state)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    try:
        results = [job.communicate(timeout=WAIT * 3) for job in jobs]
    finally:
        for job in jobs:
            if job.poll() is None:
                job.kill()
                job.communicate()
    assert [job.returncode for job in jobs] == [0] * 6, results
    inside, most, entered = map(int, state.read_text().split())
    assert (inside, entered) == (0, 6)
    assert most == 2, f"{most} commands were inside at once with 2 slots"
    assert not robust_file(robust_name).exists(), "the last job to finish removes the semaphore"


def test_run_timeout_exits_75_or_the_chosen_code(robust_name: str, programs: type[Peer]) -> None:
    holder = programs(*script(), "run", robust_name, "--", sys.executable, "-c", HOLD)
    holder.expect("holding")
    started = time.monotonic()
    done = namedipc_cli("run", robust_name, "--timeout", "0.3", "--", "true")
    assert time.monotonic() - started >= 0.3
    assert done.returncode == 75
    assert done.stderr == (
        f"namedipc: no slot of robust semaphore '{robust_name}' came free within 0.3 s "
        f"(1 slot, held by pid {holder.proc.pid}); try again later or raise --timeout\n"
    )
    assert namedipc_cli("run", robust_name, "--timeout", "0", "-E", "9", "--", "true").returncode == 9
    noted = namedipc_cli("run", robust_name, "-n", "5", "--timeout", "0", "--", "true")
    assert "already exists with 1 slot; -n 5 applies only when run creates it" in noted.stderr
    holder.send("go")
    holder.finish()
    assert namedipc_cli("run", robust_name, "--timeout", "0", "--", "true").returncode == 0


@pytest.mark.parametrize("seconds", ["9.3e18", "1.8e19", "1e300"])
def test_run_timeout_too_long_for_the_clock_is_no_limit(seconds: str, robust_name: str, programs: type[Peer]) -> None:
    """A --timeout past what the clock can count to (from about 9.22e18 s)
    is a decimal number like any other: `run` waits as long as it takes,
    and neither panics nor refuses it."""
    done = namedipc_cli("run", robust_name, "--timeout", seconds, "--", "true")
    assert (done.returncode, done.stderr) == (0, "")
    holder = programs(*script(), "run", robust_name, "--", sys.executable, "-c", HOLD)
    holder.expect("holding")
    waiter = programs(*script(), "run", robust_name, "--timeout", seconds, "--", "echo", "ran")
    wait_for(robust_name, lambda o: o["attached"] == 2, "the second run attached and waiting")
    assert waiter.proc.poll() is None, "the waiting run has not given up"
    holder.send("go")
    holder.finish()
    out, err = waiter.communicate()
    assert (waiter.proc.returncode, out, err) == (0, "ran\n", "")
    assert not robust_file(robust_name).exists()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_run_passes_signals_on_to_cmd(
    entry: list[str], signum: signal.Signals, robust_name: str, programs: type[Peer]
) -> None:
    job = programs(*entry, "run", robust_name, "--", sys.executable, "-c", TRAP)
    job.expect("ready")
    os.kill(job.proc.pid, signum)
    job.expect(f"got {int(signum)}")
    assert job.proc.wait(WAIT) == 42, "namedipc exits with CMD's status after passing the signal on"
    assert not robust_file(robust_name).exists()


# For the terminal test: leaves the terminal's foreground process group,
# counts SIGINTs, and on SIGUSR2 reports the count and exits.
COUNT_INTS = """
import os, signal, sys
os.setpgid(0, 0)
seen = []
def on_int(signum, frame):
    seen.append(signum)
    print("got", signum, flush=True)
def on_usr2(signum, frame):
    print("ints", len(seen), flush=True)
    sys.exit(42)
signal.signal(signal.SIGINT, on_int)
signal.signal(signal.SIGUSR2, on_usr2)
print("ready", flush=True)
while True:
    signal.pause()
"""


def test_a_terminal_ctrl_c_is_not_passed_on(robust_name: str) -> None:
    """^C on a terminal: the kernel sends SIGINT to the whole foreground
    process group, so a CMD there has it already and namedipc must not pass
    on a second one. Here CMD has left that group, so it sees a SIGINT only
    if namedipc passes one on — which it would do before the SIGUSR2 sent
    after it."""
    import fcntl
    import pty
    import termios

    main, terminal = pty.openpty()

    def take_terminal() -> None:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    job = subprocess.Popen(
        [*script(), "run", robust_name, "--", sys.executable, "-c", COUNT_INTS],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        start_new_session=True,
        preexec_fn=take_terminal,
    )
    os.close(terminal)
    screen = Reader(main)

    def expect(pattern: bytes) -> re.Match[bytes]:
        found = screen.search(pattern)
        assert found, f"no {pattern!r} on the terminal within {WAIT} s; it shows {bytes(screen.seen)!r}"
        return found

    try:
        expect(b"ready")
        os.write(main, b"\x03")
        expect(rb"\^C")  # echoed once the terminal has sent the signal
        os.kill(job.pid, signal.SIGUSR2)
        assert expect(rb"ints (\d+)\r?\n").group(1) == b"0", bytes(screen.seen)
        assert job.wait(WAIT) == 42
    finally:
        if job.poll() is None:
            job.kill()
            job.wait(WAIT)
        os.close(main)


def test_a_signal_while_waiting_ends_run_without_starting_cmd(
    robust_name: str, programs: type[Peer], tmp_path: Path
) -> None:
    holder = programs(*script(), "run", robust_name, "--", sys.executable, "-c", HOLD)
    holder.expect("holding")
    marker = tmp_path / "started"
    waiter = programs(*script(), "run", robust_name, "--", "touch", marker)
    wait_for(robust_name, lambda o: o["attached"] == 2, "the second run attached and waiting")
    os.kill(waiter.proc.pid, signal.SIGTERM)
    assert waiter.proc.wait(WAIT) == 128 + signal.SIGTERM
    assert not marker.exists()
    assert only_object(robust_name)["holders"][0]["pid"] == holder.proc.pid
    holder.send("go")
    holder.finish()


def test_run_says_so_when_its_semaphore_is_removed_while_it_waits(robust_name: str, programs: type[Peer]) -> None:
    holder = programs(*script(), "run", robust_name, "--", sys.executable, "-c", HOLD)
    holder.expect("holding")
    waiter = programs(*script(), "run", robust_name, "--", "true")
    wait_for(robust_name, lambda o: o["attached"] == 2, "the second run attached and waiting")
    assert namedipc_cli("rm", robust_name).returncode == 0
    _, err = waiter.communicate()
    assert waiter.proc.returncode == 125
    assert err == (
        f"namedipc: robust semaphore '{robust_name}' was removed while this waited for a slot; "
        "run again to create it anew\n"
    )
    holder.send("go")
    holder.finish()


def test_sigkill_of_cmd_gives_the_slot_back(robust_name: str, programs: type[Peer]) -> None:
    job = programs(*script(), "run", robust_name, "--", sys.executable, "-c", HOLD)
    cmd_pid = int(job.expect("holding").split()[1])
    os.kill(cmd_pid, signal.SIGKILL)
    assert job.proc.wait(WAIT) == 128 + signal.SIGKILL
    assert not robust_file(robust_name).exists(), "released and removed: nobody else was attached"


def orphan_cmd(name: str, programs: type[Peer]) -> Peer:
    """`namedipc run NAME -- HOLD`, with namedipc SIGKILLed once CMD holds the slot."""
    job = programs(*script(), "run", name, "--", sys.executable, "-c", HOLD)
    job.expect("holding")
    job.proc.kill()
    assert job.proc.wait(WAIT) == -signal.SIGKILL
    return job


def end_orphan(job: Peer, name: str) -> dict[str, Any]:
    """Lets the orphaned CMD end; returns the semaphore once its holder is seen dead."""
    job.send("go")
    job.expect("released")
    assert read_line(job.proc) == "", "CMD has closed its output"
    return wait_for(name, lambda o: not o["holders"][0]["alive"], "its holder seen dead")


def test_sigkill_of_run_leaves_the_slot_with_cmd_until_it_ends(robust_name: str, programs: type[Peer]) -> None:
    job = orphan_cmd(robust_name, programs)
    # namedipc is dead; CMD still runs, and still holds the only slot.
    busy = namedipc_cli("run", robust_name, "--timeout", "0", "--", "true")
    assert busy.returncode == 75, busy.stderr
    held = only_object(robust_name)
    assert (held["free"], held["attached"]) == (0, 1)
    assert [(h["pid"], h["alive"]) for h in held["holders"]] == [(job.proc.pid, True)]
    kept = namedipc_cli("rm", "--stale", robust_name)
    assert kept.returncode == 0 and "a live process is attached" in kept.stderr
    assert robust_file(robust_name).exists()

    dead = end_orphan(job, robust_name)
    assert (dead["free"], dead["attached"]) == (0, 0)
    table = namedipc_cli("ls", "--type", "robust").stdout
    assert f"- pid {job.proc.pid} (root) holds a slot" in table and "(dead: " in table
    # The slot comes back to the next taker, which then removes the semaphore.
    assert namedipc_cli("run", robust_name, "--timeout", str(WAIT), "--", "true").returncode == 0
    assert not robust_file(robust_name).exists()


def test_rm_stale_removes_only_what_no_live_process_uses(robust_names: Names, programs: type[Peer]) -> None:
    stale, in_use = robust_names(), robust_names()
    end_orphan(orphan_cmd(stale, programs), stale)
    holder = programs(*script(), "run", in_use, "--", sys.executable, "-c", HOLD)
    holder.expect("holding")
    missing = robust_names()
    done = namedipc_cli("rm", "--stale", stale, in_use, missing)
    assert done.returncode == 1, "a name that does not exist is an error"
    assert done.stdout == f"removed robust semaphore {stale} (no live process was attached)\n"
    assert f"kept robust semaphore '{in_use}': a live process is attached to it" in done.stderr
    assert f"no robust semaphore is named '{missing}'" in done.stderr
    assert not robust_file(stale).exists() and robust_file(in_use).exists()
    holder.send("go")
    holder.finish()


def test_rm_stale_keeps_a_persistent_robust_semaphore(robust_name: str) -> None:
    namedipc.RobustSemaphore(robust_name, 2, persistent=True).close()
    kept = only_object(robust_name)
    assert (kept["persistent"], kept["attached"]) == (True, 0)
    done = namedipc_cli("rm", "--stale", robust_name)
    assert done.returncode == 0 and done.stdout == ""
    assert f"kept robust semaphore '{robust_name}': it is persistent" in done.stderr
    assert robust_file(robust_name).exists()
    assert namedipc_cli("rm", robust_name).stdout == f"removed robust semaphore {robust_name}\n"
    assert not robust_file(robust_name).exists()
