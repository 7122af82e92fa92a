//! namedipc: named POSIX semaphores, shared memory and message queues, and a
//! crash-safe semaphore, for processes that coordinate by name.
//!
//! Unrelated processes on one machine — a cron job, a web worker, a C
//! program — find the same object by its name:
//!
//! ```
//! use namedipc::{Existence, Semaphore};
//!
//! # let name = format!("/namedipc-doc-gpu-{}", std::process::id());
//! // Every process runs the same line; the first one creates the semaphore.
//! let gpu = Semaphore::options()
//!     .existence(Existence::LinkOrCreate)
//!     .initial_value(2)
//!     .open(&name)?;
//! gpu.acquire()?;
//! // ... at most two processes are here at once ...
//! gpu.release()?;
//! # gpu.unlink()?;
//! # Ok::<(), namedipc::Error>(())
//! ```
//!
//! All OS calls live in the private `sys` module; the rest of the crate is
//! safe Rust.

#[cfg(feature = "cli")]
pub mod cli;
mod deadline;
mod error;
mod existence;
pub mod inventory;
pub mod mqueue;
pub mod ownership;
pub mod paths;
#[cfg(feature = "redis")]
pub mod redis;
pub mod robust;
pub mod semaphore;
pub mod shm;
mod sys;

// The README's and the docs' Rust examples, run by `cargo test` as doctests.
mod doctests;

#[cfg(feature = "redis")]
pub use self::redis::{RedisSemaphore, RedisSemaphoreOptions};
pub use error::{BusyReason, Error, ObjectKind, Result};
pub use existence::Existence;
pub use mqueue::{MessageQueue, MessageQueueOptions};
pub use ownership::{Owner, Trust};
pub use robust::{RobustSemaphore, RobustSemaphoreOptions};
pub use semaphore::{Semaphore, SemaphoreOptions};
pub use shm::{SharedMemory, SharedMemoryOptions};

/// The size of a memory page on this machine, in bytes.
///
/// ```
/// assert!(namedipc::page_size().is_power_of_two());
/// ```
#[must_use]
pub fn page_size() -> usize {
    sys::page_size()
}

/// The OS's `open(2)` flag values, for APIs that take posix_ipc-style flags.
pub mod flags {
    /// Create the object if it does not exist.
    pub const O_CREAT: i32 = libc::O_CREAT;
    /// With `O_CREAT`: fail if the object exists.
    pub const O_EXCL: i32 = libc::O_EXCL;
    /// `O_CREAT | O_EXCL`.
    pub const O_CREX: i32 = libc::O_CREAT | libc::O_EXCL;
    /// Truncate (shared memory).
    pub const O_TRUNC: i32 = libc::O_TRUNC;
    /// Open for reading only.
    pub const O_RDONLY: i32 = libc::O_RDONLY;
    /// Open for writing only.
    pub const O_WRONLY: i32 = libc::O_WRONLY;
    /// Open for reading and writing.
    pub const O_RDWR: i32 = libc::O_RDWR;
    /// Do not block (message queues).
    pub const O_NONBLOCK: i32 = libc::O_NONBLOCK;
}
