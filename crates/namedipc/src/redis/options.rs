//! The options builder: checks what a handle is opened with, then opens the
//! semaphore on the server (creating it if it is missing) in one round trip.

use std::fmt;
use std::fs;
use std::sync::atomic::{AtomicBool, AtomicU32};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::held::Held;
use super::keys::Keys;
use super::scripts::scripts;
use super::server::{Link, Server};
use super::wait::Pool;
use super::{
    corrupt, invocation, redacted, Inner, RedisSemaphore, DEFAULT_CONNECT_TIMEOUT, DEFAULT_LEASE,
    DEFAULT_URL, KIND, MAX_SLOTS,
};
use crate::error::{Error, Result};
use crate::paths;

/// The shortest and the longest lease.
const LEASE_RANGE: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(86_400));

/// Options for opening a [`RedisSemaphore`]; see [`RedisSemaphore::options`].
#[derive(Clone)]
#[must_use]
pub struct RedisSemaphoreOptions {
    url: String,
    initial_value: u32,
    lease: Duration,
    connect_timeout: Duration,
}

impl fmt::Debug for RedisSemaphoreOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSemaphoreOptions")
            .field("url", &redacted(&self.url))
            .field("initial_value", &self.initial_value)
            .field("lease", &self.lease)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

impl RedisSemaphoreOptions {
    /// The defaults [`RedisSemaphore::options`] documents.
    pub(super) fn new() -> Self {
        Self {
            url: DEFAULT_URL.to_owned(),
            initial_value: 1,
            lease: DEFAULT_LEASE,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }

    /// The server's URL (default [`DEFAULT_URL`]).
    pub fn url(mut self, url: &str) -> Self {
        url.clone_into(&mut self.url);
        self
    }

    /// The number of slots of a new semaphore (at least 1); an existing
    /// semaphore keeps its own.
    pub fn initial_value(mut self, slots: u32) -> Self {
        self.initial_value = slots;
        self
    }

    /// The lease of each grant (more than zero; default [`DEFAULT_LEASE`]).
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// How long connecting to the server may take (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Opens the semaphore `name` on the server, creating it with
    /// [`initial_value`](Self::initial_value) slots if it does not exist.
    ///
    /// Checks the URL, name, slots, lease and timeout (`InvalidArgument`,
    /// `InvalidName`), then asks the server in one round trip;
    /// `Unavailable` if it cannot be reached within the connect timeout.
    pub fn open(self, name: &str) -> Result<RedisSemaphore> {
        paths::to_c_name(KIND, name)?;
        let name = paths::canonical(name);
        if !(1..=MAX_SLOTS).contains(&self.initial_value) {
            return Err(Error::InvalidArgument(format!(
                "redis semaphore '{name}': the number of slots must be 1 to {MAX_SLOTS}, not {}",
                self.initial_value
            )));
        }
        if !(LEASE_RANGE.0..=LEASE_RANGE.1).contains(&self.lease) {
            return Err(Error::InvalidArgument(format!(
                "redis semaphore '{name}': the lease must be {:?} to {:?}, not {:?}",
                LEASE_RANGE.0, LEASE_RANGE.1, self.lease
            )));
        }
        let server = Arc::new(Server::new(&self.url, self.connect_timeout)?);
        let keys = Keys::of(&name);
        // A call may take as long as connecting may.
        let io_timeout = self.connect_timeout;
        let mut link = Link::new(io_timeout);
        let slots = self.initial_value;
        let opened = link.call(&server, &name, |con| {
            invocation(&scripts().open, &keys)
                .arg(slots)
                .invoke::<Vec<i64>>(con)
        })?;
        let (created, slots) = match opened.as_slice() {
            [created, slots] => (*created == 1, u32::try_from(*slots).ok()),
            _ => (false, None),
        };
        let Some(slots) = slots.filter(|s| *s >= 1) else {
            return Err(corrupt(
                &name,
                &server,
                "its slot count is not a positive number",
            ));
        };
        let held = Arc::new(Held::new(self.lease));
        let pool = Pool::new(Arc::clone(&server), keys.clone(), name.clone(), io_timeout);
        Ok(RedisSemaphore {
            inner: Arc::new(Inner {
                name,
                url: self.url,
                server,
                keys,
                slots,
                lease: self.lease,
                created,
                host: host_name(),
                pid: AtomicU32::new(std::process::id()),
                main: Mutex::new(link),
                io_timeout,
                held,
                pool,
                closed: AtomicBool::new(false),
            }),
        })
    }
}

/// This machine's name, as holders are shown with it.
fn host_name() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| fs::read_to_string("/etc/hostname"))
        .ok()
        .map(|h| h.trim().replace(char::is_whitespace, "_"))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}
