"""The timed loop that several subjects share (an acquire+release pair), and
private_copy, which gives each subject a loop of its own to time.
"""

from __future__ import annotations

import time
import types
from collections.abc import Callable

# Timed loops. Each is a plain function, so that its loop variables are fast
# locals; the caller binds methods once, so what is timed is the call itself,
# the same way for every library and for the floor. A subject's own loops
# live in its module, written the same way.


def pair_loop(first: Callable[[], object], second: Callable[[], object], n: int) -> int:
    start = time.perf_counter_ns()
    for _ in range(n):
        first()
        second()
    return time.perf_counter_ns() - start


def private_copy(loop: Callable[..., int]) -> Callable[..., int]:
    """`loop` with a code object of its own. CPython >= 3.11 specialises each
    call site for the callable it last saw: subjects sharing one loop would
    undo each other's specialisation, favouring whichever ran last."""
    return types.FunctionType(loop.__code__.replace(), loop.__globals__, loop.__name__)
