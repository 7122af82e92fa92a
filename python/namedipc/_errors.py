"""namedipc's exceptions: posix_ipc's hierarchy, where each class is also
the Python built-in that says the same thing, so that both
``except namedipc.ExistentialError`` and ``except FileExistsError`` work."""


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
    """The object could not be acquired in the time allowed."""


class CorruptError(Error):
    """The file behind the name is not a valid object of the kind asked for."""
