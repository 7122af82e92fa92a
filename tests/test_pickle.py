"""Handles pickle by name and reopen the same semaphore, value untouched,
in processes started with spawn (multiprocessing, ProcessPoolExecutor)."""

from __future__ import annotations

import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor

import namedipc
from namedipc import NamedSemaphore


def release_and_report(sem: namedipc.Semaphore | NamedSemaphore) -> tuple[str, int, bool]:
    created = getattr(sem, "created", False)
    sem.release()
    return type(sem).__name__, sem.value, created


def child_releases(sem: NamedSemaphore) -> None:
    sem.release()


def test_named_semaphore_into_a_spawn_child(sem_name: str) -> None:
    sem = NamedSemaphore(sem_name, 0)
    ctx = multiprocessing.get_context("spawn")
    p = ctx.Process(target=child_releases, args=(sem,))
    p.start()
    assert sem.acquire(timeout=30) is True
    p.join(30)
    assert p.exitcode == 0
    # The child's handle did not create it, so its exit did not unlink it.
    assert NamedSemaphore(sem_name, handle_existence=NamedSemaphore.Flags.RAISE_IF_NOT_EXISTS).value == 0  # type: ignore[attr-defined]


def test_both_faces_through_a_process_pool(sem_name: str) -> None:
    named = NamedSemaphore(sem_name, 5)
    compat = namedipc.Semaphore(sem_name)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        assert pool.submit(release_and_report, named).result(timeout=60) == ("NamedSemaphore", 6, False)
        assert pool.submit(release_and_report, compat).result(timeout=60) == ("Semaphore", 7, False)
    assert named.value == 7


def test_unpickling_a_removed_semaphore_raises(sem_name: str) -> None:
    data = pickle.dumps(NamedSemaphore(sem_name, 1))  # the creator is gone at once: removed
    try:
        pickle.loads(data)
    except FileNotFoundError as e:
        assert sem_name in str(e)
    else:
        raise AssertionError("unpickling a removed semaphore should fail")
