"""The constructors of the posix_ipc classes, `Semaphore(...)`,
`SharedMemory(...)` and `MessageQueue(...)`, which the types' own
vectorcalls run (crates/namedipc-python/src/fast_path.rs): every way of
passing the arguments makes the same handle, a call the fast path does not
take is judged and worded exactly as `__new__` and `__init__` word it, a
subclass and an `__init__` or `__new__` assigned to the class are honoured,
and a failed call leaves nothing behind."""

from __future__ import annotations

import functools
import inspect
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

import namedipc
from namedipc import MessageQueue, Semaphore, SharedMemory

CLASSES = [Semaphore, SharedMemory, MessageQueue]

# Every parameter of each constructor, in order, with a value that differs
# from its default and an attribute that shows it.
PARAMETERS: dict[type[Any], list[tuple[str, Any, str]]] = {
    Semaphore: [("flags", namedipc.O_CREX, "created"), ("mode", 0o640, "mode"), ("initial_value", 3, "value")],
    SharedMemory: [
        ("flags", namedipc.O_CREX, "created"),
        ("mode", 0o640, "mode"),
        ("size", 8192, "size"),
        ("read_only", False, "fd"),
    ],
    MessageQueue: [
        ("flags", namedipc.O_CREX, "created"),
        ("mode", 0o640, "mode"),
        ("max_messages", 3, "max_messages"),
        ("max_message_size", 96, "max_message_size"),
        ("read", True, "mqd"),
        ("write", True, "mqd"),
    ],
}

SHOWN = {
    "created": True,
    "mode": 0o640,
    "value": 3,
    "size": 8192,
    "max_messages": 3,
    "max_message_size": 96,
}


def remove(handle: Any) -> None:
    handle.unlink()
    handle.close()


def check_made(handle: Any, cls: type[Any]) -> None:
    """`handle` is an open `cls` made with every PARAMETERS value."""
    assert type(handle) is cls
    for _, _, attribute in PARAMETERS[cls]:
        if attribute in SHOWN:
            assert getattr(handle, attribute) == SHOWN[attribute], attribute
        else:
            assert getattr(handle, attribute) >= 0, attribute


def shapes(cls: type[Any], name: str) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    """The same call with its arguments passed every way: all by position,
    the first k by position and the rest by keyword (in order and
    reversed), and all by keyword."""
    values = [name] + [value for _, value, _ in PARAMETERS[cls]]
    keys = ["name"] + [key for key, _, _ in PARAMETERS[cls]]
    made = []
    for k in range(len(values) + 1):
        keywords = dict(zip(keys[k:], values[k:], strict=True))
        made.append((tuple(values[:k]), keywords))
        made.append((tuple(values[:k]), dict(reversed(list(keywords.items())))))
    return made


@pytest.mark.parametrize("cls", CLASSES)
def test_every_way_of_passing_the_arguments_makes_the_same_handle(
    cls: type[Any], name_for: dict[type[Any], str]
) -> None:
    for args, kwargs in shapes(cls, name_for[cls]):
        handle = cls(*args, **kwargs)
        try:
            check_made(handle, cls)
        finally:
            remove(handle)


@pytest.mark.parametrize("cls", CLASSES)
def test_calls_through_partial_and_unpacking_take_the_same_path(cls: Any, name_for: dict[type[Any], str]) -> None:
    name = name_for[cls]
    values = [value for _, value, _ in PARAMETERS[cls]]
    makers: list[Callable[[], Any]] = [
        functools.partial(cls, name, *values),
        functools.partial(cls, name=name, **{key: value for key, value, _ in PARAMETERS[cls]}),
        lambda: cls(*[name, *values]),
    ]
    for make in makers:
        handle = make()
        try:
            check_made(handle, cls)
        finally:
            remove(handle)


@pytest.mark.parametrize("cls", CLASSES)
def test_a_default_left_out_is_the_default(cls: type[Any], name_for: dict[type[Any], str]) -> None:
    name = name_for[cls]
    creator = cls(name, namedipc.O_CREX)
    try:
        again = cls(name)
        assert type(again) is cls
        assert again.name == creator.name == name
        assert again.created is False
        assert creator.created is True
        assert again.mode == 0o600
        again.close()
    finally:
        remove(creator)


