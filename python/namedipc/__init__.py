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
"""

import enum

from namedipc._errors import (
    BusyError,
    CorruptError,
    Error,
    ExistentialError,
    ExistsError,
    NotFoundError,
    PermissionsError,
    SignalError,
)
from namedipc._robust import Holder
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
    MessageQueue,
    NamedSemaphore,
    RobustSemaphore,
    Semaphore,
    SharedMemory,
    unlink_message_queue,
    unlink_semaphore,
    unlink_shared_memory,
)

__version__ = VERSION


class Flags(enum.IntEnum):
    """What ``NamedSemaphore`` and ``RobustSemaphore`` do when the name does,
    or does not, exist."""

    RAISE_IF_EXISTS = 0
    """Create it; raise ExistsError (a FileExistsError) if the name is taken."""
    LINK_OR_CREATE = 1
    """Open it if it exists, else create it; race-free across processes."""
    RAISE_IF_NOT_EXISTS = 2
    """Open it; raise NotFoundError (a FileNotFoundError) if it is missing."""
    UNLINK_AND_CREATE = 3
    """Remove any semaphore with the name, then create a new one."""


NamedSemaphore.Flags = Flags  # type: ignore[attr-defined]
RobustSemaphore.Flags = Flags  # type: ignore[attr-defined]

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
    "Holder",
    "NamedSemaphore",
    "NotFoundError",
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
    "RobustSemaphore",
    "SEMAPHORE_TIMEOUT_SUPPORTED",
    "SEMAPHORE_VALUE_MAX",
    "SEMAPHORE_VALUE_SUPPORTED",
    "Semaphore",
    "SharedMemory",
    "SignalError",
    "VERSION",
    "__version__",
    "unlink_semaphore",
    "unlink_shared_memory",
]
