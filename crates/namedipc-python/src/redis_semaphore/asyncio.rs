//! The asyncio faces of `RedisSemaphore`: `acquire_async`, `async with`.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

/// The asyncio faces, a few lines of Python compiled on first use: the
/// wait runs in a thread of its own (the core's wait, detached), which
/// hands its outcome to the task's loop; a task cancelled at any point
/// leaves no slot taken.
const AIO_CODE: &std::ffi::CStr = cr#"
import asyncio
import threading


async def acquire(sem, timeout):
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    waiter = threading.Thread(
        target=sem._wait_for_async, args=(loop, future, timeout), name=f"namedipc-redis-aio {sem.name}", daemon=True
    )
    waiter.start()
    try:
        grant = await future
    except BaseException:
        # Cancelled just after the hand-over: the slot goes back.
        if future.done() and not future.cancelled() and future.exception() is None:
            sem._give_back(future.result())
        raise
    return sem._adopt(grant)


async def aenter(sem):
    await acquire(sem, None)
    return sem


async def aexit(sem):
    grant = sem._current_grant()
    # A release is a round trip (or a connect timeout): not on the loop.
    await asyncio.get_running_loop().run_in_executor(None, sem._release_grant, grant)
"#;

static AIO: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

pub(super) fn aio_call<'py>(
    py: Python<'py>,
    function: &str,
    args: impl pyo3::call::PyCallArgs<'py>,
) -> PyResult<Bound<'py, PyAny>> {
    let module = AIO.get_or_try_init(py, || {
        PyModule::from_code(
            py,
            AIO_CODE,
            c"namedipc/redis_aio.py",
            c"namedipc._redis_aio",
        )
        .map(Bound::unbind)
    })?;
    module.bind(py).getattr(function)?.call1(args)
}
