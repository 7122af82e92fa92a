"""namedipc: named semaphores, shared memory and message queues for
processes that coordinate by name.

Two faces over one Rust core:

- ``Semaphore``, ``SharedMemory``, ``MessageQueue``, the ``unlink_*`` functions and the
  constants are posix_ipc 1.3's API, so ``import namedipc as posix_ipc``
  works, without posix_ipc's crashes.
- ``NamedSemaphore`` behaves like ``threading.Semaphore`` across processes.
- ``RobustSemaphore`` behaves like ``threading.BoundedSemaphore`` shared by
  the threads of a process, across processes, and survives its holders: a
  slot whose holder dies (even by SIGKILL) comes back within about a
  millisecond; ``holders()`` says who holds what.
- ``RedisSemaphore`` is the same counting semaphore across machines, on a
  Redis server: leases on the server's clock, fencing tokens, ``lost``.
"""

import atexit

from namedipc import _namedipc as _namedipc
from namedipc._namedipc import (
    MESSAGE_QUEUES_SUPPORTED,
    O_CREAT,
    O_CREX,
    O_EXCL,
    O_NONBLOCK,
    O_RDONLY,
    O_RDWR,
    O_TRUNC,
    O_WRONLY,
    PAGE_SIZE,
    QUEUE_PRIORITY_MAX,
    SEMAPHORE_TIMEOUT_SUPPORTED,
    SEMAPHORE_VALUE_MAX,
    SEMAPHORE_VALUE_SUPPORTED,
    USER_SIGNAL_MAX,
    USER_SIGNAL_MIN,
    VERSION,
    Semaphore,
    unlink_message_queue,
    unlink_redis_semaphore,
    unlink_robust_semaphore,
    unlink_semaphore,
    unlink_shared_memory,
)

# Some names are made on first use (the module's __getattr__ below): Flags
# needs enum, Holder collections, the exception classes ten calls of type(),
# the queue defaults are read from /proc, and each class costs its type's
# making; together that costs an import several times what the rest of it
# does. A program that never uses them never pays for them. For type checkers, they are plain imports.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NamedTuple

    from namedipc._flags import Flags
    from namedipc._namedipc import (
        QUEUE_MESSAGE_SIZE_MAX_DEFAULT,
        QUEUE_MESSAGES_MAX_DEFAULT,
        BusyError,
        CorruptError,
        Error,
        ExistentialError,
        ExistsError,
        Holder,
        LeaseLost,
        MessageQueue,
        NamedSemaphore,
        NotFoundError,
        OverflowValueError,
        PermissionsError,
        RedisSemaphore,
        RobustSemaphore,
        SharedMemory,
        SignalError,
        SystemCallError,
        UnavailableError,
    )

    class Lease(NamedTuple):
        """One holder of a RedisSemaphore at the time of the call."""

        host: str
        """Host name of the holder's machine."""
        pid: int
        """Process id of the holder on its host."""
        since: float
        """When the slot was taken, in seconds since the epoch, by the server's clock."""
        expires_in: float
        """Seconds the lease has left, by the server's clock, at the time of the call."""
        fence: int
        """The grant's fencing token: larger than every token given before."""
        slot: int
        """The slot held, 0 to slots - 1."""


__version__ = VERSION

# What the bindings make on first use.
_FROM_BINDINGS = frozenset(
    {
        "QUEUE_MESSAGE_SIZE_MAX_DEFAULT",
        "QUEUE_MESSAGES_MAX_DEFAULT",
        "BusyError",
        "CorruptError",
        "Error",
        "ExistentialError",
        "ExistsError",
        "Holder",
        "LeaseLost",
        "MessageQueue",
        "NamedSemaphore",
        "NotFoundError",
        "OverflowValueError",
        "PermissionsError",
        "RedisSemaphore",
        "RobustSemaphore",
        "SharedMemory",
        "SignalError",
        "SystemCallError",
        "UnavailableError",
    }
)


def _load_aio() -> object:
    import namedipc._aio

    return namedipc._aio


# The bindings never import this package; it hands them what they need from
# Python: the asyncio glue, imported the first time an async method is used.
_namedipc._install_asyncio_glue(_load_aio)
# A creating NamedSemaphore and every RobustSemaphore clean up at a normal
# exit, also when a thread still holds the handle then.
atexit.register(_namedipc._close_all_at_exit)


def _make(name: str) -> object:
    """The value of a name made on first use, stored in the module for later lookups."""
    value: object
    if name == "Flags":
        from namedipc import _flags

        value = _flags.Flags
    elif name == "Lease":
        # RedisSemaphore.holders()' named tuple: collections is imported then.
        value = _namedipc._lease_class()
    elif name in _FROM_BINDINGS:
        value = getattr(_namedipc, name)
    else:
        raise AttributeError(f"module 'namedipc' has no attribute {name!r}")
    globals()[name] = value
    return value


if not TYPE_CHECKING:
    # Only at run time: for a type checker, a module __getattr__ would make
    # every misspelt name look like an attribute.
    __getattr__ = _make


def __dir__() -> list[str]:
    return sorted({*globals(), "Flags", "Lease", *_FROM_BINDINGS})


def _load_flags() -> object:
    """``namedipc.Flags``, made on first use: the bindings' ``NamedSemaphore.Flags``
    and ``RobustSemaphore.Flags`` (a descriptor of theirs) return what this returns."""
    return _make("Flags")


_namedipc._install_flags_attribute(_load_flags)

__all__ = [
    "MESSAGE_QUEUES_SUPPORTED",
    "MessageQueue",
    "QUEUE_MESSAGES_MAX_DEFAULT",
    "QUEUE_MESSAGE_SIZE_MAX_DEFAULT",
    "QUEUE_PRIORITY_MAX",
    "USER_SIGNAL_MAX",
    "USER_SIGNAL_MIN",
    "unlink_message_queue",
    "BusyError",
    "CorruptError",
    "Error",
    "ExistentialError",
    "ExistsError",
    "Flags",
    "Holder",
    "Lease",
    "LeaseLost",
    "NamedSemaphore",
    "NotFoundError",
    "OverflowValueError",
    "O_CREAT",
    "O_CREX",
    "O_EXCL",
    "O_NONBLOCK",
    "O_RDONLY",
    "O_RDWR",
    "O_TRUNC",
    "O_WRONLY",
    "PAGE_SIZE",
    "PermissionsError",
    "RedisSemaphore",
    "RobustSemaphore",
    "SEMAPHORE_TIMEOUT_SUPPORTED",
    "SEMAPHORE_VALUE_MAX",
    "SEMAPHORE_VALUE_SUPPORTED",
    "Semaphore",
    "SharedMemory",
    "SignalError",
    "SystemCallError",
    "UnavailableError",
    "VERSION",
    "__version__",
    "unlink_redis_semaphore",
    "unlink_robust_semaphore",
    "unlink_semaphore",
    "unlink_shared_memory",
]
