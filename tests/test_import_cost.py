"""What `import namedipc` loads, and the names it makes on first use.

Importing the package loads only what a plain Semaphore user needs; Flags
(enum), Holder (collections), the exception classes and the queue defaults
(read from /proc) are made the first time they are asked for, and then
behave exactly as names made at import would: the same object from every
path, in `dir()` and `__all__`, picklable, caught by `except`. The import
maps no shared library but the extension itself: the unwinder is linked
into it rather than loaded from libgcc_s, and the tests below check that it
still ends the threads the interpreter ends at exit. Speed itself is the
benchmark's business (bench/), not the tests'.
"""

from __future__ import annotations

import enum
import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

import namedipc
from namedipc import _namedipc
from support.names import Names, semaphore_file
from support.processes import run_program

# Made on first use, in the package and in the bindings alike.
LAZY_IN_BINDINGS = [
    "Error",
    "SignalError",
    "PermissionsError",
    "ExistentialError",
    "ExistsError",
    "NotFoundError",
    "BusyError",
    "CorruptError",
    "SystemCallError",
    "OverflowValueError",
    "LeaseLost",
    "UnavailableError",
    "Holder",
    "NamedSemaphore",
    "SharedMemory",
    "MessageQueue",
    "RobustSemaphore",
    "RedisSemaphore",
    "QUEUE_MESSAGES_MAX_DEFAULT",
    "QUEUE_MESSAGE_SIZE_MAX_DEFAULT",
]
LAZY = ["Flags", "Lease", *LAZY_IN_BINDINGS]

# Modules a plain Semaphore user does not need.
NOT_AT_IMPORT = ["enum", "collections", "typing", "asyncio", "namedipc._flags", "namedipc._aio"]


