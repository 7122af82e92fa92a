"""Row 0: `import namedipc` against `import posix_ipc`, each in a fresh
interpreter, and a floor: the import of `_bisect`, a tiny C extension of the
standard library (an extension module found, loaded and initialised).

Each iteration starts a new interpreter that times the one import statement
with perf_counter_ns and prints it; the interpreter's own start-up is in no
sample. Bytecode is cached (under bench/out/, whatever
PYTHONDONTWRITEBYTECODE says), as an installed package's is, and the
warm-up round writes it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

from harness.build import OUT_DIR
from harness.measure import Context, Part, Subject
from harness.rows import Row, Target
from harness.session import Session

TIMED_IMPORT = "import time; t = time.perf_counter_ns(); import {module}; print(time.perf_counter_ns() - t)"


def import_job(module: str, n: int) -> Callable[[], int]:
    """One sample: the sum of `n` imports of `module`, each in a new interpreter."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    command = [sys.executable, "-X", f"pycache_prefix={OUT_DIR / 'pycache'}", "-c", TIMED_IMPORT.format(module=module)]

    def job() -> int:
        total = 0
        for _ in range(n):
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"row 0: import {module} failed: {done.stderr.strip()}")
            total += int(done.stdout)
        return total

    return job


def subjects(session: Session, context: Context) -> Part:
    """Row 0."""
    n = context.plan.imports
    row = Row(
        "0",
        "0. import, fresh interpreter",
        n,
        "ext",
        target=Target("namedipc", "posix_ipc", "<=", 2.00),
    )
    OUT_DIR.mkdir(exist_ok=True)
    group = [
        Subject(row, "namedipc", import_job("namedipc", n)),
        Subject(row, "posix_ipc", import_job("posix_ipc", n)),
        Subject(row, "floor", import_job("_bisect", n)),
    ]
    return Part(rows=[row], groups=[group])
