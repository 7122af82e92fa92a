"""Runs Python code, or the namedipc command, as another user.

Started as root by tests/support/users.py:

    python as_user.py UID GID GROUPS code CODE
    python as_user.py UID GID GROUPS cli ARG...

GROUPS is a comma-separated list of supplementary group ids (may be empty).
namedipc, its classes and the modules tests commonly use are imported first,
as root, because the other user may not be able to read the virtualenv or
the checkout; then the process drops to UID/GID for good and runs CODE (or
the namedipc command with ARG...). Its exit code is CODE's (or the command's).
"""

from __future__ import annotations

import errno
import fcntl
import json
import mmap
import os
import select  # noqa: F401 - waits may need it after the drop
import signal
import struct
import sys
import threading  # noqa: F401 - so may helper threads
import time
import weakref  # noqa: F401 - RobustSemaphore closes its handles at exit through it

import namedipc
from namedipc._namedipc import _cli_main

# The classes the package makes on first use are made now, while the
# package's files can still be read; so is posix_ipc, the peer some tests
# compare with.
for _name in namedipc.__all__:
    getattr(namedipc, _name)
try:
    import posix_ipc  # noqa: F401
except ImportError:
    pass


def drop(uid: int, gid: int, groups: list[int]) -> None:
    os.setgroups(groups)
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getresuid() != (uid, uid, uid) or os.geteuid() == 0:
        raise SystemExit("as_user: the privileges did not drop")
    os.chdir("/")


def main() -> int:
    uid, gid = int(sys.argv[1]), int(sys.argv[2])
    groups = [int(g) for g in sys.argv[3].split(",") if g]
    mode, rest = sys.argv[4], sys.argv[5:]
    drop(uid, gid, groups)
    if mode == "cli":
        return _cli_main(["namedipc", *rest])
    if mode == "code":
        sys.argv = ["-c", *rest[1:]]
        scope = {
            "__name__": "__main__",
            "namedipc": namedipc,
            "errno": errno,
            "fcntl": fcntl,
            "json": json,
            "mmap": mmap,
            "os": os,
            "signal": signal,
            "struct": struct,
            "sys": sys,
            "time": time,
        }
        exec(compile(rest[0], "<as_user code>", "exec"), scope)
        return 0
    raise SystemExit(f"as_user: unknown mode {mode!r}")


if __name__ == "__main__":
    sys.exit(main())
