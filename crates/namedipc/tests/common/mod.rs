//! What the integration tests share: unique names that a guard removes when
//! the test ends, pass or fail. Each test file says, through [`Kind`], what
//! kind of object its names are for and how to remove one.

// Each test file is its own crate and uses only part of this module.
#![allow(dead_code)]

use std::fs;
use std::io::Read;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Upper bound for every wait that only a bug could make long.
pub const WAIT: Duration = Duration::from_secs(10);

/// The kind of object a test file names.
pub trait Kind {
    /// Goes into every name, after `/namedipc-rtest-`.
    const TAG: &'static str;

    /// Removes the object `name`, and whatever a test planted at its path;
    /// errors (usually: nothing there) are ignored.
    fn remove(name: &str);
}

/// A unique name (pid + random + counter), removed by [`Kind::remove`]
/// when the guard drops, even if the test panics.
pub struct Name<K: Kind> {
    name: String,
    /// Names picked elsewhere (e.g. by `create_random`) to remove as well.
    extra: Vec<String>,
    kind: PhantomData<K>,
}

impl<K: Kind> Name<K> {
    pub fn new(label: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        Self {
            name: format!(
                "/namedipc-rtest-{}-{}-{:016x}-{label}-{n}",
                K::TAG,
                std::process::id(),
                random_u64()
            ),
            extra: Vec::new(),
            kind: PhantomData,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// Appends `suffix` to the name, e.g. to reach the longest valid name.
    pub fn push_str(&mut self, suffix: &str) {
        self.name.push_str(suffix);
    }

    /// Removes `name` too when the guard drops.
    pub fn track(&mut self, name: &str) {
        self.extra.push(name.to_owned());
    }
}

impl<K: Kind> Drop for Name<K> {
    fn drop(&mut self) {
        for name in std::iter::once(&self.name).chain(&self.extra) {
            K::remove(name);
        }
    }
}

fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("read /dev/urandom");
    u64::from_ne_bytes(bytes)
}
