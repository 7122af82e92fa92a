# Hand-written stubs for the compiled module namedipc._namedipc.
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, ClassVar, NamedTuple, Self, SupportsFloat

from typing_extensions import Buffer, disjoint_base

from namedipc._flags import Flags

__all__ = [
    "Error",
    "SignalError",
    "PermissionsError",
    "ExistentialError",
    "ExistsError",
    "NotFoundError",
    "BusyError",
    "CorruptError",
    "SystemCallError",
    "OverflowValueError",
    "Holder",
    "_install_asyncio_glue",
    "_install_flags_attribute",
    "_close_all_at_exit",
    "Semaphore",
    "NamedSemaphore",
    "unlink_semaphore",
    "_reopen_semaphore",
    "_reopen_named_semaphore",
    "RobustSemaphore",
    "_reopen_robust_semaphore",
    "unlink_robust_semaphore",
    "SharedMemory",
    "unlink_shared_memory",
    "_reopen_shared_memory",
    "MessageQueue",
    "unlink_message_queue",
    "_reopen_message_queue",
    "MESSAGE_QUEUES_SUPPORTED",
    "QUEUE_MESSAGES_MAX_DEFAULT",
    "QUEUE_MESSAGE_SIZE_MAX_DEFAULT",
    "QUEUE_PRIORITY_MAX",
    "USER_SIGNAL_MIN",
    "USER_SIGNAL_MAX",
    "O_CREAT",
    "O_EXCL",
    "O_CREX",
    "O_TRUNC",
    "O_RDONLY",
    "O_WRONLY",
    "O_RDWR",
    "O_NONBLOCK",
    "PAGE_SIZE",
    "SEMAPHORE_TIMEOUT_SUPPORTED",
    "SEMAPHORE_VALUE_SUPPORTED",
    "SEMAPHORE_VALUE_MAX",
    "VERSION",
    "_cli_main",
]

# The module lists, in dir(), the names it makes on first use (the
# exception classes, Holder, NamedSemaphore, SharedMemory, MessageQueue and
# the queue defaults, through a module
# __getattr__ that is left out here, so that type checkers know every name).
def __dir__() -> list[str]: ...

# The exception classes, made by the bindings on first use (errors.rs).
class Error(Exception):
    """Base class of every namedipc error."""

class SignalError(Error):
    """A signal interrupted a wait (posix_ipc's Semaphore.acquire)."""

class PermissionsError(Error, PermissionError):
    """The OS refused access to the object."""

class ExistentialError(Error):
    """The object does or does not exist, or the handle has been closed."""

class ExistsError(ExistentialError, FileExistsError):
    """The object was to be created, but its name is taken."""

class NotFoundError(ExistentialError, FileNotFoundError):
    """The object was to be opened, but nothing has its name."""

class BusyError(Error, TimeoutError):
    """A wait ended at its deadline, or a call that does not wait found no slot, no message or no room."""

class CorruptError(Error):
    """The file behind the name is not a valid object of the kind asked for."""

class SystemCallError(Error, OSError):
    """An OS call failed with an errno that has no class of its own; also an OSError, with errno set."""

class OverflowValueError(SystemCallError, ValueError):
    """A release would pass the semaphore's maximum value: a ValueError, and,
    as in posix_ipc, an OSError with errno EOVERFLOW."""

class Holder(NamedTuple):
    """One slot of a RobustSemaphore held at the time of the call."""

    pid: int
    """Process id of the holder (as the holder saw it, in its PID namespace)."""
    uid: int
    """Real user id of the holder."""
    since: float
    """When the slot was taken, in seconds since the epoch (as time.time())."""
    alive: bool
    """False if the holder has died; its slot is about to be given back."""

def _install_asyncio_glue(loader: Callable[[], Any]) -> None: ...
def _close_all_at_exit() -> None: ...

O_CREAT: int
O_EXCL: int
O_CREX: int
O_TRUNC: int
O_RDONLY: int
O_WRONLY: int
O_RDWR: int
O_NONBLOCK: int
PAGE_SIZE: int
SEMAPHORE_TIMEOUT_SUPPORTED: bool
SEMAPHORE_VALUE_SUPPORTED: bool
SEMAPHORE_VALUE_MAX: int
VERSION: str

def unlink_semaphore(name: str | bytes) -> None: ...

@disjoint_base
class Semaphore:
    """A POSIX named semaphore with posix_ipc 1.3's API."""

    def __init__(self, name: str | bytes | None, flags: int = 0, mode: int = 0o600, initial_value: int = 0) -> None: ...
    def acquire(self, timeout: SupportsFloat | None = None) -> None: ...
    def release(self) -> None: ...
    def close(self) -> None: ...
    def unlink(self) -> None: ...
    @property
    def name(self) -> str: ...
    @property
    def mode(self) -> int: ...
    @property
    def value(self) -> int: ...
    @property
    def created(self) -> bool: ...
    @property
    def closed(self) -> bool: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...
    def __reduce__(self) -> tuple[Any, ...]: ...

@disjoint_base
class NamedSemaphore:
    """A named semaphore with threading.Semaphore's manners."""

    Flags: ClassVar[type[Flags]]
    def __init__(
        self,
        name: str | bytes,
        value: int = 1,
        handle_existence: int = ...,  # NamedSemaphore.Flags.LINK_OR_CREATE
        mode: int = 0o600,
        unlink_on_close: bool = True,
        *,
        initial_value: int | None = None,
    ) -> None: ...
    def acquire(self, blocking: bool = True, timeout: SupportsFloat | None = None) -> bool: ...
    def release(self, n: int = 1) -> None: ...
    def close(self) -> None: ...
    def unlink(self) -> None: ...
    @property
    def name(self) -> str: ...
    @property
    def value(self) -> int: ...
    @property
    def created(self) -> bool: ...
    @property
    def closed(self) -> bool: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...
    def acquire_async(self, timeout: SupportsFloat | None = None) -> Coroutine[Any, Any, bool]: ...
    def __aenter__(self) -> Coroutine[Any, Any, Self]: ...
    def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Coroutine[Any, Any, None]: ...
    def __reduce__(self) -> tuple[Any, ...]: ...

