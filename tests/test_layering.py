"""Dependencies run one way: Python package -> bindings -> core -> sys -> kernel.

Checked from the source, so that an arrow running back up fails the suite
the day it is written (docs/design-notes.md, "Dependencies run one way").
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "crates" / "namedipc"
BINDINGS = ROOT / "crates" / "namedipc-python"
PACKAGE = ROOT / "python" / "namedipc"

# The core's top-level modules, lowest first. A module may use only modules
# of a lower rank (and itself); modules of one rank are separate rooms that
# do not know each other.
CORE_RANKS: dict[str, int] = {
    "sys": 0,
    "error": 1,
    "paths": 2,
    "ownership": 2,
    "existence": 3,
    "deadline": 3,
    "semaphore": 4,
    "shm": 4,
    "mqueue": 4,
    "robust": 4,
    "redis": 4,
    "inventory": 5,
    "cli": 6,
    # The crate root and the binary sit above everything.
    "lib": 7,
    "doctests": 7,
    "bin": 8,
}

# Where the crate root's re-exports come from.
ROOT_EXPORTS: dict[str, str] = {
    "Error": "error",
    "ObjectKind": "error",
    "Result": "error",
    "Existence": "existence",
    "Owner": "ownership",
    "Trust": "ownership",
    "Semaphore": "semaphore",
    "SemaphoreOptions": "semaphore",
    "SharedMemory": "shm",
    "SharedMemoryOptions": "shm",
    "MessageQueue": "mqueue",
    "MessageQueueOptions": "mqueue",
    "RobustSemaphore": "robust",
    "RobustSemaphoreOptions": "robust",
    "RedisSemaphore": "redis",
    "RedisSemaphoreOptions": "redis",
}

CRATE_PATH = re.compile(r"\bcrate::(\w+)")
# `use crate::{a, b::c}`: the names inside the braces of a grouped import.
CRATE_GROUP = re.compile(r"\bcrate::\{([^}]*)\}", re.S)


def core_module(path: Path) -> str:
    """The top-level module of the core that `path` belongs to."""
    relative = path.relative_to(CORE / "src")
    return relative.parts[0].removesuffix(".rs")


def code_only(source: str) -> str:
    """`source` without comments (doc links name items they do not import)."""
    lines = []
    for line in source.splitlines():
        code = line.split("//", 1)[0] if "//" in line and '"' not in line.split("//", 1)[0] else line
        if not code.lstrip().startswith("//"):
            lines.append(code)
    return "\n".join(lines)


def core_uses(source: str) -> set[str]:
    """The top-level core modules that `source` refers to through `crate::`."""
    code = code_only(source)
    used = set(CRATE_PATH.findall(code))
    for group in CRATE_GROUP.findall(code):
        used.update(item.strip().split("::")[0] for item in group.split(",") if item.strip())
    # Items re-exported at the crate root (`crate::Error`) are uses of the
    # module that defines them.
    return {name if name[0].islower() else ROOT_EXPORTS.get(name, "lib") for name in used}


def test_every_core_module_has_a_rank() -> None:
    modules = {core_module(path) for path in (CORE / "src").rglob("*.rs")}
    assert modules - CORE_RANKS.keys() == set(), "give each new core module a rank in CORE_RANKS"


def test_core_modules_use_only_lower_ones() -> None:
    wrong = []
    for path in sorted((CORE / "src").rglob("*.rs")):
        module = core_module(path)
        for used in core_uses(path.read_text(encoding="utf-8")):
            if used in {module, "self", "super"} or used not in CORE_RANKS:
                continue
            if CORE_RANKS[used] >= CORE_RANKS[module]:
                wrong.append(f"{path.relative_to(ROOT)} ({module}) uses crate::{used}")
    assert wrong == [], "imports that run sideways or back up:\n" + "\n".join(wrong)


def test_only_sys_has_unsafe_code() -> None:
    unsafe = [
        str(path.relative_to(ROOT))
        for path in (CORE / "src").rglob("*.rs")
        if core_module(path) != "sys" and re.search(r"\bunsafe\s*(\{|fn|impl)", code_only(path.read_text()))
    ]
    assert unsafe == []


# The one module of the bindings that calls pyo3::ffi and has `unsafe`:
# Semaphore.acquire() and release() as the interpreter calls them (the
# module's own first lines say why).
BINDINGS_FFI = BINDINGS / "src" / "fast_path.rs"


def test_in_the_bindings_only_the_fast_path_has_unsafe_code_or_calls_ffi() -> None:
    found = [
        str(path.relative_to(ROOT))
        for path in sorted((BINDINGS / "src").rglob("*.rs"))
        if re.search(
            r"\bunsafe\s*(\{|fn|impl|extern)|(?<!std::)\bffi::|allow\(unsafe_code\)", code_only(path.read_text())
        )
    ]
    assert found == [str(BINDINGS_FFI.relative_to(ROOT))]


def test_every_unsafe_block_of_the_fast_path_says_why_it_holds() -> None:
    lines = BINDINGS_FFI.read_text(encoding="utf-8").splitlines()
    unexplained = []
    for number, line in enumerate(lines):
        if not re.search(r"\bunsafe\s*\{", line.split("//")[0]):
            continue
        # The comment block right above the statement that holds the block.
        above = number - 1
        while above >= 0 and not lines[above].strip().startswith("//"):
            if lines[above].strip().endswith((";", "{", "}")) or not lines[above].strip():
                break
            above -= 1
        comment = []
        while above >= 0 and lines[above].strip().startswith("//"):
            comment.append(lines[above])
            above -= 1
        if not any("SAFETY:" in text for text in comment):
            unexplained.append(f"line {number + 1}: {line.strip()}")
    assert unexplained == []


def test_sys_knows_no_names_paths_or_messages() -> None:
    """sys/ holds the FFI and the platform switch: no paths, prefixes or error types of the crate."""
    found = []
    for path in sorted((CORE / "src" / "sys").rglob("*.rs")):
        code = code_only(path.read_text(encoding="utf-8"))
        for needle in ("/dev/shm", "namedipc-robust", "crate::error", "crate::paths", "crate::Error"):
            if needle in code:
                found.append(f"{path.relative_to(ROOT)}: {needle}")
    assert found == []


def test_the_core_knows_nothing_of_python() -> None:
    manifest = tomllib.loads((CORE / "Cargo.toml").read_text(encoding="utf-8"))
    assert "pyo3" not in manifest.get("dependencies", {})
    assert not any("pyo3" in path.read_text(encoding="utf-8") for path in (CORE / "src").rglob("*.rs"))


def test_the_bindings_never_import_the_package_nor_call_libc() -> None:
    manifest = tomllib.loads((BINDINGS / "Cargo.toml").read_text(encoding="utf-8"))
    assert "libc" not in manifest.get("dependencies", {})
    imports = re.compile(r"""import\(\s*"(namedipc[\w.]*)"\s*\)""")
    wrong = []
    for path in sorted((BINDINGS / "src").rglob("*.rs")):
        source = path.read_text(encoding="utf-8")
        wrong += [
            f"{path.relative_to(ROOT)} imports {module}"
            for module in imports.findall(source)
            if module != "namedipc._namedipc"  # the bindings' own module
        ]
        if re.search(r"\blibc::", source):
            wrong.append(f"{path.relative_to(ROOT)} calls libc")
    assert wrong == []


def test_package_modules_import_only_downwards() -> None:
    """The package's inner modules may import the bindings and each other,
    never the package itself (whose __init__ imports them)."""
    wrong = []
    for path in sorted(PACKAGE.glob("*.py")):
        if path.name in {"__init__.py", "__main__.py"}:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                wrong += [f"{path.name}: import {a.name}" for a in node.names if a.name == "namedipc"]
            elif isinstance(node, ast.ImportFrom) and node.module == "namedipc":
                wrong.append(f"{path.name}: from namedipc import ...")
    assert wrong == []


def test_the_checks_catch_an_arrow_back_up() -> None:
    """The regular expressions see the forms imports take in this tree."""
    assert core_uses("use crate::robust::FILE_PREFIX;") == {"robust"}
    assert core_uses("use crate::{paths, sys};") == {"paths", "sys"}
    assert core_uses("use crate::{Error, Existence};") == {"error", "existence"}
    assert core_uses("/// See [`crate::robust::RobustSemaphore`].") == set()
