"""Every ```python block in README.md and docs/*.md runs, as a user would run it.

The rules, for whoever writes an example:

- Each block is a script run by a fresh Python process (``python -W error``,
  working directory a new temporary directory). It must exit with status 0
  within BLOCK_TIMEOUT seconds and print nothing on stderr (so an exception
  ignored in a destructor or a thread fails it too); a block still running
  then is killed with every process it started, and the test fails.
- A block preceded by the line ``<!-- doctest: continue -->`` (an HTML
  comment, so not shown on the rendered page) carries on from the python
  block before it on the same page: the two run as one script, in one
  process. Any number of blocks can be chained this way.
- IPC names: every string literal whose whole value looks like "/gpu" (a
  slash, then letters, digits, '.', '_' or '-') is rewritten to a name of
  its own for the test, "/namedipc-doc-<pid>-<random>-gpu", the same one
  wherever "/gpu" appears in the script. Write every IPC name an example
  uses as such a literal. Other strings ("/tmp/x.lock", "gpu") stay as they are.
- Nothing may be left afterwards under those names: named semaphores
  (/dev/shm/sem.NAME), shared memory segments (/dev/shm/NAME), robust
  semaphores (/dev/shm/namedipc-robust.NAME) and message queues (found with
  namedipc.unlink_message_queue, or in /dev/mqueue where it is mounted).
  Whatever is found is removed, and the test fails. So an example cleans
  up after itself, as the docs tell users to.
- A block whose first line is ``# not run: REASON`` is not run (e.g. it needs
  a package the tests do not install, or shows what not to do). The marker
  is in the block, so readers see it too. NOT_RUN says how many such blocks
  each page has; the test fails if that changes, so none slips in unnoticed.
- Blocks in other languages are not run here: ```sh, ```text, ```json and
  unlabelled blocks are shown only. ```rust blocks are compiled and run by
  ``cargo test``: every page that has one is included as a doctest in
  crates/namedipc/src/doctests.rs (a test below checks that none is missing).

Why a runner of its own: the libraries that test Markdown examples
(pytest-examples, phmdoctest, Sybil, pytest-markdown-docs, mktestdocs) run
each example inside the test process, or as a test function they generate;
none runs it in a process of its own, kills that process's group when it
hangs, gives its IPC names unique ones, or looks for the objects it left
behind, and that is most of what this file does. What a library would save
is the parsing of fences and markers (parse and scripts, some 60 lines),
which the test_rules_* tests at the end check like the rest.
"""

from __future__ import annotations

import ast
import io
import os
import re
import secrets
import signal
import subprocess
import sys
import tokenize
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import namedipc
from support.waiting import poll_until, process_gone

ROOT = Path(__file__).resolve().parent.parent
SHM = Path("/dev/shm")
MQUEUE = Path("/dev/mqueue")

# Seconds a script may run. Examples wait for at most a few seconds.
BLOCK_TIMEOUT = 30.0

CONTINUE = "<!-- doctest: continue -->"
NOT_RUN = re.compile(r"#\s*not run:\s*(?P<reason>\S.*)")
FENCE = re.compile(r"(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<lang>[^\s`]*).*")
IPC_NAME = re.compile(r"/[A-Za-z0-9_.-]+")

# How many blocks marked "# not run:" each page has (pages not listed: none).
EXPECTED_NOT_RUN = {
    "docs/migrating.md": 2,
    # RedisSemaphore's examples need a Redis server.
    "README.md": 1,
    "docs/distributed.md": 1,
}


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@dataclass
class Block:
    """One fenced code block of a page."""

    page: str  # relative to the repository, e.g. "docs/choosing.md"
    line: int  # the line number (1-based) of its first line of code
    lang: str
    code: list[str]
    continues: bool = False

    @property
    def not_run_reason(self) -> str | None:
        first = self.code[0].strip() if self.code else ""
        match = NOT_RUN.fullmatch(first)
        return match["reason"] if match else None


