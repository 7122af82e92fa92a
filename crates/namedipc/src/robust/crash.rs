//! Crash points: test hooks at each step of the robust semaphore's protocol.
//! In debug builds the process SIGKILLs itself at the step that the
//! environment variable `NAMEDIPC_CRASH_AT` names (e.g. `acquire.taken`), so
//! that tests can prove a crash there loses nothing. Release builds compile
//! them away.

/// Marks a step of the protocol: `crash_point!("acquire.taken")`.
macro_rules! crash_point {
    ($point:literal) => {
        #[cfg(debug_assertions)]
        $crate::robust::crash::crash_at($point);
    };
}
pub(crate) use crash_point;

/// SIGKILLs this process if `NAMEDIPC_CRASH_AT` names `point`.
#[cfg(debug_assertions)]
pub(crate) fn crash_at(point: &str) {
    static AT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    if AT
        .get_or_init(|| std::env::var("NAMEDIPC_CRASH_AT").ok())
        .as_deref()
        == Some(point)
    {
        crate::sys::robust::kill_self();
    }
}
