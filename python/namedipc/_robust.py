"""What RobustSemaphore.holders() returns."""

from typing import NamedTuple


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
