//! A counting semaphore shared across machines through a Redis server.
//!
//! (Skeleton: the protocol is being written; see issue 11.)

use std::time::{Duration, SystemTime};

use crate::error::Result;

/// The URL used when none is given. Callers resolve `NAMEDIPC_REDIS`
/// themselves; this is the fallback.
pub const DEFAULT_URL: &str = "redis://127.0.0.1:6379/0";

/// The lease a holder gets when none is given.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(10);

/// The connect timeout when none is given.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One acquisition of a slot: which slot, its fencing token, and the holder
/// id the server knows it by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Grant {
    /// The fencing token: strictly greater than every token the semaphore
    /// gave before.
    pub fence: u64,
    /// The slot, `0 .. slots`.
    pub slot: u32,
    holder: u128,
}

/// One holder as the server sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The host name of the holder's machine.
    pub host: String,
    /// The holder's process id on its host.
    pub pid: u32,
    /// When the slot was acquired, by the server's clock.
    pub since: SystemTime,
    /// How long the lease has left, by the server's clock, when queried.
    pub expires_in: Duration,
    /// The grant's fencing token.
    pub fence: u64,
    /// The slot held.
    pub slot: u32,
}

/// One semaphore on a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSemaphoreInfo {
    /// The semaphore's name, with one leading slash.
    pub name: String,
    /// Its capacity.
    pub slots: u32,
    /// Its free slots by the server's clock.
    pub value: u32,
    /// Its unexpired holders, by slot.
    pub holders: Vec<Lease>,
}

/// Options for opening a [`RedisSemaphore`]; see [`RedisSemaphore::options`].
#[derive(Debug, Clone)]
#[must_use]
pub struct RedisSemaphoreOptions {
    url: String,
    initial_value: u32,
    lease: Duration,
    connect_timeout: Duration,
}

impl RedisSemaphoreOptions {
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

    /// Opens the semaphore `name` on the server, creating it if it does not exist.
    pub fn open(self, name: &str) -> Result<RedisSemaphore> {
        let _ = (name, self);
        todo!()
    }
}

/// A counting semaphore on a Redis server. `Send + Sync`: threads share one
/// handle, which holds any number of grants.
#[derive(Debug)]
pub struct RedisSemaphore {
    _private: (),
}

impl RedisSemaphore {
    /// Options with their defaults.
    pub fn options() -> RedisSemaphoreOptions {
        RedisSemaphoreOptions {
            url: DEFAULT_URL.to_owned(),
            initial_value: 1,
            lease: DEFAULT_LEASE,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }

    /// Opens (or creates, with one slot) the semaphore `name` at `url`.
    pub fn open(url: &str, name: &str) -> Result<Self> {
        Self::options().url(url).open(name)
    }

    /// Waits until a slot is free and takes it.
    pub fn acquire(&self) -> Result<Grant> {
        todo!()
    }

    /// Takes a slot if one is free now.
    pub fn try_acquire(&self) -> Result<Option<Grant>> {
        todo!()
    }

    /// Waits at most `timeout` for a slot.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<Option<Grant>> {
        let _ = timeout;
        todo!()
    }

    /// Waits up to `timeout` (None: for ever), calling `keep_waiting` at
    /// least every 50 ms; when it returns false the wait ends with
    /// `Error::Interrupted` and no slot is left taken.
    pub fn acquire_while(
        &self,
        timeout: Option<Duration>,
        keep_waiting: &mut dyn FnMut() -> bool,
    ) -> Result<Option<Grant>> {
        let _ = (timeout, keep_waiting);
        todo!()
    }

    /// Gives back `grant`.
    pub fn release(&self, grant: Grant) -> Result<()> {
        let _ = grant;
        todo!()
    }

    /// The grants this handle holds now, oldest first.
    #[must_use]
    pub fn held(&self) -> Vec<Grant> {
        todo!()
    }

    /// Whether `grant`'s lease is lost.
    #[must_use]
    pub fn is_lost(&self, grant: Grant) -> bool {
        let _ = grant;
        todo!()
    }

    /// The free slots now, by the server's clock.
    pub fn value(&self) -> Result<u32> {
        todo!()
    }

    /// The semaphore's capacity.
    #[must_use]
    pub fn slots(&self) -> u32 {
        todo!()
    }

    /// The name, with one leading slash.
    #[must_use]
    pub fn name(&self) -> &str {
        todo!()
    }

    /// The URL as given.
    #[must_use]
    pub fn url(&self) -> &str {
        todo!()
    }

    /// The lease of each grant.
    #[must_use]
    pub fn lease(&self) -> Duration {
        todo!()
    }

    /// The unexpired holders, by slot.
    pub fn holders(&self) -> Result<Vec<Lease>> {
        todo!()
    }

    /// Whether this handle created the semaphore.
    #[must_use]
    pub fn created(&self) -> bool {
        todo!()
    }

    /// Releases every grant (best effort) and stops the keep-alive.
    pub fn close(&self) {
        todo!()
    }

    /// Whether [`close`](Self::close) was called.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        todo!()
    }
}

/// Every semaphore on the server at `url`.
pub fn list(url: &str, connect_timeout: Duration) -> Result<Vec<RedisSemaphoreInfo>> {
    let _ = (url, connect_timeout);
    todo!()
}

/// The semaphore `name` on the server at `url`; `NotFound` if there is none.
pub fn info(url: &str, name: &str, connect_timeout: Duration) -> Result<RedisSemaphoreInfo> {
    let _ = (url, name, connect_timeout);
    todo!()
}

/// Removes the semaphore `name` (every key of it); `NotFound` if there is none.
pub fn unlink(url: &str, name: &str, connect_timeout: Duration) -> Result<()> {
    let _ = (url, name, connect_timeout);
    todo!()
}

/// `url` with any password replaced by `***`, for messages.
#[must_use]
pub fn redacted(url: &str) -> String {
    url.to_owned()
}
