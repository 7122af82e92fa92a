//! A counting semaphore shared across machines through a Redis server
//! (feature `redis`): the same slots and the same names as
//! [`RobustSemaphore`](crate::RobustSemaphore), held as leases on the
//! server's clock.
//!
//! ```no_run
//! use std::time::Duration;
//! use namedipc::redis::RedisSemaphore;
//!
//! let gpu = RedisSemaphore::options()
//!     .url("redis://:secret@db.example:6379/0")
//!     .initial_value(2)
//!     .lease(Duration::from_secs(10))
//!     .open("/gpu")?;
//! let grant = gpu.acquire()?;
//! // ... at most two holders anywhere; pass grant.fence to what you protect ...
//! gpu.release(grant)?;
//! # Ok::<(), namedipc::Error>(())
//! ```
//!
//! # What is promised
//!
//! At most N unexpired leases at any time **by the server's clock**,
//! provided the server neither loses acknowledged writes (run it with
//! `appendonly yes` and `appendfsync always` if a restart must not forget
//! holders) nor steps its clock (slew it; a step forward expires leases
//! early, a step back stretches them). Every grant carries a fencing token
//! that strictly increases for the life of the semaphore, also across a
//! restart that lost the data: it is `max(stored + 1, server time in µs)`.
//! A holder can outlive its lease (a pause, a partition); it is told as soon
//! as the client knows ([`RedisSemaphore::is_lost`]), and the resource it
//! protects must check the fence to be safe from it.
//!
//! # How
//!
//! Each step is one Lua script, so one round trip, reading the server's
//! clock (TIME) for every expiry decision; the client's clock is never
//! compared with the server's.
//!
//! - **open**: creates the semaphore with its slot count if it is missing
//!   (an existing one keeps its own).
//! - **acquire**: frees the slots of expired leases, then grants the lowest
//!   free slot under a holder id the client drew at random. A resend of the
//!   same request (after a reply lost with its connection) finds that
//!   holder's record and returns the same grant: never a second slot.
//! - **release**: frees the slot only if that holder still has an unexpired
//!   lease; otherwise nothing is freed and the caller gets
//!   [`Error::LeaseLost`].
//! - **renew**: a thread of the handle, on a connection of its own, extends
//!   every held lease each lease/3; the server refuses to renew an expired
//!   one (the grant is lost at once). The grant's local deadline, on the
//!   monotonic clock, is the send time of the last successful renewal (or
//!   of the acquire) plus the lease, less a twentieth of it; once it passes
//!   the grant is lost, even if the server never answered.
//! - **waiting** is pushed, not polled: a waiter registers on the server
//!   and blocks in BLPOP on the semaphore's wake list (on a connection of
//!   its own, so the caller keeps checking `keep_waiting` every 20 ms
//!   without a word to the server); a release pushes one token per free
//!   slot that a registered waiter could take (so the list stays no longer
//!   than the waiters), Redis hands tokens to the longest-blocked client
//!   first, and a waiter tries again by itself when the earliest lease runs
//!   out (leases that expire push nothing). An idle waiter sends one
//!   acquire per expiry of the earliest lease and one BLPOP per lease.
//!
//! # Keys
//!
//! All keys of one semaphore share the hash tag `{NAME}` (NAME with its
//! leading slash), so a cluster keeps them in one slot. For `/gpu`:
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `namedipc:{/gpu}:meta` | hash | `slots`, `fence` (the last token), `created` (µs) |
//! | `namedipc:{/gpu}:holders` | hash | holder id → `slot fence since pid host` |
//! | `namedipc:{/gpu}:deadlines` | sorted set | holder id, scored by its lease deadline (µs) |
//! | `namedipc:{/gpu}:free` | sorted set | the free slot numbers |
//! | `namedipc:{/gpu}:waiters` | sorted set | waiting holder ids, scored by when their registration runs out |
//! | `namedipc:{/gpu}:wake` | list | wake tokens waiters BLPOP |
//!
//! [`unlink`] deletes them all: holders learn at their next renewal that
//! their lease is lost, and the next acquire creates the semaphore anew.
//!
//! # URLs
//!
//! `redis://[[user]:password@]host[:port][/db]`; `rediss://...` for TLS,
//! verifying the server against the system's root certificates; append
//! `?ca=/path/to/ca.pem` to trust that CA instead (a private CA), or
//! `#insecure` to skip verification (self-signed test servers only);
//! `unix:///path/to/redis.sock` for a local socket. Messages show a URL with
//! its password as `***` ([`redacted`]).
//!
//! # Errors and time bounds
//!
//! A server that cannot be reached, refuses the password or stops
//! answering is [`Error::Unavailable`], never a
//! hang: connecting takes at most the connect timeout (5 s by default) and
//! every later command as long again (a failed command on an old connection
//! is sent once more on a new one, for the server may have restarted). A
//! handle outlives a server restart or a dropped connection: its next call
//! reconnects, and a lease that ran out meanwhile is reported lost.
//!
//! # fork
//!
//! A child forked from a process that used a handle gets the handle
//! without its grants (they stay the parent's, renewed by the parent) and
//! without its connections and threads: its first call opens connections of
//! its own. Forking while another thread of the parent is inside a call on
//! the same handle is not supported (that thread's lock would stay taken in
//! the child).

