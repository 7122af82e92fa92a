//! The ```rust examples of the README and the docs, compiled and run by
//! `cargo test` as doctests (tests/test_docs.py runs the ```python ones and
//! checks that every page with a ```rust block is included here).

/// README.md
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;

/// docs/robust-semaphore.md
#[cfg(doctest)]
#[doc = include_str!("../../../docs/robust-semaphore.md")]
pub struct RobustSemaphoreDoctests;
