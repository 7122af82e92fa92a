"""An independent process for the shared memory tests: maps a segment with
namedipc or with multiprocessing.shared_memory and serves requests on stdin,
one per line, answering one line each on stdout (the C peer,
shm_c_peer.c, speaks the same protocol):

    shm_peer.py namedipc open NAME [ro]     open NAME (read-only with "ro")
    shm_peer.py multiprocessing open NAME   attach to NAME, multiprocessing style
    shm_peer.py multiprocessing create NAME SIZE

    (on start)       -> "ready NAME SIZE"   (NAME as this library reports it)
    get OFFSET LEN   -> "data HEX"
    put OFFSET HEX   -> "ok"
    size             -> "size N"            (the segment's current size)
    quit             -> "bye", then exit 0

multiprocessing registers every segment with its resource tracker, which
unlinks it and warns when this process exits; the segments belong to the
test, so they are kept out of the tracker.
"""

from __future__ import annotations

import os
import sys
from typing import Any


def untracked_multiprocessing_segment(name: str, create: bool, size: int) -> Any:
    from multiprocessing import resource_tracker, shared_memory

    if sys.version_info >= (3, 13):
        return shared_memory.SharedMemory(name=name, create=create, size=size, track=False)
    shm = shared_memory.SharedMemory(name=name, create=create, size=size)
    resource_tracker.unregister(shm._name, "shared_memory")  # type: ignore[attr-defined]
    return shm


def main(argv: list[str]) -> int:
    library, action, name, *rest = argv
    if library == "namedipc":
        from namedipc._namedipc import SharedMemory

        shm = SharedMemory(name, read_only=rest == ["ro"])
        buf, reported, fd = shm.buf, shm.name, shm.fd
    elif library == "multiprocessing":
        create = action == "create"
        shm = untracked_multiprocessing_segment(name, create, int(rest[0]) if create else 0)
        buf, reported, fd = shm.buf, shm.name, shm._fd
    else:
        print(f"unknown library {library!r}", file=sys.stderr)
        return 2

    print(f"ready {reported} {len(buf)}", flush=True)
    for line in sys.stdin:
        command, *words = line.split()
        if command == "get":
            offset, length = int(words[0]), int(words[1])
            print("data", bytes(buf[offset : offset + length]).hex(), flush=True)
        elif command == "put":
            data = bytes.fromhex(words[1])
            offset = int(words[0])
            buf[offset : offset + len(data)] = data
            print("ok", flush=True)
        elif command == "size":
            print("size", os.fstat(fd).st_size, flush=True)
        elif command == "quit":
            break
        else:
            print(f"unknown command {command!r}", file=sys.stderr)
            return 2
    del buf
    shm.close()
    print("bye", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
