"""The existence flags of NamedSemaphore and RobustSemaphore."""

import enum


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