def refused(cls: type[Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """The TypeError's message for `cls(*args, **kwargs)`."""
    with pytest.raises(TypeError) as raised:
        cls(*args, **kwargs)
    return str(raised.value)


def refused_by_init(cls: type[Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """The TypeError's message for the same call made as `__new__` and then
    `__init__`, as `type.__call__` makes it without a vectorcall."""
    handle = cls.__new__(cls, *args, **kwargs)
    with pytest.raises(TypeError) as raised:
        handle.__init__(*args, **kwargs)
    return str(raised.value)


@pytest.mark.parametrize("cls", CLASSES)
def test_calls_that_do_not_bind_are_worded_as_init_words_them(cls: type[Any], name_for: dict[type[Any], str]) -> None:
    name = name_for[cls]
    count = len(PARAMETERS[cls]) + 1
    surrogate = "\udc80"
    calls: list[tuple[tuple[Any, ...], dict[str, Any], str]] = [
        ((), {}, "missing 1 required positional argument: 'name'"),
        ((), {"flags": namedipc.O_CREX}, "missing 1 required positional argument: 'name'"),
        ((name,) * (count + 1), {}, f"takes from 1 to {count} positional arguments but {count + 1} were given"),
        ((name,), {"name": name}, "got multiple values for argument 'name'"),
        ((name, namedipc.O_CREX), {"flags": namedipc.O_CREX}, "got multiple values for argument 'flags'"),
        ((name,), {"bogus": 1}, "got an unexpected keyword argument 'bogus'"),
        ((name,), {"Flags": 1}, "got an unexpected keyword argument 'Flags'"),
        ((name,), {surrogate: 1}, "got an unexpected keyword argument"),
    ]
    for args, kwargs, wording in calls:
        message = refused(cls, args, kwargs)
        assert wording in message, (args, kwargs, message)
        assert message.startswith(f"{cls.__name__}.__init__() "), message
        assert message == refused_by_init(cls, args, kwargs)
    # Nothing was made at the name.
    with pytest.raises(namedipc.ExistentialError):
        cls(name)


@pytest.mark.parametrize("cls", CLASSES)
def test_the_bodys_errors_are_the_same_as_before(cls: type[Any], name_for: dict[type[Any], str]) -> None:
    name = name_for[cls]
    for args in ((name, "O_CREX"), (name, namedipc.O_CREX, -1), (name, namedipc.O_EXCL), (3.5,), (None,)):
        with pytest.raises((TypeError, ValueError)) as raised:
            cls(*args)
        handle: Any = cls.__new__(cls)  # type: ignore[call-overload]
        with pytest.raises(raised.type) as again:
            handle.__init__(*args)
        assert str(again.value) == str(raised.value)
    with pytest.raises(namedipc.ExistentialError, match="does not exist"):
        cls(name)


@pytest.mark.parametrize("cls", CLASSES)
def test_a_failed_call_leaves_no_reference_behind(cls: type[Any], name_for: dict[type[Any], str]) -> None:
    name = name_for[cls]
    before = sys.getrefcount(name)
    for _ in range(1000):
        with pytest.raises(namedipc.ExistentialError):
            cls(name)
        with pytest.raises(TypeError):
            cls(name, bogus=1)
    assert sys.getrefcount(name) == before
    handle = cls(name, namedipc.O_CREX)
    # SharedMemory and MessageQueue keep the caller's str as their name
    # (one reference more, given back when the handle goes); a Semaphore
    # keeps a copy.
    assert sys.getrefcount(name) == before + (cls is not Semaphore)
    remove(handle)
    del handle
    assert sys.getrefcount(name) == before


@pytest.mark.parametrize("cls", CLASSES)
def test_init_again_is_still_refused(cls: type[Any], name_for: dict[type[Any], str]) -> None:
    handle = cls(name_for[cls], namedipc.O_CREX)
    try:
        with pytest.raises(TypeError, match="already initialised"):
            handle.__init__(name_for[cls])
    finally:
        remove(handle)


@pytest.mark.parametrize("cls", CLASSES)
def test_a_subclass_is_made_by_its_own_new_and_init(cls: type[Any], name_for: dict[type[Any], str]) -> None:
    seen: list[str] = []

    class Plain(cls):  # type: ignore[misc]
        pass

    class Own(cls):  # type: ignore[misc]
        def __new__(klass, *args: Any, **kwargs: Any) -> Any:
            seen.append("new")
            return super().__new__(klass, *args, **kwargs)

        def __init__(self, label: str) -> None:
            seen.append(label)
            super().__init__(name_for[cls], namedipc.O_CREX)

    plain = Plain(name_for[cls], namedipc.O_CREX)
    try:
        assert type(plain) is Plain
        assert plain.created is True
    finally:
        remove(plain)
    own = Own("init")
    try:
        assert type(own) is Own
        assert own.created is True
        assert seen == ["new", "init"]
    finally:
        remove(own)


@pytest.mark.parametrize("cls", CLASSES)
def test_an_init_assigned_to_the_class_is_called(
    cls: type[Any], name_for: dict[type[Any], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    original = cls.__init__
    seen: list[tuple[Any, ...]] = []

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        seen.append(args)
        original(self, *args, **kwargs)

    monkeypatch.setattr(cls, "__init__", __init__)
    handle = cls(name_for[cls], namedipc.O_CREX)
    try:
        assert seen == [(name_for[cls], namedipc.O_CREX)]
    finally:
        remove(handle)
    monkeypatch.undo()
    # Put back, the class is made as before (and not by the function).
    handle = cls(name_for[cls], namedipc.O_CREX)
    remove(handle)
    assert len(seen) == 1


NEW_ASSIGNED = """
import sys
import namedipc
cls = getattr(namedipc, sys.argv[1])
seen = []

def __new__(klass, *args):
    # What it returns is no instance of the class: __init__ is not run.
    seen.append(args)
    return seen

cls.__new__ = staticmethod(__new__)
assert cls(sys.argv[2], namedipc.O_CREX) is seen
assert seen == [(sys.argv[2], namedipc.O_CREX)], seen
print("called")
"""


@pytest.mark.parametrize("cls", CLASSES)
def test_a_new_assigned_to_the_class_is_called(cls: type[Any], name_for: dict[type[Any], str]) -> None:
    # In a process of its own: CPython cannot put a C type's own __new__
    # back once another was assigned (its __new__ then refuses to run).
    done = subprocess.run(
        [sys.executable, "-c", NEW_ASSIGNED, cls.__name__, name_for[cls]],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "called\n", "")
    # Nothing was made at the name.
    with pytest.raises(namedipc.ExistentialError):
        cls(name_for[cls])


@pytest.mark.parametrize("cls", CLASSES)
def test_the_signature_is_kept(cls: type[Any]) -> None:
    parameters = list(inspect.signature(cls).parameters)
    assert parameters == ["name"] + [key for key, _, _ in PARAMETERS[cls]]


@pytest.mark.parametrize("how", ["exact class", "subclass"])
def test_an_optional_argument_given_as_none_is_its_default(how: str, name_for: dict[type[Any], str]) -> None:
    # PyO3 extracts an optional parameter given as None as one not given;
    # the constructor's own path does the same (and the subclass, made by
    # __new__ and __init__, shows what that is).
    for cls in CLASSES:
        made: type[Any] = cls if how == "exact class" else type("Sub", (cls,), {})
        name = name_for[cls]
        creator = made(name, namedipc.O_CREX, None, *[None] * (len(PARAMETERS[cls]) - 2))
        try:
            assert creator.created is True
            assert creator.mode == 0o600
            keywords = {key: None for key, _, _ in PARAMETERS[cls][1:]}
            again = made(name, flags=None, **keywords)
            assert again.created is False
            if cls is MessageQueue:
                # read=None and write=None: both, as when left out.
                again.send(b"x")
                assert again.receive()[0] == b"x"
            again.close()
        finally:
            remove(creator)


def test_the_call_takes_the_constructors_own_path(mq_name: str) -> None:
    # Seen from inside the call (read= is asked for its truth, which runs
    # Python code): through type.__call__ the positional arguments are held
    # by a tuple made for __new__ and __init__, so the name has one
    # reference more than when the type's own vectorcall binds them from
    # the caller's stack.
    seen: list[int] = []

    class Probe:
        def __bool__(self) -> bool:
            seen.append(sys.getrefcount(mq_name))
            return True

    class Sub(MessageQueue):
        pass

    probe: Any = Probe()
    for made in (MessageQueue, Sub):
        handle = made(mq_name, namedipc.O_CREX, read=probe)
        remove(handle)
        # The handle keeps the name: gone before the next call counts.
        del handle
    exact, through_type_call = seen
    assert through_type_call == exact + 1
