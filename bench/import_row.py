"""Row 0 of the benchmark alone: `import namedipc`, `import posix_ipc` and the
`import _bisect` floor, each in fresh interpreters, timed exactly as bench.py
times them (subjects/imports.py), in interleaved rounds; prints the medians
and the median of the per-round ratios. For work on the import's cost, where
the full run (about 3 minutes) would time every other row too.

Run from the repository root, after `maturin develop --release`:
`.venv/bin/python bench/import_row.py [--rounds N]`. Extra `--variant
LABEL=DIR` options time `import namedipc` from other builds as well (DIR
holds a copy of the `namedipc` package, put first on PYTHONPATH), in the
same rounds; a variant that sits first on sys.path finds the package sooner
than the development build (last on sys.path, through a .pth file) does, so
compare variants with variants.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections.abc import Callable

from harness.build import POSIX_IPC_VERSION, import_or_exit
from subjects.imports import import_job

# Row 0's target (subjects/imports.py): namedipc at most this many times posix_ipc.
LIMIT = 2.00


def variant_job(directory: str, n: int) -> Callable[[], int]:
    """`import namedipc` from the package copy in `directory`."""
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = directory
    try:
        return import_job("namedipc", n)  # it copies the environment now
    finally:
        if saved is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = saved


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=21, help="measured rounds (default 21, after 1 warm-up round)")
    parser.add_argument("--imports", type=int, default=5, help="fresh interpreters per sample (default 5)")
    parser.add_argument("--variant", action="append", default=[], metavar="LABEL=DIR", help="another build to time")
    args = parser.parse_args()
    if args.rounds < 1 or args.imports < 1:
        parser.error("--rounds and --imports must be at least 1")
    import_or_exit("posix_ipc", f"{sys.executable} -m pip install posix_ipc=={POSIX_IPC_VERSION}")
    import_or_exit("namedipc", "maturin develop --release (from the repository root)")

    jobs: dict[str, Callable[[], int]] = {
        "posix_ipc": import_job("posix_ipc", args.imports),
        "namedipc": import_job("namedipc", args.imports),
        "floor": import_job("_bisect", args.imports),
    }
    for variant in args.variant:
        label, sep, directory = variant.partition("=")
        if not sep or not label or label in jobs:
            parser.error(f"--variant {variant!r}: give LABEL=DIR with a new label")
        jobs[label] = variant_job(directory, args.imports)

    samples: dict[str, list[int]] = {label: [] for label in jobs}
    labels = list(jobs)
    for r in range(1 + args.rounds):
        # A different subject goes first each round, as in bench.py.
        shift = r % len(labels)
        for label in labels[shift:] + labels[:shift]:
            elapsed = jobs[label]()
            if r:
                samples[label].append(elapsed)

    print(f"row 0, {args.rounds} rounds of {args.imports} imports each; per import:")
    for label in labels:
        ratios = [a / b for a, b in zip(samples[label], samples["posix_ipc"], strict=True)]
        median_us = statistics.median(samples[label]) / args.imports / 1000
        print(f"  {label:12s} {median_us:8.0f} µs   {statistics.median(ratios):.2f}x posix_ipc")
    ratio = statistics.median(a / b for a, b in zip(samples["namedipc"], samples["posix_ipc"], strict=True))
    print(f"target: namedipc ≤ {LIMIT:.2f}x posix_ipc: {'met' if ratio <= LIMIT else 'not met'} ({ratio:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
