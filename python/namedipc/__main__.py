"""The ``namedipc`` command: ``python -m namedipc --help``, or ``namedipc``
once the package is installed. The implementation is the Rust one, shared
with the plain ``namedipc`` binary; docs/cli.md describes it."""

from __future__ import annotations

import sys

from namedipc._namedipc import _cli_main


def main() -> int:
    """Runs the command with this process's arguments; returns its exit code."""
    return _cli_main(["namedipc", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