// The rooms: opening (`options`), taking and giving back slots
// (`acquire`), what needs no handle (`admin`: list, info, unlink), the
// grants and their keep-alive (`held`), pushed waits (`wait`), connections
// (`server`), the protocol's scripts and keys.
mod acquire;
mod admin;
mod held;
mod keys;
mod options;
mod scripts;
mod server;
mod wait;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use ::redis::{Connection, RedisResult, ScriptInvocation, Value};

pub use self::admin::{info, list, unlink};
pub use self::options::RedisSemaphoreOptions;

use self::admin::parse_info;
use self::held::Held;
use self::keys::Keys;
use self::scripts::scripts;
use self::server::{Link, Server};
use self::wait::Pool;
use crate::error::{BusyReason, Error, ObjectKind, Result};

const KIND: ObjectKind = ObjectKind::RedisSemaphore;

/// The most slots a semaphore may have (creating one writes each slot).
pub const MAX_SLOTS: u32 = 100_000;

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

/// A counting semaphore on a Redis server: at most `slots` unexpired leases
/// at once, by the server's clock.
///
/// `Send + Sync`: threads share one handle (`&self` everywhere), which
/// holds any number of grants. Each grant is renewed every lease/3 by a
/// thread of the handle; dropping the handle closes it, giving back what it
/// holds.
pub struct RedisSemaphore {
    inner: Arc<Inner>,
}

impl fmt::Debug for RedisSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("RedisSemaphore")
            .field("name", &inner.name)
            .field("url", &inner.server.redacted())
            .field("slots", &inner.slots)
            .field("lease", &inner.lease)
            .field("created", &inner.created)
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

struct Inner {
    name: String,
    url: String,
    server: Arc<Server>,
    keys: Keys,
    slots: u32,
    lease: Duration,
    created: bool,
    host: String,
    /// The process the handle's connections and threads belong to (a
    /// forked child starts afresh).
    pid: AtomicU32,
    /// The connection for acquire, release and queries.
    main: Mutex<Link>,
    /// How long one of its commands may take.
    io_timeout: Duration,
    held: Arc<Held>,
    pool: Arc<Pool>,
    closed: AtomicBool,
}

impl Grant {
    /// The holder id as the server knows it: 32 hex digits.
    fn holder_id(&self) -> String {
        format!("{:032x}", self.holder)
    }
}

impl RedisSemaphore {
    /// Options with their defaults: [`DEFAULT_URL`], one slot,
    /// [`DEFAULT_LEASE`], a 5 s connect timeout.
    pub fn options() -> RedisSemaphoreOptions {
        RedisSemaphoreOptions::new()
    }

    /// Opens (or creates, with one slot) the semaphore `name` at `url`.
    pub fn open(url: &str, name: &str) -> Result<Self> {
        Self::options().url(url).open(name)
    }

    /// The grants this handle holds now (lost ones too, until released),
    /// oldest first.
    #[must_use]
    pub fn held(&self) -> Vec<Grant> {
        self.after_fork();
        self.inner.held.grants()
    }

    /// Whether `grant`'s lease is lost: its local deadline passed, or the
    /// server refused to renew it. False for a grant this handle does not
    /// hold.
    #[must_use]
    pub fn is_lost(&self, grant: Grant) -> bool {
        self.after_fork();
        self.inner.held.is_lost(grant)
    }

    /// A health check: sends one PING on the handle's own connection (the
    /// one acquire and release use, connecting first if it has none) and
    /// returns the round trip, on the monotonic clock, not counting the
    /// connect. `Unavailable` if the server cannot be reached or does not
    /// answer within the connect timeout.
    pub fn ping(&self) -> Result<Duration> {
        self.check_open()?;
        self.with_main(|con| {
            let sent = Instant::now();
            ::redis::cmd("PING").query::<String>(con)?;
            Ok(sent.elapsed())
        })
    }

    /// The free slots now, by the server's clock.
    pub fn value(&self) -> Result<u32> {
        self.check_open()?;
        Ok(self
            .query_info()?
            .map_or(self.inner.slots, |info| info.value))
    }