def fresh(code: str) -> object:
    """Runs `code` in a new interpreter and returns the JSON it prints last."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_import_loads_none_of_what_a_semaphore_user_does_not_need() -> None:
    loaded = fresh(
        "import json, sys\n"
        "before = set(sys.modules)\n"
        "import namedipc\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    assert isinstance(loaded, list)
    assert "namedipc._namedipc" in loaded
    assert not set(loaded) & set(NOT_AT_IMPORT)


def test_a_semaphore_round_trip_loads_none_of_them_either(sem_name: str) -> None:
    loaded = fresh(
        "import json, sys\n"
        "before = set(sys.modules)\n"
        "import namedipc\n"
        f"s = namedipc.Semaphore({sem_name!r}, namedipc.O_CREX, 0o600, 1)\n"
        "s.acquire(); s.release(); s.acquire(0); s.release()\n"
        "s.unlink(); s.close()\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    assert isinstance(loaded, list)
    assert not set(loaded) & set(NOT_AT_IMPORT)


def test_flags_is_one_int_enum_from_every_path() -> None:
    from namedipc import Flags
    from namedipc._flags import Flags as defined

    assert Flags is defined is namedipc.Flags
    assert namedipc.NamedSemaphore.Flags is Flags
    assert namedipc.RobustSemaphore.Flags is Flags
    assert issubclass(Flags, enum.IntEnum)
    assert repr(Flags.LINK_OR_CREATE) == "<Flags.LINK_OR_CREATE: 1>"
    assert pickle.loads(pickle.dumps(Flags.RAISE_IF_NOT_EXISTS)) is Flags.RAISE_IF_NOT_EXISTS


def test_flags_on_an_instance_is_the_enum_too(names: Names) -> None:
    sem = namedipc.NamedSemaphore(names(), 1, namedipc.Flags.RAISE_IF_EXISTS)
    try:
        assert sem.Flags is namedipc.Flags
    finally:
        sem.close()


def test_flags_in_a_fresh_interpreter_from_the_class_first() -> None:
    # The class attribute, asked before the package's own name, makes it.
    made = fresh(
        "import json, sys\n"
        "import namedipc\n"
        "flags = namedipc.RobustSemaphore.Flags\n"
        "print(json.dumps([flags is namedipc.Flags, flags.UNLINK_AND_CREATE == 3, 'enum' in sys.modules]))\n"
    )
    assert made == [True, True, True]


def test_named_semaphore_has_its_flags_whichever_module_gives_it_first() -> None:
    made = fresh(
        "import json\n"
        "import namedipc\n"
        "from namedipc import _namedipc\n"
        "cls = _namedipc.NamedSemaphore\n"
        "print(json.dumps([cls.Flags is namedipc.Flags, cls is namedipc.NamedSemaphore,\n"
        "                  namedipc.RobustSemaphore.Flags is namedipc.Flags]))\n"
    )
    assert made == [True, True, True]


@pytest.mark.parametrize("name", LAZY_IN_BINDINGS)
def test_package_and_bindings_give_the_same_object(name: str) -> None:
    assert getattr(namedipc, name) is getattr(_namedipc, name)


def test_every_lazy_name_is_exported_and_listed() -> None:
    for name in LAZY:
        assert name in namedipc.__all__
        assert name in dir(namedipc)
    for name in LAZY_IN_BINDINGS:
        assert name in _namedipc.__all__
        assert name in dir(_namedipc)


def test_star_import_gets_the_lazy_names() -> None:
    got = fresh(f"import json\nfrom namedipc import *\nprint(json.dumps([name in globals() for name in {LAZY!r}]))\n")
    assert got == [True] * len(LAZY)


def test_an_unknown_name_is_an_attribute_error_naming_the_module() -> None:
    with pytest.raises(AttributeError, match=r"module 'namedipc' has no attribute 'NoSuchThing'"):
        _ = namedipc.NoSuchThing  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match=r"module 'namedipc._namedipc' has no attribute 'NoSuchThing'"):
        _ = _namedipc.NoSuchThing  # type: ignore[attr-defined]
    assert not hasattr(namedipc, "NoSuchThing")


def test_an_error_raised_before_its_class_was_asked_for_is_that_class(names: Names) -> None:
    # In a new interpreter the first error the bindings raise makes the
    # classes; the names looked up afterwards are those same classes.
    got = fresh(
        "import json, pickle\n"
        "import namedipc\n"
        "try:\n"
        f"    namedipc.Semaphore({names()!r})\n"
        "except Exception as e:\n"
        "    caught = e\n"
        "again = pickle.loads(pickle.dumps(caught))\n"
        "print(json.dumps([type(caught) is namedipc.NotFoundError,\n"
        "                  isinstance(caught, namedipc.ExistentialError),\n"
        "                  isinstance(caught, FileNotFoundError),\n"
        "                  type(again) is namedipc.NotFoundError, str(again) == str(caught),\n"
        "                  namedipc.NotFoundError.__module__, namedipc.NotFoundError.__mro__[1].__name__]))\n"
    )
    assert got == [True, True, True, True, True, "namedipc", "ExistentialError"]


def test_holder_is_a_named_tuple_that_pickles_by_name() -> None:
    holder = namedipc.Holder(1, 2, 3.0, True)
    assert isinstance(holder, tuple)
    assert holder._fields == ("pid", "uid", "since", "alive")
    assert repr(holder) == "Holder(pid=1, uid=2, since=3.0, alive=True)"
    assert type(holder).__module__ == "namedipc"
    assert pickle.loads(pickle.dumps(holder)) == holder


def test_holders_before_the_name_is_asked_for(robust_names: Names) -> None:
    # holders() makes the class itself; namedipc.Holder is then that class.
    got = fresh(
        "import json, os\n"
        "import namedipc\n"
        f"r = namedipc.RobustSemaphore({robust_names()!r}, 1)\n"
        "try:\n"
        "    r.acquire()\n"
        "    (h,) = r.holders()\n"
        "    out = [type(h) is namedipc.Holder, h.pid == os.getpid(), h.alive]\n"
        "    r.release()\n"
        "finally:\n"
        "    r.close()\n"
        "print(json.dumps(out))\n"
    )
    assert got == [True, True, True]


def test_queue_defaults_are_the_systems() -> None:
    limits = Path("/proc/sys/fs/mqueue")
    assert namedipc.QUEUE_MESSAGES_MAX_DEFAULT == int((limits / "msg_default").read_text())
    assert namedipc.QUEUE_MESSAGE_SIZE_MAX_DEFAULT == int((limits / "msgsize_default").read_text())


def test_import_maps_no_shared_library_but_the_extension() -> None:
    # Not libgcc_s in particular: the unwinder is linked into the module.
    got = fresh(
        "import json, os\n"
        "def libraries():\n"
        "    with open('/proc/self/maps') as maps:\n"
        "        fields = [line.split() for line in maps]\n"
        "    return {os.path.realpath(f[5]) for f in fields if len(f) > 5 and '.so' in os.path.basename(f[5])}\n"
        "before = libraries()\n"
        "import namedipc\n"
        "print(json.dumps([sorted(libraries() - before), os.path.realpath(namedipc._namedipc.__file__)]))\n"
    )
    assert isinstance(got, list)
    mapped, extension = got
    assert mapped == [extension]


# A daemon thread blocked in a wait of the module when the program ends,
# woken while the interpreter finalises (by the __del__ of an object that
# the clearing of __main__ collects): the interpreter ends it as it takes
# the interpreter lock back, with pthread_exit, whose unwind (glibc's,
# through libgcc_s) runs through the module's frames and calls the module's
# personality routine. The program waits until the thread is in the wait's
# system call (a futex in the semaphore's mapping, or a poll of the queue),
# and at the end until the unwind is over: the thread is gone, or PyO3 has
# stopped it for good in a frame of its own (a futex wait without a
# timeout, what CPython 3.14 does itself to such a thread).
DAEMON_IN_A_WAIT = """
import functools, os, sys, threading, time, namedipc
kind, name, path = sys.argv[1:4]
if kind == "Semaphore":
    obj = namedipc.Semaphore(name, namedipc.O_CREX, 0o600, 0)
    wait, wake = obj.acquire, obj.release