@dataclass
class Script:
    """Python blocks of one page that run as one script: a block and those
    that continue it."""

    blocks: list[Block] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.blocks[0].page}:{self.blocks[0].line}"

    def source(self) -> str:
        """The blocks' code, each at its line number on the page, so that a
        traceback's line numbers are the page's."""
        lines: list[str] = []
        for block in self.blocks:
            lines.extend([""] * (block.line - 1 - len(lines)))
            lines.extend(block.code)
        return "\n".join(lines) + "\n"


def parse(page: str, text: str) -> list[Block]:
    """The fenced code blocks of a markdown text, with their markers."""
    blocks: list[Block] = []
    lines = text.splitlines()
    previous = ""  # the last non-blank line before the current one
    i = 0
    while i < len(lines):
        opening = FENCE.fullmatch(lines[i])
        if opening is None:
            if lines[i].strip():
                previous = lines[i].strip()
            i += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        code: list[str] = []
        start = i + 2
        i += 1
        while i < len(lines) and not (
            lines[i].strip().startswith(fence[0] * len(fence)) and not lines[i].strip().strip(fence[0])
        ):
            line = lines[i]
            code.append(line[indent:] if not line[:indent].strip() else line.lstrip())
            i += 1
        if i == len(lines):
            raise ValueError(f"{page}:{start - 1}: the code block is never closed")
        blocks.append(Block(page, start, opening["lang"].lower(), code, continues=previous == CONTINUE))
        previous = ""
        i += 1
    return blocks


def scripts(blocks: Iterable[Block]) -> tuple[list[Script], list[Block]]:
    """Groups a page's python blocks into scripts; returns them and the
    blocks marked not to run."""
    runs: list[Script] = []
    not_run: list[Block] = []
    last: Script | None = None
    for block in blocks:
        if block.continues and block.lang != "python":
            raise ValueError(f"{block.page}:{block.line}: {CONTINUE} is only for python blocks")
        if block.lang != "python":
            continue
        if block.not_run_reason is not None:
            if block.continues:
                raise ValueError(f"{block.page}:{block.line}: a block that is not run cannot continue another")
            not_run.append(block)
            last = None
        elif block.continues:
            if last is None:
                raise ValueError(
                    f"{block.page}:{block.line}: {CONTINUE}, but no python block that runs comes before it"
                )
            last.blocks.append(block)
        else:
            last = Script([block])
            runs.append(last)
    return runs, not_run


def collect() -> tuple[list[Script], dict[str, list[Block]], dict[str, list[Block]]]:
    """Every script of every page; the blocks not run and the blocks of
    every language, per page."""
    runs: list[Script] = []
    not_run: dict[str, list[Block]] = {}
    every: dict[str, list[Block]] = {}
    for path in pages():
        page = path.relative_to(ROOT).as_posix()
        blocks = parse(page, path.read_text(encoding="utf-8"))
        page_runs, page_not_run = scripts(blocks)
        runs.extend(page_runs)
        every[page] = blocks
        if page_not_run:
            not_run[page] = page_not_run
    return runs, not_run, every


SCRIPTS, NOT_RUN_BLOCKS, ALL_BLOCKS = collect()