    /// The semaphore's capacity (as the server had it when the handle
    /// opened it).
    #[must_use]
    pub fn slots(&self) -> u32 {
        self.inner.slots
    }

    /// The name, with one leading slash.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The URL as given (it may contain a password; [`redacted`] hides it).
    #[must_use]
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// The lease of each grant.
    #[must_use]
    pub fn lease(&self) -> Duration {
        self.inner.lease
    }

    /// The unexpired holders, by slot.
    pub fn holders(&self) -> Result<Vec<Lease>> {
        self.check_open()?;
        Ok(self
            .query_info()?
            .map(|info| info.holders)
            .unwrap_or_default())
    }

    /// Whether this handle created the semaphore.
    #[must_use]
    pub fn created(&self) -> bool {
        self.inner.created
    }

    /// Releases every grant it holds (best effort: an unreachable server
    /// lets them run out), stops the keep-alive thread and the waiters.
    /// Closing twice is allowed.
    pub fn close(&self) {
        let inner = &self.inner;
        if inner.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        inner.held.stop();
        for grant in inner.held.take_all() {
            let id = grant.holder_id();
            let released = self.with_main(|con| {
                invocation(&scripts().release, &inner.keys)
                    .arg(&id)
                    .invoke::<i64>(con)
            });
            if matches!(released, Err(Error::Unavailable { .. })) {
                // The rest run out on the server; not waited for one by one.
                break;
            }
        }
        inner.pool.clear();
    }

    /// Whether [`close`](Self::close) was called.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::SeqCst)
    }

    fn check_open(&self) -> Result<()> {
        if self.is_closed() {
            return Err(self.closed_error());
        }
        self.after_fork();
        Ok(())
    }

    /// In a child forked from the process that used the handle: the
    /// parent's connections (whose sockets the child shares) and grants are
    /// not the child's, and its threads did not come along. The child
    /// forgets them and starts afresh; the parent's grants stay the
    /// parent's.
    fn after_fork(&self) {
        let inner = &self.inner;
        let me = std::process::id();
        if inner.pid.load(Ordering::Relaxed) == me {
            return;
        }
        let mut link = inner.main.lock().unwrap_or_else(PoisonError::into_inner);
        if inner.pid.load(Ordering::Relaxed) == me {
            return;
        }
        // Dropping the child's copy of a socket leaves the parent's open.
        *link = Link::new(inner.io_timeout);
        inner.held.forget_after_fork();
        inner.pool.forget_after_fork();
        inner.pid.store(me, Ordering::Relaxed);
    }

    fn closed_error(&self) -> Error {
        Error::Closed {
            kind: KIND,
            name: self.inner.name.clone(),
        }
    }

    fn busy(&self) -> Error {
        Error::Busy {
            kind: KIND,
            name: self.inner.name.clone(),
            reason: BusyReason::NoSlot,
        }
    }

    fn corrupt(&self, reason: &str) -> Error {
        corrupt(&self.inner.name, &self.inner.server, reason)
    }

    /// Runs `op` on the handle's main connection.
    fn with_main<T>(&self, op: impl FnMut(&mut Connection) -> RedisResult<T>) -> Result<T> {
        let inner = &self.inner;
        let mut link = inner.main.lock().unwrap_or_else(PoisonError::into_inner);
        link.call(&inner.server, &inner.name, op)
    }

    fn query_info(&self) -> Result<Option<RedisSemaphoreInfo>> {
        let inner = &self.inner;
        let value =
            self.with_main(|con| invocation(&scripts().info, &inner.keys).invoke::<Value>(con))?;
        parse_info(&inner.name, &inner.server, value)
    }
}

/// Threads share a handle.
const _: () = {
    const fn shareable<T: Send + Sync>() {}
    shareable::<RedisSemaphore>();
};

impl Drop for RedisSemaphore {
    fn drop(&mut self) {
        self.close();
    }
}

/// A script invocation with the semaphore's keys.
fn invocation<'s>(script: &'s ::redis::Script, keys: &Keys) -> ScriptInvocation<'s> {
    let mut invocation = script.prepare_invoke();
    for key in keys.all() {
        invocation.key(key);
    }
    invocation
}

fn corrupt(name: &str, server: &Server, reason: &str) -> Error {
    Error::Corrupt {
        kind: KIND,
        name: name.to_owned(),
        reason: format!("on {}: {reason}", server.redacted()),
    }
}

/// `url` with any password replaced by `***`, for messages.
#[must_use]
pub fn redacted(url: &str) -> String {
    server::redacted(url)
}
