"""The shared fixtures: unique object names that are always removed, and
independent helper processes that are always killed. What the tests share
besides fixtures is in the package tests/support (see its __init__)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from support.names import Names, remove_queue, remove_robust, remove_segment, remove_semaphore
from support.processes import Helper, Peer, tracking
from support.users import users  # noqa: F401 - the session fixture of the multi-user tests


@pytest.fixture
def names() -> Iterator[Names]:
    """Unique semaphore names, removed after the test."""
    with Names(remove_semaphore, "sem") as made:
        yield made


@pytest.fixture
def sem_name(names: Names) -> str:
    """One unique semaphore name, removed after the test."""
    return names()


@pytest.fixture
def shm_names() -> Iterator[Names]:
    """Unique shared memory names, removed after the test."""
    with Names(remove_segment, "shm") as made:
        yield made


@pytest.fixture
def shm_name(shm_names: Names) -> str:
    """One unique shared memory name, removed after the test."""
    return shm_names()


@pytest.fixture
def mq_names() -> Iterator[Names]:
    """Unique message queue names, removed after the test."""
    with Names(remove_queue, "mq") as made:
        yield made


@pytest.fixture
def mq_name(mq_names: Names) -> str:
    """One unique message queue name, removed after the test."""
    return mq_names()


@pytest.fixture
def name_for(sem_name: str, shm_name: str, mq_name: str) -> dict[type[Any], str]:
    """A unique name for each posix_ipc class, removed after the test."""
    # Imported here: the conftest itself makes none of the classes that
    # the package makes on first use.
    from namedipc import MessageQueue, Semaphore, SharedMemory

    return {Semaphore: sem_name, SharedMemory: shm_name, MessageQueue: mq_name}


@pytest.fixture
def robust_names() -> Iterator[Names]:
    """Unique robust semaphore names, removed after the test."""
    with Names(remove_robust, "robust") as made:
        yield made


@pytest.fixture
def robust_name(robust_names: Names) -> str:
    """One unique robust semaphore name, removed after the test."""
    return robust_names()


@pytest.fixture
def programs() -> Iterator[type[Peer]]:
    """Starts any program as a Peer; any still running at teardown are killed."""
    yield from tracking(Peer)


@pytest.fixture
def helper() -> Iterator[type[Helper]]:
    """Starts semctl.py helper processes; any still running at teardown are killed."""
    yield from tracking(Helper)