else:
    obj = namedipc.MessageQueue(name, namedipc.O_CREX)
    wait, wake = obj.receive, functools.partial(obj.send, b"wake up")
thread = threading.Thread(target=wait, daemon=True)
thread.start()
task = f"/proc/self/task/{thread.native_id}"

def syscall(task=task, open=open):
    # The thread's system call and its arguments; [] once the thread is gone.
    try:
        with open(f"{task}/syscall") as f:
            return f.read().split()
    except FileNotFoundError:
        return []

def in_the_wait():
    fields = syscall()
    if kind == "MessageQueue":
        return fields[0] in {"7", "232", "243", "271", "281"}  # poll, epoll_wait, mq_timedreceive, ppoll, epoll_pwait
    if fields[0] != "202":  # futex
        return False
    # The mapping that holds the futex word is one of the semaphore's file
    # (its inode: the mapping may have been made under a temporary name).
    address = int(fields[1], 16)
    with open("/proc/self/maps") as maps:
        for line in maps:
            parts = line.split()
            low, high = (int(bound, 16) for bound in parts[0].split("-"))
            if low <= address < high:
                return int(parts[4]) == os.stat(path).st_ino
    return False

def unwound(syscall=syscall, int=int):
    fields = syscall()
    # Gone, or in a process-private futex wait (FUTEX_PRIVATE_FLAG) with no timeout.
    return not fields or (fields[0] == "202" and int(fields[2], 16) & 0x80 != 0 and int(fields[4], 16) == 0)

deadline = time.monotonic() + 5
while not in_the_wait():
    if time.monotonic() > deadline:
        sys.exit("the thread never got into the wait")
    time.sleep(0.001)
obj.unlink()

class WakeAtFinalisation:
    # Everything it uses is its own: the module's globals may be gone by then.
    def __init__(self):
        self.wake, self.unwound, self.sleep, self.now, self.write = wake, unwound, time.sleep, time.monotonic, os.write
    def __del__(self):
        self.wake()
        deadline = self.now() + 5
        while not self.unwound():
            if self.now() > deadline:
                self.write(2, b"the woken thread was not ended")
                return
            self.sleep(0.001)

waker = WakeAtFinalisation()
print("ending", flush=True)
"""


@pytest.mark.parametrize("kind", ["Semaphore", "MessageQueue"])
def test_a_daemon_thread_woken_at_exit_is_ended_through_the_module(kind: str, names: Names, mq_names: Names) -> None:
    name = mq_names() if kind == "MessageQueue" else names()
    done = run_program(sys.executable, "-c", DAEMON_IN_A_WAIT, kind, name, str(semaphore_file(name)))
    assert (done.returncode, done.stdout, done.stderr) == (0, "ending\n", "")
