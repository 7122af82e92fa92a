"""Building the programs the interop tests run: the C peers in
tests/helpers (gcc) and targets of the core crate (cargo)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent


def compile_c(source: Path, out_dir: Path) -> Path:
    """Compiles one of the C peers in tests/helpers with gcc (strict warnings),
    failing the test with a clear message if gcc is missing."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.fail(
            f"gcc is not installed, but the C interop tests need it to compile {source.name}; "
            "install it (./dev.sh test does: apt-get install gcc libc6-dev)"
        )
    binary = out_dir / source.stem
    build = subprocess.run(
        [gcc, "-std=c11", "-Wall", "-Wextra", "-Werror", "-O1", "-o", str(binary), str(source), "-pthread", "-lrt"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert build.returncode == 0, f"gcc failed to compile {source}:\n{build.stderr}"
    return binary


def cargo_build(what: str, *selector: str) -> Path:
    """Builds one target of the core crate (`selector`: cargo's options that
    name it, e.g. "--example", "semctl") and returns the executable cargo
    reports; fails the test with a clear message if cargo is missing or
    the build fails."""
    cargo = shutil.which("cargo")
    if cargo is None:
        pytest.fail(f"cargo is not on PATH, but the tests build {what} with it")
    build = subprocess.run(
        [cargo, "build", "-q", "-p", "namedipc", *selector, "--message-format=json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert build.returncode == 0, f"cargo build of {what} failed:\n{build.stderr}"
    target = selector[-1]
    executables = [
        message["executable"]
        for message in map(json.loads, build.stdout.splitlines())
        if message.get("reason") == "compiler-artifact"
        and message["target"]["name"] == target
        and message.get("executable")
    ]
    assert len(executables) == 1, f"cargo reported no single {target} executable: {executables}"
    return Path(executables[0])