class DocNames:
    """Unique names for the IPC names in a script, and the removal of
    whatever is left under them."""

    def __init__(self) -> None:
        self.prefix = f"namedipc-doc-{os.getpid()}-{secrets.token_hex(4)}"
        self.names: dict[str, str] = {}

    def unique(self, name: str) -> str:
        if name not in self.names:
            self.names[name] = f"/{self.prefix}-{name[1:]}"
        return self.names[name]

    def rewrite(self, source: str) -> str:
        """`source` with every string literal that is an IPC name replaced by
        its unique name (same line and column for everything else)."""
        lines = source.splitlines(keepends=True)
        replacements: list[tuple[int, int, int, str]] = []
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type != tokenize.STRING or token.start[0] != token.end[0]:
                continue
            try:
                value = ast.literal_eval(token.string)
            except (ValueError, SyntaxError):
                continue
            if isinstance(value, str) and IPC_NAME.fullmatch(value):
                replacement = repr(self.unique(value))
            elif isinstance(value, bytes) and IPC_NAME.fullmatch(value.decode("ascii", "replace")):
                replacement = repr(self.unique(value.decode()).encode())
            else:
                continue
            row, start = token.start
            replacements.append((row - 1, start, token.end[1], replacement))
        for row, start, end, replacement in reversed(replacements):
            lines[row] = lines[row][:start] + replacement + lines[row][end:]
        return "".join(lines)

    def remove_leftovers(self) -> list[str]:
        """Removes every object under this script's names; returns what it found."""
        found: list[str] = []
        for entry in sorted(SHM.iterdir()):
            if self.prefix in entry.name:
                found.append(str(entry))
                entry.unlink(missing_ok=True)
        if MQUEUE.is_dir():
            for entry in sorted(MQUEUE.iterdir()):
                if self.prefix in entry.name:
                    found.append(str(entry))
        for name in self.names.values():
            try:
                namedipc.unlink_message_queue(name)
            except namedipc.ExistentialError:
                continue
            found.append(f"message queue {name}")
        return found


@dataclass
class Outcome:
    returncode: int | None  # None: killed at the timeout
    stdout: str
    stderr: str
    leftovers: list[str]

    def problems(self, script_id: str, timeout: float) -> list[str]:
        said = f"stdout:\n{self.stdout}\nstderr:\n{self.stderr}"
        problems = []
        if self.returncode is None:
            problems.append(f"{script_id} did not finish within {timeout} s and was killed\n{said}")
        elif self.returncode != 0:
            problems.append(f"{script_id} failed with exit status {self.returncode}\n{said}")
        elif self.stderr:
            problems.append(f"{script_id} printed on stderr\n{said}")
        if self.leftovers:
            problems.append(f"{script_id} left objects behind (now removed): {', '.join(self.leftovers)}")
        return problems


def run_script(script: Script, workdir: Path, timeout: float = BLOCK_TIMEOUT) -> Outcome:
    """Runs a script in a new process (and process group) with unique
    names, kills what is left of the group, and removes leftover objects."""
    names = DocNames()
    path = workdir / (script.blocks[0].page.replace("/", "_") + ".py")
    path.write_text(names.rewrite(script.source()), encoding="utf-8")
    returncode: int | None = None
    stdout = stderr = ""
    try:
        proc = subprocess.Popen(
            [sys.executable, "-W", "error", str(path)],
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
            returncode = proc.returncode
        except subprocess.TimeoutExpired:
            pass
        finally:
            # The script's own processes too (it may have started workers).
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if returncode is None:
            stdout, stderr = proc.communicate(timeout=BLOCK_TIMEOUT)
    finally:
        leftovers = names.remove_leftovers()
    return Outcome(returncode, stdout, stderr, leftovers)


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.id for s in SCRIPTS])
def test_example_runs(script: Script, tmp_path: Path) -> None:
    outcome = run_script(script, tmp_path)
    problems = outcome.problems(script.id, BLOCK_TIMEOUT)
    assert not problems, "\n".join(problems)


def test_examples_are_found() -> None:
    """The README and the docs have examples, so a parser that finds none
    (or a page that moved) fails here instead of running nothing."""
    pages_with_scripts = {s.blocks[0].page for s in SCRIPTS}
    assert "README.md" in pages_with_scripts
    for page in ("docs/choosing.md", "docs/migrating.md", "docs/cleanup-and-crashes.md"):
        assert page in pages_with_scripts, f"{page} has no python example that runs"


def test_python_blocks_are_labelled_python() -> None:
    """Only ```python blocks run; another label for Python would hide an example."""
    other = [
        f"{b.page}:{b.line} ({b.lang})"
        for blocks in ALL_BLOCKS.values()
        for b in blocks
        if b.lang in {"py", "python3", "pycon", "ipython", "pyi"}
    ]
    assert not other, f"label these ```python so that they run: {other}"


