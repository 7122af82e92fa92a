//! namedipc: named POSIX semaphores for processes that coordinate by name.
//!
//! Unrelated processes on one machine — a cron job, a web worker, a C
//! program — find the same object by its name:
//!
//! ```
//! use namedipc::{Existence, Semaphore};
//!
//! // Every process runs the same line; the first one creates the semaphore.
//! let gpu = Semaphore::options()
//!     .existence(Existence::LinkOrCreate)
//!     .initial_value(2)
//!     .open("/namedipc-doc-gpu")?;
//! gpu.wait()?;
//! // ... at most two processes are here at once ...
//! gpu.post()?;
//! # gpu.unlink()?;
//! # Ok::<(), namedipc::Error>(())
//! ```
//!
//! All OS calls live in the private `sys` module; the rest of the crate is
//! safe Rust.

mod error;
mod name;
pub mod semaphore;
mod sys;

pub use error::{Error, ObjectKind, Result};
pub use semaphore::{Existence, Semaphore, SemaphoreOptions};

/// The size of a memory page on this machine, in bytes.
#[must_use]
pub fn page_size() -> usize {
    sys::page_size()
}
