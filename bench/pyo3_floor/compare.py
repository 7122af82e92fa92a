"""Row 6 (an existing segment opened and closed) for posix_ipc, for the
least a PyO3 class can do the same with (this directory's crate: posix_ipc's
calls to the kernel and nothing else, through the same kind of PyO3 slots
as namedipc's class), for that class with the one fstat an open that reads
the owner adds, for it with the least a trustworthy handle must check and
keep (the feature `handle`: argument types, the name's rule, the name kept,
a second `__init__` refused), and for namedipc, side by side in
interleaved rounds: what of namedipc's gap is PyO3's, what a handle's
duties', and what namedipc's own work.

    .venv/bin/python bench/pyo3_floor/compare.py [--rounds N] [--loops N]

from the repository root, with a release build of namedipc in .venv (as
`./dev.sh bench` leaves it) and posix_ipc 1.3.2. It builds the crate with
cargo on first use, into bench/out/ (about half a minute, offline once
PyO3 is in cargo's cache).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "out"
TARGET = OUT / "pyo3_floor-target"
MODULE = OUT / "pyo3_floor.abi3.so"
# The same class built with the feature `fstat`: plus namedipc's one fstat.
MODULE_FSTAT = OUT / "pyo3_floor_fstat.abi3.so"
# Built with the feature `handle`: plus what a handle must check and keep.
MODULE_HANDLE = OUT / "pyo3_floor_handle.abi3.so"


def build(module: Path = MODULE, features: tuple[str, ...] = ()) -> Path:
    """The compiled module, built when the sources are newer than it."""
    sources = [HERE / "Cargo.toml", *(HERE / "src").glob("*.rs")]
    if module.exists() and all(module.stat().st_mtime >= s.stat().st_mtime for s in sources):
        return module
    cargo = shutil.which("cargo")
    if cargo is None:
        sys.exit("compare.py: cargo is needed to build the PyO3 floor")
    # A target directory per build, so that each keeps its own artefacts.
    target = TARGET.with_name(TARGET.name + "".join(f"-{f}" for f in features))
    env = {**os.environ, "CARGO_TARGET_DIR": str(target), "PYO3_PYTHON": sys.executable}
    command = [cargo, "build", "--release", "--quiet", *(["--features", ",".join(features)] if features else [])]
    subprocess.run(command, cwd=HERE, env=env, check=True)
    partial = module.with_suffix(f".{os.getpid()}.tmp")
    shutil.copy(target / "release" / "libpyo3_floor.so", partial)
    os.replace(partial, module)
    return module


def load(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location("pyo3_floor", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# One loop per subject: CPython specialises each call site for what it calls.
def posix_ipc_loop(cls: Any, name: str, n: int) -> int:
    start = time.perf_counter_ns()
    for _ in range(n):
        cls(name).close_fd()
    return time.perf_counter_ns() - start


def floor_loop(cls: Any, name: str, n: int) -> int:
    start = time.perf_counter_ns()
    for _ in range(n):
        cls(name).close_fd()
    return time.perf_counter_ns() - start


def floor_fstat_loop(cls: Any, name: str, n: int) -> int:
    start = time.perf_counter_ns()
    for _ in range(n):
        cls(name).close_fd()
    return time.perf_counter_ns() - start


def floor_handle_loop(cls: Any, name: str, n: int) -> int:
    start = time.perf_counter_ns()
    for _ in range(n):
        cls(name).close_fd()
    return time.perf_counter_ns() - start


def namedipc_loop(cls: Any, name: str, n: int) -> int:
    start = time.perf_counter_ns()
    for _ in range(n):
        cls(name).close()
    return time.perf_counter_ns() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=21, help="interleaved rounds (default 21)")
    parser.add_argument("--loops", type=int, default=20_000, help="open+close cycles per sample (default 20,000)")
    args = parser.parse_args()

    import posix_ipc

    import namedipc

    floor = load(build())
    floor_fstat = load(build(MODULE_FSTAT, ("fstat",)))
    floor_handle = load(build(MODULE_HANDLE, ("handle",)))
    name = f"/namedipc-bench-pyo3floor-{os.getpid()}"
    segment = posix_ipc.SharedMemory(name, posix_ipc.O_CREX, 0o600, 4096)
    subjects: list[tuple[str, Callable[[], int]]] = [
        ("posix_ipc", lambda: posix_ipc_loop(posix_ipc.SharedMemory, name, args.loops)),
        ("PyO3 floor", lambda: floor_loop(floor.SharedMemory, name, args.loops)),
        ("floor+fstat", lambda: floor_fstat_loop(floor_fstat.SharedMemory, name, args.loops)),
        ("floor+handle", lambda: floor_handle_loop(floor_handle.SharedMemory, name, args.loops)),
        ("namedipc", lambda: namedipc_loop(namedipc.SharedMemory, name, args.loops)),
    ]
    samples: dict[str, list[float]] = {label: [] for label, _ in subjects}
    try:
        for r in range(args.rounds + 1):
            shift = r % len(subjects)
            for label, job in subjects[shift:] + subjects[:shift]:
                elapsed = job() / args.loops
                if r > 0:  # the first round warms up
                    samples[label].append(elapsed)
    finally:
        segment.close_fd()
        segment.unlink()
    base = samples["posix_ipc"]
    print(f"SharedMemory(name) + close, {args.rounds} rounds of {args.loops:,}; ratio = median of per-round ratios")
    for label, values in samples.items():
        ratio = statistics.median(v / b for v, b in zip(values, base, strict=True))
        print(f"  {label:<12} {statistics.median(values):7,.0f} ns   {ratio:.2f}x posix_ipc")
    return 0


if __name__ == "__main__":
    sys.exit(main())
