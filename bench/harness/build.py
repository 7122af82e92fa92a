"""What a run is made of besides this interpreter: the two libraries (imported,
with a check for a debug build of namedipc) and the C floor, floor.c, compiled.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent.parent
OUT_DIR = BENCH_DIR / "out"  # gitignored
FLOOR_SOURCE = BENCH_DIR / "floor.c"
POSIX_IPC_VERSION = "1.3.2"  # what the targets assume


def import_or_exit(module: str, how_to_install: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as e:
        sys.exit(
            f"bench: cannot import {module} in {sys.executable} ({e}).\n"
            f"Install it into this Python first: {how_to_install}"
        )


def looks_like_debug_build(extension: Path) -> bool:
    """A debug build (maturin develop without --release) is several times
    slower and makes every namedipc figure meaningless. Rust's debug profile
    keeps integer overflow checks, whose panic message a release build of
    this crate does not contain."""
    try:
        return b"attempt to add with overflow" in extension.read_bytes()
    except OSError:
        return False


def build_floor() -> Path | None:
    """Compiles floor.c into bench/out/ when the source is newer than the
    binary; None if there is no C compiler."""
    gcc = shutil.which("gcc")
    if gcc is None:
        return None
    binary = OUT_DIR / "floor"
    if binary.exists() and binary.stat().st_mtime >= FLOOR_SOURCE.stat().st_mtime:
        return binary
    OUT_DIR.mkdir(exist_ok=True)
    # Compiled under a private name and renamed, so that a run started
    # meanwhile never executes a half-written binary.
    partial = OUT_DIR / f"floor.{os.getpid()}.tmp"
    try:
        subprocess.run(
            # -lrt: shm_open and mq_open live there before glibc 2.34.
            [gcc, "-O2", "-pthread", "-Wall", "-o", str(partial), str(FLOOR_SOURCE), "-lrt"],
            check=True,
        )
        os.replace(partial, binary)
    finally:
        partial.unlink(missing_ok=True)
    return binary
