"""The posix_ipc classes keep the memory of a few collected handles for the
next ones (PyO3's `freelist`, crates/namedipc-python/src/semaphore.rs and
its siblings): a handle made in recycled memory starts as a new one, with
no weak reference, no state and no name of the handle that was there
before, whether it is made by the constructor, by `__new__` alone, or as a
subclass's instance, and a weak reference to a collected handle is dead."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest

import namedipc
from namedipc import MessageQueue, Semaphore, SharedMemory

CLASSES = [Semaphore, SharedMemory, MessageQueue]

# More handles than the classes keep (eight each), so that some are made in
# recycled memory and some are not, and every kept one is handed out again.
ROUNDS = 40


def made(cls: type[Any], name: str) -> Any:
    """A new handle of `cls` on the existing object `name`."""
    return cls(name)


@pytest.mark.parametrize("cls", CLASSES)
def test_a_recycled_handle_starts_new(cls: type[Any], name_for: dict[type[Any], str]) -> None:
    name = name_for[cls]
    owner = cls(name, namedipc.O_CREX)
    try:
        for _ in range(ROUNDS):
            handle = made(cls, name)
            assert weakref.getweakrefcount(handle) == 0
            assert handle.name == name
            ref = weakref.ref(handle)
            handle.close()
            assert ref() is handle
            del handle
            assert ref() is None
    finally:
        owner.unlink()
        owner.close()


@pytest.mark.parametrize("cls", CLASSES)
def test_a_handle_collected_open_leaves_nothing_to_the_next(cls: Any, name_for: dict[type[Any], str]) -> None:
    name = name_for[cls]
    owner = cls(name, namedipc.O_CREX)
    try:
        for _ in range(ROUNDS):
            dropped = made(cls, name)
            refs = [weakref.ref(dropped) for _ in range(3)]
            del dropped
            gc.collect()
            assert all(ref() is None for ref in refs)
            # `__new__` alone makes an uninitialised handle, in whatever
            # memory: none of the dropped handle's state shows through.
            blank = cls.__new__(cls)
            with pytest.raises(TypeError, match="never initialised"):
                _ = blank.name
            assert weakref.getweakrefcount(blank) == 0
            del blank
    finally:
        owner.unlink()
        owner.close()


@pytest.mark.parametrize("cls", CLASSES)
def test_subclass_and_class_handles_do_not_share_memory_wrongly(cls: type[Any], name_for: dict[type[Any], str]) -> None:
    name = name_for[cls]

    class Sub(cls):  # type: ignore[misc]
        pass

    owner = cls(name, namedipc.O_CREX)
    try:
        for round_ in range(ROUNDS):
            handle = Sub(name) if round_ % 2 else made(cls, name)
            assert type(handle) is (Sub if round_ % 2 else cls)
            assert handle.name == name
            ref = weakref.ref(handle)
            del handle
            assert ref() is None
    finally:
        owner.unlink()
        owner.close()