def test_blocks_not_run_are_the_expected_ones() -> None:
    counts = {page: len(blocks) for page, blocks in NOT_RUN_BLOCKS.items()}
    where = [f"{b.page}:{b.line} ({b.not_run_reason})" for blocks in NOT_RUN_BLOCKS.values() for b in blocks]
    assert counts == EXPECTED_NOT_RUN, (
        f"blocks marked '# not run:' changed: {where}; run the new one, or update EXPECTED_NOT_RUN "
        "if it really cannot run"
    )


def rust_pages() -> set[str]:
    return {page for page, blocks in ALL_BLOCKS.items() if any(b.lang.startswith("rust") for b in blocks)}


def test_every_page_with_rust_blocks_is_a_doctest() -> None:
    doctests = (ROOT / "crates/namedipc/src/doctests.rs").read_text(encoding="utf-8")
    included = {
        (ROOT / "crates/namedipc/src" / path).resolve().relative_to(ROOT).as_posix()
        for path in re.findall(r'include_str!\("([^"]+)"\)', doctests)
    }
    assert rust_pages() <= included, f"pages with ```rust blocks missing from doctests.rs: {rust_pages() - included}"


def test_pages_included_as_doctests_have_no_unlabelled_blocks() -> None:
    """rustdoc compiles an unlabelled block as Rust: label it (```text)."""
    for page in rust_pages():
        unlabelled = [f"{page}:{b.line}" for b in ALL_BLOCKS[page] if not b.lang]
        assert not unlabelled, f"unlabelled code blocks (rustdoc would compile them as Rust): {unlabelled}"


def test_docs_index_lists_every_page() -> None:
    index = (ROOT / "docs/README.md").read_text(encoding="utf-8")
    for path in (ROOT / "docs").glob("*.md"):
        if path.name != "README.md":
            assert f"({path.name})" in index, f"docs/README.md does not link {path.name}"


# The rules themselves: a harness that cannot fail would prove nothing.


def one_script(markdown: str) -> Script:
    runs, _ = scripts(parse("page.md", markdown))
    assert len(runs) == 1
    return runs[0]


def test_rules_markers() -> None:
    markdown = "\n".join(
        [
            "# Page",  # 1
            "```python",  # 2
            "x = 1",  # 3
            "```",  # 4
            "text",  # 5
            CONTINUE,  # 6
            "",  # 7
            "```python",  # 8
            "assert x == 1",  # 9
            "```",  # 10
            "```python",  # 11
            "# not run: shows a mistake",  # 12
            "```",  # 13
            "```sh",  # 14
            "ls",  # 15
            "```",  # 16
            "- item",  # 17
            "  ```python",  # 18
            "  y = 2",  # 19
            "  ```",  # 20
        ]
    )
    runs, not_run = scripts(parse("page.md", markdown))
    assert [[b.line for b in s.blocks] for s in runs] == [[3, 9], [19]]
    assert runs[0].source().splitlines()[8] == "assert x == 1"
    assert runs[1].blocks[0].code == ["y = 2"]
    assert [(b.line, b.not_run_reason) for b in not_run] == [(12, "shows a mistake")]
    with pytest.raises(ValueError, match="no python block that runs comes before it"):
        scripts(parse("page.md", f"{CONTINUE}\n```python\npass\n```\n"))
    with pytest.raises(ValueError, match="never closed"):
        parse("page.md", "```python\npass\n")


def test_rules_rewrite_ipc_names_only() -> None:
    names = DocNames()
    source = 'a = NamedSemaphore("/gpu")\nb = (\'/gpu\', b\'/frames\', "/tmp/x.lock", "gpu", f"/{a}", \'/\')\n'
    rewritten = names.rewrite(source).splitlines()
    gpu, frames = names.names["/gpu"], names.names["/frames"]
    assert rewritten[0] == f"a = NamedSemaphore({gpu!r})"
    assert rewritten[1] == f'b = ({gpu!r}, {frames.encode()!r}, "/tmp/x.lock", "gpu", f"/{{a}}", \'/\')'
    assert gpu.startswith(f"/namedipc-doc-{os.getpid()}-") and gpu.endswith("-gpu")
    assert DocNames().unique("/gpu") != gpu


