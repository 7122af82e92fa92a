"""namedipc.SharedMemory: posix_ipc 1.3's SharedMemory (checked against
posix_ipc itself where both should agree), what namedipc adds (.buf,
close(), with, pickling), where posix_ipc misbehaves and namedipc raises,
and sharing a segment with independent processes: another namedipc
process, multiprocessing.shared_memory, and a C program."""

from __future__ import annotations

import gc
import json
import mmap
import multiprocessing
import os
import pickle
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import posix_ipc
import pytest

import namedipc

# Imported from the compiled module until the package re-exports them.
from namedipc._namedipc import O_CREAT, O_CREX, O_EXCL, O_TRUNC, SharedMemory, unlink_shared_memory
from support.build import compile_c
from support.names import Names
from support.processes import HELPERS, Peer, run_as_other_user, run_program, tracking
from support.waiting import WAIT, assert_one_returned, race

SHM = Path("/dev/shm")
C_SOURCE = HELPERS / "shm_c_peer.c"


def shm_path(name: str) -> Path:
    return SHM / name.lstrip("/")


@pytest.fixture
def exported(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pickle finds the class as namedipc.SharedMemory; until the package
    re-exports it, put it there for the test."""
    if not hasattr(namedipc, "SharedMemory"):
        monkeypatch.setattr(namedipc, "SharedMemory", SharedMemory, raising=False)


class ShmPeer(Peer):
    """An independent process that maps a segment and serves the line
    protocol of tests/helpers/shm_peer.py (the C peer speaks it too)."""

    def quit(self) -> None:
        """Ends the peer and checks it said nothing on stderr: neither an
        error nor a resource tracker's warning about leaked segments."""
        self.ask("quit", "bye")
        _, err = self.communicate()
        assert self.proc.returncode == 0, err
        assert err == "", err


@pytest.fixture
def peers() -> Iterator[type[ShmPeer]]:
    """Starts peers; any still running at teardown are killed."""
    yield from tracking(ShmPeer)


def python_peer(*args: str) -> list[str]:
    return [sys.executable, str(HELPERS / "shm_peer.py"), *args]


@pytest.fixture(scope="session")
def c_peer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The compiled C peer (shm_open and mmap)."""
    return compile_c(C_SOURCE, tmp_path_factory.mktemp("c_peer"))


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    """Runs `code` in a separate Python process and returns its result."""
    return run_program(sys.executable, "-c", code)


# ---------------------------------------------------------------- posix_ipc's API


def test_surface_covers_posix_ipc() -> None:
    public = {a for a in dir(posix_ipc.SharedMemory) if not a.startswith("_")}
    assert public == {"close_fd", "fd", "fileno", "mode", "name", "size", "unlink"}
    assert public <= set(dir(SharedMemory))
    assert {"buf", "close", "__enter__", "__exit__", "__reduce__"} <= set(dir(SharedMemory))
    assert callable(unlink_shared_memory)


def test_attributes_and_formats_match_posix_ipc(shm_names: Names) -> None:
    ours_name, theirs_name = shm_names("ours"), shm_names("theirs")
    ours = SharedMemory(ours_name, O_CREX, size=100)
    theirs = posix_ipc.SharedMemory(theirs_name, posix_ipc.O_CREX, size=100)
    try:
        assert (ours.name, ours.mode, ours.size) == (ours_name, 0o600, 100)
        assert (theirs.name, theirs.mode, theirs.size) == (theirs_name, 0o600, 100)
        assert ours.fd == ours.fileno() >= 0 and stat.S_ISREG(os.fstat(ours.fd).st_mode)
        assert str(ours) == ours_name
        assert repr(ours) == repr(theirs).replace("posix_ipc.", "namedipc.").replace(theirs_name, ours_name)
        assert repr(ours) == f'namedipc.SharedMemory("{ours_name}", mode=0600)'
        positional = SharedMemory(ours_name, O_CREAT, 0o600, 200, False)  # posix_ipc's order
        assert (positional.size, ours.size) == (200, 200)
        assert stat.S_IMODE(shm_path(ours_name).stat().st_mode) == 0o600
        # The mode attribute is the constructor's argument, as in posix_ipc.
        assert SharedMemory(ours_name, mode=0o644).mode == 0o644
        assert posix_ipc.SharedMemory(theirs_name, mode=0o644).mode == 0o644
        for attr in ("name", "mode", "fd", "size"):
            with pytest.raises(AttributeError):
                setattr(ours, attr, 1)
    finally:
        theirs.close_fd()


def test_flags_open_create_exclusive_and_truncate(shm_name: str) -> None:
    with pytest.raises(namedipc.NotFoundError, match=r"shared memory segment '.*' does not exist") as missing:
        SharedMemory(shm_name)
    assert isinstance(missing.value, namedipc.ExistentialError) and isinstance(missing.value, FileNotFoundError)
    assert not shm_path(shm_name).exists()

    created = SharedMemory(shm_name, O_CREAT, size=8)  # O_CREAT creates a missing one...
    created.buf[:3] = b"abc"
    again = SharedMemory(shm_name, O_CREAT, size=0)  # ...and opens an existing one, bytes kept
    assert bytes(again.buf[:3]) == b"abc" and again.size == 8

    with pytest.raises(namedipc.ExistsError, match="already exists") as taken:
        SharedMemory(shm_name, O_CREX)
    assert isinstance(taken.value, FileExistsError)

    SharedMemory(shm_name, O_TRUNC)
    assert created.size == 0
    assert SharedMemory(shm_name, O_CREAT | O_TRUNC, size=5).size == 5


def test_o_excl_without_o_creat_is_refused_like_posix_ipc(shm_name: str) -> None:
    with pytest.raises(ValueError, match="O_EXCL must be combined with O_CREAT"):
        posix_ipc.SharedMemory(shm_name, posix_ipc.O_EXCL)
    with pytest.raises(ValueError, match="O_EXCL must be combined with O_CREAT"):
        SharedMemory(shm_name, O_EXCL)
    assert not shm_path(shm_name).exists()


def test_size_resizes_new_and_existing_segments(shm_name: str) -> None:
    shm = SharedMemory(shm_name, O_CREX, size=10)
    assert SharedMemory(shm_name, size=20).size == 20
    assert shm.size == 20  # the current size, read again
    SharedMemory(shm_name, size=5)
    assert shm.size == 5
    # Another process resizes it: size follows.
    done = run_python(f"from namedipc._namedipc import SharedMemory\nSharedMemory({shm_name!r}, size=4096)\n")
    assert done.returncode == 0, done.stderr
    assert shm.size == 4096 == shm_path(shm_name).stat().st_size


def test_random_names_need_o_crex(shm_names: Names) -> None:
    with pytest.raises(ValueError, match="O_EXCL"):
        posix_ipc.SharedMemory(None, posix_ipc.O_CREAT)
    with pytest.raises(ValueError, match="name can be None only with flags=O_CREX"):
        SharedMemory(None, O_CREAT)
    # Each is tracked as soon as it exists, so that it is removed whatever fails next.
    a = SharedMemory(None, O_CREX, size=16)
    shm_names.track(a.name)
    b = SharedMemory(None, O_CREX)
    shm_names.track(b.name)
    assert a.name != b.name
    assert a.name.startswith("/namedipc-") and shm_path(a.name).exists()
    assert (a.size, b.size) == (16, 0)


def test_close_fd_as_posix_ipc(shm_names: Names) -> None:
    ours_name, theirs_name = shm_names("ours"), shm_names("theirs")
    theirs = posix_ipc.SharedMemory(theirs_name, posix_ipc.O_CREX, size=4)
    theirs.close_fd()
    theirs.close_fd()
    assert (theirs.fd, theirs.fileno()) == (-1, -1)
    with pytest.raises(posix_ipc.ExistentialError):
        theirs.size  # noqa: B018

    ours = SharedMemory(ours_name, O_CREX, size=4)
    fd = ours.fd
    ours.close_fd()
    ours.close_fd()  # harmless, as in posix_ipc
    assert (ours.fd, ours.fileno()) == (-1, -1)
    with pytest.raises(OSError):
        os.fstat(fd)  # really closed
    with pytest.raises(namedipc.ExistentialError, match=r"closed by close_fd\(\), so its size cannot be read"):
        ours.size  # noqa: B018
    with pytest.raises(namedipc.ExistentialError, match=r"close_fd\(\), so .buf cannot map it"):
        ours.buf  # noqa: B018
    assert (ours.name, ours.mode, str(ours)) == (ours_name, 0o600, ours_name)
    ours.unlink()
    assert not shm_path(ours_name).exists()


def test_unlink(shm_name: str) -> None:
    shm = SharedMemory(shm_name, O_CREX, size=4)
    view = shm.buf
    shm.unlink()
    assert not shm_path(shm_name).exists()
    view[:4] = b"gone"  # the mapping outlives the name
    assert bytes(shm.buf) == b"gone" and shm.size == 4
    with pytest.raises(namedipc.NotFoundError, match="does not exist"):
        shm.unlink()
    with pytest.raises(namedipc.NotFoundError, match="does not exist"):
        unlink_shared_memory(shm_name)
    SharedMemory(shm_name, O_CREX)
    unlink_shared_memory(shm_name)
    assert not shm_path(shm_name).exists()
    view.release()


def test_another_user_is_refused(shm_name: str) -> None:
    SharedMemory(shm_name, O_CREX, mode=0o600, size=1)
    os.chmod(shm_path(shm_name), 0o600)  # whatever the umask did
    code = (
        "from namedipc._namedipc import SharedMemory\n"
        "try:\n"
        f"    SharedMemory({shm_name!r})\n"
        "except namedipc.PermissionsError as e:\n"
        "    assert isinstance(e, PermissionError) and e.errno == 13, e\n"
        "    print('refused:', e)\n"
    )
    result = run_as_other_user(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("refused: permission denied for shared memory segment"), result.stdout


# ---------------------------------------------------------------- .buf, close(), with


def test_buf_is_one_zero_copy_mapping_of_the_whole_segment(shm_name: str) -> None:
    shm = SharedMemory(shm_name, O_CREX, size=mmap.PAGESIZE + 1)
    other = SharedMemory(shm_name)
    assert len(shm.buf) == mmap.PAGESIZE + 1 and not shm.buf.readonly
    assert shm.buf.obj is shm.buf.obj  # mapped once
    view = other.buf
    shm.buf[-3:] = b"end"
    assert bytes(view[-3:]) == b"end"  # no copy: written through one mapping, seen in another
    view.release()


def test_read_only_buf(shm_name: str) -> None:
    SharedMemory(shm_name, O_CREX, size=3).buf[:] = b"abc"
    reader = SharedMemory(shm_name, read_only=True)
    assert reader.buf.readonly and bytes(reader.buf) == b"abc"
    with pytest.raises(TypeError, match="read-only"):
        reader.buf[0] = 0
    with pytest.raises(ValueError, match="read-only handle"):
        SharedMemory(shm_name, read_only=True, size=10)


def test_empty_segment_buf_maps_once_it_has_a_size(shm_name: str) -> None:
    shm = SharedMemory(shm_name, O_CREX)
    reader = SharedMemory(shm_name, read_only=True)
    assert (len(shm.buf), shm.buf.readonly) == (0, False)
    assert (len(reader.buf), reader.buf.readonly) == (0, True)
    SharedMemory(shm_name, size=8)  # someone gives it a size
    assert len(shm.buf) == 8
    SharedMemory(shm_name, size=16)
    assert (len(shm.buf), shm.size) == (8, 16)  # mapped once, at 8 bytes
    shm.close()


def test_buf_read_before_close_fd_stays_usable(shm_name: str) -> None:
    shm = SharedMemory(shm_name, O_CREX, size=4)
    shm.buf  # noqa: B018 - maps the segment
    shm.close_fd()
    shm.buf[:4] = b"kept"
    assert bytes(SharedMemory(shm_name).buf) == b"kept"


def test_close_refuses_while_views_exist(shm_name: str) -> None:
    shm = SharedMemory(shm_name, O_CREX, size=8)
    view = shm.buf
    part = shm.buf[2:4]
    with pytest.raises(
        BufferError, match=rf"cannot close shared memory segment '{shm_name}': memoryviews of its \.buf"
    ):
        shm.close()
    # Nothing was closed: the views, the descriptor and .buf all still work.
    view[0] = 42
    part[0] = 7
    assert (shm.buf[0], shm.buf[2], shm.size) == (42, 7, 8)
    os.fstat(shm.fd)
    view.release()
    with pytest.raises(BufferError, match="release them first"):
        shm.close()
    del part
    shm.close()
    assert shm.fd == -1
    for action in (lambda: shm.size, lambda: shm.buf):
        with pytest.raises(namedipc.ExistentialError, match="has been closed"):
            action()
    shm.close()  # harmless
    shm.close_fd()  # harmless
    assert SharedMemory(shm_name).buf[0] == 42  # the segment itself lives on


def test_context_manager_closes(shm_name: str) -> None:
    with SharedMemory(shm_name, O_CREX, size=2) as shm:
        assert isinstance(shm, SharedMemory)
        shm.buf[:2] = b"ok"
    assert shm.fd == -1
    with pytest.raises(namedipc.ExistentialError, match="has been closed"):
        shm.buf  # noqa: B018
    with pytest.raises(BufferError, match="release them first"), SharedMemory(shm_name) as again:
        kept = again.buf
    assert bytes(kept) == b"ok"
    kept.release()
    again.close()


def test_threads_share_one_mapping(shm_name: str) -> None:
    shm = SharedMemory(shm_name, O_CREX, size=1 << 20)
    start = threading.Barrier(8)
    mappings: list[object] = []

    def read_buf() -> None:
        start.wait(WAIT)
        mappings.append(shm.buf.obj)

    threads = [threading.Thread(target=read_buf) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    assert len(mappings) == 8 and all(m is mappings[0] for m in mappings)
    mappings.clear()
    shm.close()


def test_posix_ipc_style_mmap_of_the_fd(shm_name: str) -> None:
    shm = SharedMemory(shm_name, O_CREX, size=16)
    mapfile = mmap.mmap(shm.fd, shm.size)
    shm.close_fd()
    mapfile[:5] = b"mmap!"
    assert bytes(SharedMemory(shm_name).buf[:5]) == b"mmap!"
    mapfile.close()


# ---------------------------------------------------------------- where posix_ipc misbehaves


def make_segment_elsewhere(name: str, content: bytes) -> None:
    """Creates the segment in another process, as another program would."""
    done = run_python(
        "from namedipc._namedipc import SharedMemory, O_CREX\n"
        f"SharedMemory({name!r}, O_CREX, size={len(content)}).buf[:] = {content!r}\n"
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"read_only": True, "size": 64}, "through a read-only handle; open it read-write to resize it"),
        ({"size": -1}, "size must be between 0 and 9223372036854775807, not -1"),
        ({"size": 2**63}, "size must be between 0 and 9223372036854775807"),
    ],
    ids=["read-only-with-size", "negative", "beyond-off_t"],
)
def test_a_refused_size_leaves_another_process_segment_alone(
    shm_name: str, kwargs: dict[str, Any], message: str
) -> None:
    make_segment_elsewhere(shm_name, b"precious")
    # posix_ipc 1.3.2 raises too, but first removes the segment.
    with pytest.raises(ValueError, match="size is invalid or the memory is read-only"):
        posix_ipc.SharedMemory(shm_name, **kwargs)
    assert not shm_path(shm_name).exists(), "posix_ipc no longer unlinks it: update the README table"

    make_segment_elsewhere(shm_name, b"precious")
    with pytest.raises(ValueError, match=message):
        SharedMemory(shm_name, **kwargs)
    assert shm_path(shm_name).read_bytes() == b"precious"


def test_a_failed_resize_removes_only_a_segment_it_created(shm_names: Names) -> None:
    # A file size limit makes ftruncate fail with EFBIG in a real kernel.
    existing, fresh, theirs = shm_names("existing"), shm_names("fresh"), shm_names("theirs")
    make_segment_elsewhere(existing, b"keep me")
    make_segment_elsewhere(theirs, b"keep me")
    code = f"""
import json, resource, signal
import posix_ipc
from namedipc._namedipc import SharedMemory, O_CREX
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
out = {{}}
for key, make in [
    ("existing", lambda: SharedMemory({existing!r}, size=2 << 20)),
    ("fresh", lambda: SharedMemory({fresh!r}, O_CREX, size=2 << 20)),
    ("posix_ipc", lambda: posix_ipc.SharedMemory({theirs!r}, size=2 << 20)),
]:
    try:
        make()
        out[key] = "no error"
    except Exception as e:
        out[key] = type(e).__name__ + ": " + str(e)
print(json.dumps(out))
"""
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["existing"] == (
        f"SystemCallError: ftruncate on shared memory segment '{existing}' failed: File too large (os error 27)"
    )
    assert shm_path(existing).read_bytes() == b"keep me"
    assert out["fresh"].startswith("SystemCallError: ftruncate on shared memory segment")
    assert not shm_path(fresh).exists(), "a segment the failed call created is removed again"
    assert out["posix_ipc"] != "no error"
    assert not shm_path(theirs).exists(), "posix_ipc 1.3.2 removes a segment it did not create"


def test_nul_in_the_name_raises_where_posix_ipc_crashes(shm_name: str) -> None:
    bad = shm_name + "\0x"
    crash = run_python(f"import posix_ipc\nposix_ipc.SharedMemory({bad!r}, posix_ipc.O_CREX)\n")
    assert crash.returncode == -11, "posix_ipc no longer segfaults here: update the README table"
    with pytest.raises(ValueError, match="name must not contain NUL characters"):
        SharedMemory(bad, O_CREX)
    with pytest.raises(ValueError, match="NUL"):
        unlink_shared_memory("/a\0b")


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        ((42,), {}, TypeError, "name must be a str"),
        (("NAME", "x"), {}, TypeError, "flags must be an int"),
        (("NAME", -1), {}, ValueError, "flags must be between 0 and"),
        (("NAME", O_CREX), {"mode": 1.5}, TypeError, "mode must be an int"),
        (("NAME", O_CREX), {"mode": 0o10000}, ValueError, "mode must be between 0 and 4095"),
        (("NAME", O_CREX), {"mode": -1}, ValueError, "mode must be between 0 and 4095"),
        (("NAME", O_CREX), {"size": 1.5}, TypeError, "size must be an int"),
        (("NAME", O_CREX), {"size": "1"}, TypeError, "size must be an int"),
        (("NAME", O_CREX), {"size": 10**100}, ValueError, "size must be between 0 and 9223372036854775807"),
        (("NAME", O_CREX), {"read_only": "x"}, TypeError, "read_only must be True or False, not str"),
        (("",), {}, ValueError, "followed by 1 to 255 bytes"),
        (("/",), {}, ValueError, "followed by 1 to 255 bytes"),
        (("/a/b",), {}, ValueError, "followed by 1 to 255 bytes"),
        (("/" + "x" * 256,), {}, ValueError, "followed by 1 to 255 bytes"),
    ],
)
def test_bad_arguments_raise_with_what_is_allowed(
    shm_name: str, args: tuple[Any, ...], kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    args = tuple(shm_name if a == "NAME" else a for a in args)
    with pytest.raises(error, match=message):
        SharedMemory(*args, **kwargs)
    assert not shm_path(shm_name).exists()


def test_wrong_type_for_unlink_shared_memory() -> None:
    with pytest.raises(TypeError, match="name must be a str"):
        unlink_shared_memory(1)  # type: ignore[arg-type]


def test_name_without_a_slash_is_kept_as_given(shm_names: Names) -> None:
    plain = shm_names.track(shm_names().lstrip("/"))
    shm = SharedMemory(plain, O_CREX, size=1)
    assert shm.name == plain and shm_path(plain).exists()
    assert SharedMemory("/" + plain).size == 1  # the same segment


@pytest.mark.parametrize("flags", [0, O_CREAT])
@pytest.mark.parametrize("read_only", [False, True])
def test_directory_at_the_name(shm_name: str, flags: int, read_only: bool) -> None:
    shm_path(shm_name).mkdir()
    directory = "the name is a directory, not a regular file; remove it"
    if flags == 0 and read_only:
        # The one open of a directory the kernel allows. As posix_ipc's, the
        # open reads nothing of the file; the first use that needs it says.
        with SharedMemory(shm_name, flags, read_only=read_only) as shm:
            for use in ("size", "buf", "uid", "gid", "file_mode"):
                with pytest.raises(namedipc.CorruptError, match=directory):
                    getattr(shm, use)
    else:
        with pytest.raises(namedipc.CorruptError, match=directory):
            SharedMemory(shm_name, flags, read_only=read_only)
    with pytest.raises(namedipc.ExistsError):
        SharedMemory(shm_name, O_CREX)


def test_symbolic_link_at_the_name_is_not_followed(shm_name: str, tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_bytes(b"not yours")
    shm_path(shm_name).symlink_to(target)
    for flags in (0, O_CREAT, O_TRUNC):
        with pytest.raises(namedipc.CorruptError, match="symbolic link"):
            SharedMemory(shm_name, flags, size=1)
    assert target.read_bytes() == b"not yours"


def test_fifo_at_the_name_does_not_block(shm_name: str) -> None:
    os.mkfifo(shm_path(shm_name))
    # Opening a FIFO for reading waits for a writer, in the kernel, where
    # no test timeout reaches: try it in a process that can be killed.
    # O_CREAT reads the file at open (to do no better than the kernel's
    # O_CREAT would); a plain open reads nothing, as posix_ipc's, and the
    # first use that needs the file says what it is.
    code = (
        "import namedipc\n"
        "from namedipc._namedipc import O_CREAT, SharedMemory\n"
        "for flags, read_only, use in [(O_CREAT, True, None), (O_CREAT, False, None),\n"
        "                              (0, True, 'size'), (0, False, 'buf'), (0, False, 'uid')]:\n"
        "    try:\n"
        "        shm = SharedMemory(" + repr(shm_name) + ", flags, read_only=read_only)\n"
        "        getattr(shm, use)\n"
        "    except namedipc.CorruptError as e:\n"
        "        print(use, e)\n"
    )
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    said = done.stdout.splitlines()
    assert [line.split(" ", 1)[0] for line in said] == ["None", "None", "size", "buf", "uid"], done.stdout
    assert all("the name is a FIFO, not a regular file" in line for line in said), done.stdout


# ---------------------------------------------------------------- subclasses and pickling


class Segment(SharedMemory):
    """A subclass with its own __init__ signature, as posix_ipc users write."""

    def __init__(self, label: str, size: int) -> None:
        super().__init__(None, O_CREX, size=size)
        self.label = label


def test_subclass_with_its_own_init(shm_names: Names) -> None:
    seg = Segment("frames", 32)
    shm_names.track(seg.name)
    assert (seg.label, seg.size, len(seg.buf)) == ("frames", 32, 32)
    assert repr(seg).startswith(f"{__name__}.Segment(")
    copy = pickle.loads(pickle.dumps(seg))
    assert type(copy) is Segment and copy.label == "frames" and copy.name == seg.name


def test_subclass_that_skips_init_gets_a_clear_error() -> None:
    class Lazy(SharedMemory):
        def __init__(self) -> None:
            pass

    actions: list[Callable[[SharedMemory], object]] = [
        lambda s: s.size,
        lambda s: s.buf,
        lambda s: s.name,
        lambda s: s.close(),
    ]
    for action in actions:
        with pytest.raises(TypeError, match="never initialised"):
            action(Lazy())


def test_init_twice_is_refused_and_creates_nothing(shm_names: Names) -> None:
    first, second = shm_names("first"), shm_names("second")
    shm = SharedMemory(first, O_CREX)
    with pytest.raises(TypeError, match="already initialised"):
        shm.__init__(second, O_CREX)  # type: ignore[misc]
    assert not shm_path(second).exists() and shm.name == first


def test_racing_inits_open_one_segment_and_create_nothing_else(shm_names: Names) -> None:
    # Eight threads call __init__ on one new object at once, each with its
    # own O_CREX name: one opens, the others are refused before they create.
    names = [shm_names(f"race{i}") for i in range(8)]
    shm = SharedMemory.__new__(SharedMemory)
    outcomes = race([partial(SharedMemory.__init__, shm, name, O_CREX, size=16) for name in names])
    assert_one_returned(outcomes, TypeError, "already initialised")
    assert [name for name in names if shm_path(name).exists()] == [shm.name]
    assert shm.size == 16 and shm.created
    shm.close()


@pytest.mark.usefixtures("exported")
def test_pickle_reopens_by_name_with_size_untouched(shm_name: str) -> None:
    shm = SharedMemory(shm_name, O_CREX, size=10)
    shm.buf[:2] = b"hi"
    copy = pickle.loads(pickle.dumps(shm))
    assert type(copy) is SharedMemory and (copy.name, copy.size, copy.mode) == (shm_name, 10, 0o600)
    assert bytes(copy.buf[:2]) == b"hi" and copy.fd != shm.fd
    reader = pickle.loads(pickle.dumps(SharedMemory(shm_name, read_only=True)))
    assert reader.buf.readonly
    shm.unlink()
    with pytest.raises(namedipc.NotFoundError, match="does not exist"):
        pickle.loads(pickle.dumps(copy))


def child_writes(seg: Segment) -> None:
    seg.buf[:5] = b"child"
    seg.close()


def test_pickled_into_a_spawn_child(shm_names: Names) -> None:
    seg = Segment("spawned", 8)
    shm_names.track(seg.name)
    view = seg.buf
    p = multiprocessing.get_context("spawn").Process(target=child_writes, args=(seg,))
    p.start()
    try:
        p.join(60)
    finally:
        if p.is_alive():
            p.kill()
            p.join(WAIT)
    assert p.exitcode == 0
    assert bytes(view[:5]) == b"child"
    view.release()


# ---------------------------------------------------------------- other processes and libraries


def peer_command(kind: str, c_peer: Path, action: str, name: str, *rest: str) -> list[str]:
    if kind == "c":
        return [str(c_peer), action, name, *rest]
    if kind == "multiprocessing":
        # multiprocessing adds the leading slash itself.
        return python_peer(kind, action, name.lstrip("/"), *rest)
    return python_peer(kind, action, name, *rest)


@pytest.mark.parametrize("kind", ["namedipc", "multiprocessing", "c"])
def test_a_peer_maps_a_segment_namedipc_created(kind: str, shm_name: str, peers: type[ShmPeer], c_peer: Path) -> None:
    shm = SharedMemory(shm_name, O_CREX, size=64)
    view = shm.buf
    view[:5] = b"hello"
    peer = peers(*peer_command(kind, c_peer, "open", shm_name))
    reported = shm_name.lstrip("/") if kind == "multiprocessing" else shm_name
    peer.expect(f"ready {reported} 64")
    assert peer.ask("get 0 5", "data") == "data " + b"hello".hex()
    peer.ask("put 10 " + b"world".hex(), "ok")
    assert bytes(view[10:15]) == b"world"  # seen in our mapping, as made before
    view[20:23] = b"C&P"
    assert peer.ask("get 20 3", "data") == "data " + b"C&P".hex()
    SharedMemory(shm_name, size=128)
    assert peer.ask("size", "size") == "size 128"
    peer.quit()
    assert shm_path(shm_name).exists(), "the peer left the segment in place"
    view.release()


@pytest.mark.parametrize("kind", ["multiprocessing", "c"])
def test_namedipc_maps_a_segment_a_peer_created(kind: str, shm_name: str, peers: type[ShmPeer], c_peer: Path) -> None:
    peer = peers(*peer_command(kind, c_peer, "create", shm_name, "32"))
    ready = peer.expect("ready").split()
    assert ready[2] == "32"
    peer.ask("put 0 " + b"from peer".hex(), "ok")
    # multiprocessing's .name has no slash; namedipc takes it either way.
    shm = SharedMemory(ready[1])
    also = SharedMemory("/" + ready[1].lstrip("/"))
    assert shm.size == also.size == 32
    assert bytes(shm.buf[:9]) == b"from peer"
    shm.buf[16:21] = b"reply"
    assert peer.ask("get 16 5", "data") == "data " + b"reply".hex()
    peer.quit()
    shm.close()
    also.close()


def test_fd_of_a_collected_temporary_stays_open(shm_name: str) -> None:
    """posix_ipc never closes the descriptor when the object is collected, and
    `mmap.mmap(SharedMemory(name).fd, size)` relies on it."""
    SharedMemory(shm_name, O_CREX, size=4096).close_fd()
    fd = SharedMemory(shm_name).fd  # the handle is collected at once
    try:
        gc.collect()
        with mmap.mmap(fd, 4096) as mapped:
            mapped[:2] = b"ok"
    finally:
        os.close(fd)


def test_collecting_a_handle_never_closes_a_number_the_user_closed(shm_name: str) -> None:
    """posix_ipc's demo1: map the segment, os.close(shm.fd); later the number
    belongs to another file (here the read end of a pipe), which collecting
    the handle must leave alone."""
    shm = SharedMemory(shm_name, O_CREX, size=4096)
    fd = shm.fd
    mapped = mmap.mmap(fd, 4096)
    os.close(fd)
    read_end, write_end = os.pipe()
    try:
        os.dup2(read_end, fd)  # the number is now the pipe's
        del shm
        gc.collect()
        os.write(write_end, b"x")
        assert os.read(fd, 1) == b"x"
    finally:
        for number in {fd, read_end, write_end}:
            os.close(number)
        mapped.close()
        namedipc.unlink_shared_memory(shm_name)


def test_a_handle_whose_fd_was_never_read_closes_it_when_collected(shm_name: str) -> None:
    before = set(os.listdir("/proc/self/fd"))
    shm = SharedMemory(shm_name, O_CREX, size=4096)
    assert len(set(os.listdir("/proc/self/fd")) - before) == 1
    del shm
    gc.collect()
    assert set(os.listdir("/proc/self/fd")) - before == set()
    namedipc.unlink_shared_memory(shm_name)


def test_a_socket_at_the_name_is_a_corrupt_error(shm_name: str) -> None:
    """A UNIX socket cannot even be opened (ENXIO); the error says what is there (issue 13, item 6)."""
    with socket.socket(socket.AF_UNIX) as planted:
        planted.bind(str(shm_path(shm_name)))
        with pytest.raises(namedipc.CorruptError, match="is a socket, not a regular file"):
            SharedMemory(shm_name)
