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
import importlib

from namedipc import _namedipc
from namedipc._flags import Flags
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
    QUEUE_MESSAGE_SIZE_MAX_DEFAULT,
    QUEUE_MESSAGES_MAX_DEFAULT,
    QUEUE_PRIORITY_MAX,
    SEMAPHORE_TIMEOUT_SUPPORTED,
    SEMAPHORE_VALUE_MAX,
    SEMAPHORE_VALUE_SUPPORTED,
    USER_SIGNAL_MAX,
    USER_SIGNAL_MIN,
    VERSION,
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
    Semaphore,
    SharedMemory,
    SignalError,
    SystemCallError,
    UnavailableError,
    unlink_message_queue,
    unlink_robust_semaphore,
    unlink_semaphore,
    unlink_shared_memory,
)

__version__ = VERSION


# The bindings never import this package; it hands them what they need from
# Python: the asyncio glue, imported the first time an async method is used.
_namedipc._install_asyncio_glue(lambda: importlib.import_module("namedipc._aio"))
# A creating NamedSemaphore and every RobustSemaphore clean up at a normal
# exit, also when a thread still holds the handle then.
atexit.register(_namedipc._close_all_at_exit)

NamedSemaphore.Flags = Flags  # type: ignore[attr-defined]
RobustSemaphore.Flags = Flags  # type: ignore[attr-defined]

# namedipc.Lease (RedisSemaphore.holders()) is a named tuple made on first
# use, so that importing namedipc does not import collections.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NamedTuple

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

else:

    def __getattr__(name):
        if name == "Lease":
            return _namedipc._lease_class()
        raise AttributeError(f"module 'namedipc' has no attribute {name!r}")

    def __dir__():
        return sorted([*globals(), "Lease"])


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
    "unlink_robust_semaphore",
    "unlink_semaphore",
    "unlink_shared_memory",
]
