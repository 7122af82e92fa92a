"""What the tests share besides fixtures (those are in tests/conftest.py).

One module per concern; a test imports what it uses, e.g.
``from support.waiting import WAIT, poll_until``:

- names      unique IPC names, and removing what is at them
- processes  independent processes spoken to line by line (Peer, Helper),
             programs run to completion, a call run in a background thread
- lines      reading a process's output line by line with a deadline (the
             one reader for Peer.expect, read_line and a terminal's output)
- waiting    WAIT, the bound of every wait; poll_until, the one way to wait
             for a state, and the waits built on it (threads blocked on a
             semaphore, a process gone)
- build      compiling the C peers and building the Rust binaries
- aio        running a coroutine, and the asyncio glue's waiter threads

pytest puts tests/ on sys.path (the default "prepend" import mode, from the
rootdir or from anywhere else), and mypy, given the files under tests/, takes
tests/ as the base of the package ``support``; so ``support`` is found the
same way ``conftest`` always was.
"""
