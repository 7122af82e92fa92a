"""The README's Python examples can be pasted into an interactive prompt as
they are: fed to the interpreter line by line, as `python` reads a paste,
each block parses (a compound statement followed by code without a blank
line, say, is a SyntaxError there although it runs as a script)."""

from __future__ import annotations

import code
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.S | re.M)


class Prompt(code.InteractiveConsole):
    """A prompt that parses what is pasted into it and runs nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.errors: list[str] = []

    def runcode(self, code: object) -> None:
        return None

    def showsyntaxerror(self, filename: str | None = None, **kwargs: object) -> None:
        self.errors.append(filename or "<paste>")


def paste(block: str) -> list[str]:
    """Pastes `block` and a final empty line; the lines that did not parse."""
    prompt = Prompt()
    failed = []
    for number, line in enumerate([*block.splitlines(), ""], start=1):
        before = len(prompt.errors)
        prompt.push(line)
        if len(prompt.errors) > before:
            failed.append(f"line {number}: {line!r}")
    return failed


def test_the_readme_has_python_examples() -> None:
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("block", BLOCKS, ids=[b.splitlines()[0] for b in BLOCKS])
def test_readme_example_pastes_into_a_prompt(block: str) -> None:
    assert paste(block) == []


def test_a_block_a_prompt_cannot_take_is_caught() -> None:
    assert paste("with open('/dev/null') as f:\n    pass\nx = 1\n") != []