def test_rules_a_failing_block_fails_with_the_page_line(tmp_path: Path) -> None:
    script = one_script("intro\n\n```python\nx = 1\nraise RuntimeError('boom')\n```\n")
    outcome = run_script(script, tmp_path)
    assert outcome.returncode == 1
    assert "line 5" in outcome.stderr and "RuntimeError: boom" in outcome.stderr
    assert outcome.problems("page.md:4", BLOCK_TIMEOUT)


def test_rules_warnings_are_errors(tmp_path: Path) -> None:
    outcome = run_script(one_script("```python\nimport warnings\nwarnings.warn('old')\n```\n"), tmp_path)
    assert outcome.returncode == 1 and "UserWarning: old" in outcome.stderr


def test_rules_output_on_stderr_fails(tmp_path: Path) -> None:
    code = ["import threading", "t = threading.Thread(target=lambda: 1 / 0)", "t.start()", "t.join()"]
    outcome = run_script(one_script("```python\n" + "\n".join(code) + "\n```\n"), tmp_path)
    assert outcome.returncode == 0 and "ZeroDivisionError" in outcome.stderr
    assert "printed on stderr" in outcome.problems("page.md:2", BLOCK_TIMEOUT)[0]


def test_rules_a_hanging_block_is_killed_with_its_children(tmp_path: Path) -> None:
    code = [
        "import subprocess, sys, threading",
        "child = subprocess.Popen([sys.executable, '-c', 'import threading; threading.Event().wait()'])",
        "print(child.pid, flush=True)",
        "threading.Event().wait()",
    ]
    outcome = run_script(one_script("```python\n" + "\n".join(code) + "\n```\n"), tmp_path, timeout=2)
    assert outcome.returncode is None
    assert "did not finish within 2 s" in outcome.problems("page.md:2", 2)[0]
    child = int(outcome.stdout)
    # Killed with its group. The signal is delivered in its own time: wait
    # until the child is gone (or a zombie, until whoever inherited it reaps it).
    poll_until(lambda: process_gone(child), what=f"the block's child {child} killed with its group")


def test_rules_leftovers_are_found_and_removed(tmp_path: Path) -> None:
    code = [
        "import namedipc",
        "namedipc.Semaphore('/left', namedipc.O_CREX, initial_value=1)",
        "namedipc.SharedMemory('/left', namedipc.O_CREX, size=16)",
        "namedipc.RobustSemaphore('/left', persistent=True)",
        "namedipc.MessageQueue('/left', namedipc.O_CREX)",
        "namedipc.Semaphore('/tidy', namedipc.O_CREX, initial_value=1).unlink()",
    ]
    outcome = run_script(one_script("```python\n" + "\n".join(code) + "\n```\n"), tmp_path)
    assert outcome.returncode == 0, outcome.stderr
    left = outcome.leftovers
    assert len(left) == 4, left
    assert any(x.startswith("/dev/shm/sem.namedipc-doc-") and x.endswith("-left") for x in left)
    assert any(x.startswith("/dev/shm/namedipc-robust.namedipc-doc-") for x in left)
    assert any(x.startswith("/dev/shm/namedipc-doc-") for x in left)
    assert any(x.startswith("message queue /namedipc-doc-") for x in left)
    assert not [x for x in left if x.startswith("/") and Path(x).exists()]
    queue = left[-1].removeprefix("message queue ")
    with pytest.raises(namedipc.ExistentialError):
        namedipc.unlink_message_queue(queue)


def test_rules_every_script_is_collected_once() -> None:
    lines = [(b.page, b.line) for s in SCRIPTS for b in s.blocks]
    assert len(lines) == len(set(lines))
    python_blocks = [(b.page, b.line) for blocks in ALL_BLOCKS.values() for b in blocks if b.lang == "python"]
    not_run = [(b.page, b.line) for blocks in NOT_RUN_BLOCKS.values() for b in blocks]
    assert sorted(lines + not_run) == sorted(python_blocks)