def _reopen_semaphore(cls: type[Semaphore], name: str) -> Semaphore: ...
def _reopen_named_semaphore(cls: type[NamedSemaphore], name: str) -> NamedSemaphore: ...

@disjoint_base
class RobustSemaphore:
    """A crash-safe named semaphore: a dead holder's slot comes back."""

    Flags: ClassVar[type[Flags]]
    def __init__(
        self,
        name: str | bytes,
        value: int = 1,
        handle_existence: int = ...,  # RobustSemaphore.Flags.LINK_OR_CREATE
        mode: int = 0o600,
        *,
        records: int = 128,
        persistent: bool = False,
    ) -> None: ...
    def acquire(self, blocking: bool = True, timeout: SupportsFloat | None = None) -> bool: ...
    def release(self, n: int = 1) -> None: ...
    def holders(self) -> list[Holder]: ...
    def close(self) -> None: ...
    def unlink(self) -> None: ...
    @property
    def name(self) -> str: ...
    @property
    def value(self) -> int: ...
    @property
    def slots(self) -> int: ...
    @property
    def created(self) -> bool: ...
    @property
    def closed(self) -> bool: ...
    def acquire_async(self, timeout: SupportsFloat | None = None) -> Coroutine[Any, Any, bool]: ...
    def __aenter__(self) -> Coroutine[Any, Any, Self]: ...
    def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Coroutine[Any, Any, None]: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...
    def __reduce__(self) -> tuple[Any, ...]: ...

def _reopen_robust_semaphore(cls: type[RobustSemaphore], name: str) -> RobustSemaphore: ...
def unlink_robust_semaphore(name: str | bytes) -> None: ...
def unlink_shared_memory(name: str | bytes) -> None: ...

@disjoint_base
class SharedMemory:
    """A POSIX shared memory segment with posix_ipc 1.3's API, plus buf, close() and with."""

    def __init__(
        self,
        name: str | bytes | None,
        flags: int = 0,
        mode: int = 0o600,
        size: int = 0,
        read_only: bool = False,
    ) -> None: ...
    @property
    def name(self) -> str: ...
    @property
    def mode(self) -> int: ...
    @property
    def fd(self) -> int: ...
    @property
    def size(self) -> int: ...
    @property
    def buf(self) -> memoryview: ...
    @property
    def created(self) -> bool: ...
    @property
    def closed(self) -> bool: ...
    def fileno(self) -> int: ...
    def close_fd(self) -> None: ...
    def close(self) -> None: ...
    def unlink(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...
    def __reduce__(self) -> tuple[Any, ...]: ...

def _reopen_shared_memory(cls: type[SharedMemory], name: str, mode: int, read_only: bool) -> SharedMemory: ...

MESSAGE_QUEUES_SUPPORTED: bool
QUEUE_MESSAGES_MAX_DEFAULT: int
QUEUE_MESSAGE_SIZE_MAX_DEFAULT: int
QUEUE_PRIORITY_MAX: int
USER_SIGNAL_MIN: int
USER_SIGNAL_MAX: int

def unlink_message_queue(name: str | bytes) -> None: ...

@disjoint_base
class MessageQueue:
    """A POSIX message queue with posix_ipc 1.3's API."""

    def __init__(
        self,
        name: str | bytes | None,
        flags: int = 0,
        mode: int = 0o600,
        max_messages: int = ...,
        max_message_size: int = ...,
        read: bool = True,
        write: bool = True,
    ) -> None: ...
    def send(self, message: str | Buffer, timeout: SupportsFloat | None = None, priority: int = 0) -> None: ...
    def receive(self, timeout: SupportsFloat | None = None) -> tuple[bytes, int]: ...
    def receive_into(self, buffer: Buffer, timeout: SupportsFloat | None = None) -> tuple[int, int]: ...
    def send_async(
        self, message: str | Buffer, *, priority: int = 0, timeout: SupportsFloat | None = None
    ) -> Coroutine[Any, Any, None]: ...
    def receive_async(self, timeout: SupportsFloat | None = None) -> Coroutine[Any, Any, tuple[bytes, int]]: ...
    def request_notification(self, notification: int | tuple[Callable[[Any], object], Any] | None = None) -> None: ...
    def close(self) -> None: ...
    def unlink(self) -> None: ...
    def fileno(self) -> int: ...
    @property
    def block(self) -> bool: ...
    @block.setter
    def block(self, value: object) -> None: ...
    @property
    def mqd(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def created(self) -> bool: ...
    @property
    def closed(self) -> bool: ...
    @property
    def mode(self) -> int: ...
    @property
    def max_messages(self) -> int: ...
    @property
    def max_message_size(self) -> int: ...
    @property
    def current_messages(self) -> int: ...
    def __reduce__(self) -> tuple[Any, ...]: ...

def _reopen_message_queue(cls: type[MessageQueue], name: str, read: bool, write: bool) -> MessageQueue: ...
def _cli_main(argv: list[str]) -> int: ...
def _install_flags_attribute(descriptor: object) -> None: ...
