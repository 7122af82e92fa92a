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
//!   its own, so the caller keeps checking `keep_waiting` every 50 ms
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

mod held;
mod keys;
mod scripts;
mod server;
mod wait;

use std::fmt;
use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use ::redis::{Connection, RedisResult, ScriptInvocation, Value};

use self::held::{Found, Held};
use self::keys::Keys;
use self::scripts::scripts;
use self::server::{Link, Server};
use self::wait::{Outcome, Pending, Pool};
use crate::error::{BusyReason, Error, ObjectKind, Result};
use crate::{paths, sys};

const KIND: ObjectKind = ObjectKind::RedisSemaphore;

/// The most slots a semaphore may have (creating one writes each slot).
pub const MAX_SLOTS: u32 = 100_000;

/// The shortest and the longest lease.
const LEASE_RANGE: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(86_400));

/// How often a waiting caller looks at its `keep_waiting` at least.
const CHECK_EVERY: Duration = Duration::from_millis(50);

/// How long a waiter's registration on the server outlasts the wait it
/// announced, so that it is not dropped while it blocks.
const REGISTRATION_SLACK: Duration = Duration::from_secs(2);

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
                pid: std::process::id(),
                main: Mutex::new(link),
                held,
                pool,
                closed: AtomicBool::new(false),
            }),
        })
    }
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
    pid: u32,
    /// The connection for acquire, release and queries.
    main: Mutex<Link>,
    held: Arc<Held>,
    pool: Arc<Pool>,
    closed: AtomicBool,
}

/// What one acquire attempt found.
enum Attempt {
    Granted(Grant),
    /// No slot free; the earliest lease runs out this far ahead (None: no
    /// holder at all).
    Busy(Option<Duration>),
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
        self.acquire_while(None, &mut || true)?
            .ok_or_else(|| self.busy())
    }

    /// Takes a slot if one is free now (one round trip).
    pub fn try_acquire(&self) -> Result<Option<Grant>> {
        self.check_open()?;
        let holder = new_holder()?;
        match self.attempt(holder, Duration::ZERO, false)? {
            Attempt::Granted(grant) => Ok(Some(grant)),
            Attempt::Busy(_) => Ok(None),
        }
    }

    /// Waits at most `timeout` for a slot.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<Option<Grant>> {
        self.acquire_while(Some(timeout), &mut || true)
    }

    /// Waits up to `timeout` (None: for ever). While it waits it calls
    /// `keep_waiting` at least every 50 ms, locally, sending no command to
    /// the server for it. When `keep_waiting` returns false the wait ends
    /// with `Error::Interrupted` and no slot is left taken (a wake-up it
    /// consumed goes to the next waiter).
    ///
    /// The wait is pushed: the caller blocks in BLPOP on the semaphore's
    /// wake list (on a connection of a waiter thread), woken by a release,
    /// and tries again by itself when the earliest lease runs out.
    pub fn acquire_while(
        &self,
        timeout: Option<Duration>,
        keep_waiting: &mut dyn FnMut() -> bool,
    ) -> Result<Option<Grant>> {
        self.check_open()?;
        let inner = &self.inner;
        let end = timeout.and_then(|t| Instant::now().checked_add(t));
        let holder = new_holder()?;
        // An idle waiter sends one BLPOP per this long at most.
        let cap = inner.lease;
        let mut pending: Option<Pending> = None;
        let mut registered = false;
        let outcome = 'wait: loop {
            let now = Instant::now();
            let left = end.map(|end| end.saturating_duration_since(now));
            let announce = if left == Some(Duration::ZERO) {
                Duration::ZERO
            } else {
                left.map_or(cap, |l| l.min(cap)) + REGISTRATION_SLACK
            };
            let attempt = self.attempt(holder, announce, registered);
            registered |= !announce.is_zero();
            let earliest = match attempt {
                Ok(Attempt::Granted(grant)) => break Ok(Some(grant)),
                Err(e) => break Err(e),
                Ok(Attempt::Busy(earliest)) => earliest,
            };
            if left == Some(Duration::ZERO) {
                break Ok(None);
            }
            let now = Instant::now();
            let mut wake_at = now + cap;
            if let Some(earliest) = earliest {
                // Tried again just after the earliest lease runs out.
                wake_at = wake_at.min(now + earliest + Duration::from_millis(1));
            }
            if let Some(end) = end {
                wake_at = wake_at.min(end);
            }
            if pending.is_none() {
                let block = left.map_or(cap, |l| l.min(cap));
                pending = Some(inner.pool.start(block, holder_hex(holder)));
            }
            loop {
                if !keep_waiting() {
                    break 'wait Err(Error::Interrupted {
                        kind: KIND,
                        name: inner.name.clone(),
                    });
                }
                if inner.closed.load(Ordering::SeqCst) {
                    break 'wait Err(self.closed_error());
                }
                let now = Instant::now();
                if now >= wake_at {
                    break;
                }
                let slice = CHECK_EVERY.min(wake_at - now);
                let Some(waiting) = &pending else {
                    std::thread::sleep(slice);
                    continue;
                };
                match waiting.poll(slice) {
                    Outcome::NotYet => {}
                    Outcome::Done(Ok(_)) => {
                        pending = None;
                        break;
                    }
                    Outcome::Done(Err(_)) => {
                        // The waiter's connection failed: wait on the
                        // local timer alone (at most a second) and let the
                        // next attempt say whether the server is there.
                        pending = None;
                        wake_at = wake_at.min(Instant::now() + Duration::from_secs(1));
                    }
                }
            }
        };
        let granted = matches!(outcome, Ok(Some(_)));
        // An unreachable server is not asked again: the registration runs
        // out by itself.
        let reachable = !matches!(outcome, Err(Error::Unavailable { .. }));
        let mut pass_on = registered && !granted && reachable;
        if let Some(waiting) = pending {
            let (took_token, unblock) = waiting.abandon();
            pass_on |= took_token;
            if let (Some(id), true) = (unblock, reachable) {
                let _ = self.with_main(|con| {
                    ::redis::cmd("CLIENT")
                        .arg("UNBLOCK")
                        .arg(id)
                        .query::<i64>(con)
                });
            }
        }
        if pass_on {
            let id = holder_hex(holder);
            let _ = self.with_main(|con| {
                invocation(&scripts().leave, &inner.keys)
                    .arg(&id)
                    .invoke::<i64>(con)
            });
        }
        outcome
    }

    /// One acquire attempt for `holder`, registering it as a waiter for
    /// `announce` if no slot is free (zero: not at all); `registered` if an
    /// earlier attempt of the same wait may have registered it.
    fn attempt(&self, holder: u128, announce: Duration, registered: bool) -> Result<Attempt> {
        let inner = &self.inner;
        let id = holder_hex(holder);
        let lease_us = micros(inner.lease);
        let wait_us = micros(announce);
        let sent = Instant::now();
        // A fresh id has no record yet, unless this very request was sent
        // before (the link resends after a lost reply) or an earlier
        // attempt of the wait got one.
        let mut flags = if registered { 3 } else { 0 };
        let answer = self.with_main(|con| {
            let this = flags;
            flags |= 1;
            invocation(&scripts().acquire, &inner.keys)
                .arg(&id)
                .arg(inner.slots)
                .arg(lease_us)
                .arg(inner.pid)
                .arg(&inner.host)
                .arg(wait_us)
                .arg(this)
                .invoke::<Vec<i64>>(con)
        })?;
        match answer.as_slice() {
            [1, slot, fence, remaining] => {
                let (Ok(slot), Ok(fence)) = (u32::try_from(*slot), u64::try_from(*fence)) else {
                    return Err(self.corrupt("a grant has a negative slot or fence"));
                };
                let grant = Grant {
                    fence,
                    slot,
                    holder,
                };
                let remaining = Duration::from_micros(u64::try_from(*remaining).unwrap_or(0));
                if inner.held.add(grant, sent, remaining) {
                    held::start(
                        Arc::clone(&inner.held),
                        Arc::clone(&inner.server),
                        inner.keys.clone(),
                        inner.name.clone(),
                    );
                }
                if self.is_closed() {
                    // Closed by another thread meanwhile: close() may have
                    // given back the grants before this one was added.
                    inner.held.remove(grant);
                    let _ = self.with_main(|con| {
                        invocation(&scripts().release, &inner.keys)
                            .arg(&id)
                            .invoke::<i64>(con)
                    });
                    return Err(self.closed_error());
                }
                Ok(Attempt::Granted(grant))
            }
            [0, earliest] => Ok(Attempt::Busy(
                u64::try_from(*earliest).ok().map(Duration::from_micros),
            )),
            _ => Err(self.corrupt("the server's answer to an acquire has an unknown form")),
        }
    }

    /// Gives back `grant`. `LeaseLost` if its lease was lost (then nothing
    /// but its own record, if the server still had it, is freed);
    /// `NotHeld` if this handle does not hold it.
    pub fn release(&self, grant: Grant) -> Result<()> {
        self.check_open()?;
        let inner = &self.inner;
        let Found::Held { lost } = inner.held.find(grant) else {
            return Err(Error::NotHeld {
                kind: KIND,
                name: inner.name.clone(),
            });
        };
        let id = grant.holder_id();
        let mut sends = 0;
        let freed = self.with_main(|con| {
            sends += 1;
            invocation(&scripts().release, &inner.keys)
                .arg(&id)
                .invoke::<i64>(con)
        })?;
        // A resend (the first reply was lost with its connection) finds
        // nothing when the first one freed the slot: while the local
        // deadline has not passed, the lease was still good when it arrived.
        let resent_after_release = sends > 1 && !inner.held.is_lost(grant);
        inner.held.remove(grant);
        if (freed == 1 || resent_after_release) && !lost {
            Ok(())
        } else {
            Err(Error::LeaseLost {
                name: inner.name.clone(),
            })
        }
    }

    /// The grants this handle holds now (lost ones too, until released),
    /// oldest first.
    #[must_use]
    pub fn held(&self) -> Vec<Grant> {
        self.inner.held.grants()
    }

    /// Whether `grant`'s lease is lost: its local deadline passed, or the
    /// server refused to renew it. False for a grant this handle does not
    /// hold.
    #[must_use]
    pub fn is_lost(&self, grant: Grant) -> bool {
        self.inner.held.is_lost(grant)
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
            Err(self.closed_error())
        } else {
            Ok(())
        }
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

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn holder_hex(holder: u128) -> String {
    format!("{holder:032x}")
}

/// A fresh holder id from the OS's CSPRNG: no two clients pick the same.
fn new_holder() -> Result<u128> {
    let mut bytes = [0u8; 16];
    sys::fill_random(&mut bytes).map_err(|source| Error::Os {
        operation: "getrandom",
        kind: KIND,
        name: String::new(),
        source,
    })?;
    Ok(u128::from_ne_bytes(bytes))
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

/// Reads the INFO script's answer; None when the semaphore does not exist.
fn parse_info(name: &str, server: &Server, value: Value) -> Result<Option<RedisSemaphoreInfo>> {
    let bad = || {
        corrupt(
            name,
            server,
            "the server's description of it has an unknown form",
        )
    };
    let Value::Array(items) = value else {
        return Err(bad());
    };
    if items.is_empty() {
        return Ok(None);
    }
    let mut items = items.into_iter();
    let number = |v: Option<Value>| match v {
        Some(Value::Int(n)) => Ok(n),
        _ => Err(bad()),
    };
    let slots = u32::try_from(number(items.next())?).map_err(|_| bad())?;
    let value = u32::try_from(number(items.next())?).map_err(|_| bad())?;
    let mut holders = Vec::new();
    for item in items {
        let (slot, fence, since, remaining, pid, host): (i64, i64, i64, i64, i64, String) =
            ::redis::from_redis_value(item).map_err(|_| bad())?;
        holders.push(Lease {
            host,
            pid: u32::try_from(pid).map_err(|_| bad())?,
            since: SystemTime::UNIX_EPOCH
                + Duration::from_micros(u64::try_from(since).map_err(|_| bad())?),
            expires_in: Duration::from_micros(u64::try_from(remaining).unwrap_or(0)),
            fence: u64::try_from(fence).map_err(|_| bad())?,
            slot: u32::try_from(slot).map_err(|_| bad())?,
        });
    }
    holders.sort_by_key(|lease| lease.slot);
    Ok(Some(RedisSemaphoreInfo {
        name: name.to_owned(),
        slots,
        value,
        holders,
    }))
}

/// Describes the semaphore `name` through a one-off connection.
fn describe_one(
    server: &Server,
    link: &mut Link,
    name: &str,
) -> Result<Option<RedisSemaphoreInfo>> {
    let keys = Keys::of(name);
    let value = link.call(server, name, |con| {
        invocation(&scripts().info, &keys).invoke::<Value>(con)
    })?;
    parse_info(name, server, value)
}

/// Every semaphore on the server at `url`, by name (SCAN, so it does not
/// block the server on a large database).
pub fn list(url: &str, connect_timeout: Duration) -> Result<Vec<RedisSemaphoreInfo>> {
    let server = Server::new(url, connect_timeout)?;
    let mut link = Link::new(connect_timeout);
    let mut names = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = link.call(&server, "", |con| {
            ::redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(keys::META_PATTERN)
                .arg("COUNT")
                .arg(1000)
                .query(con)
        })?;
        names.extend(
            keys.iter()
                .filter_map(|k| keys::name_of_meta_key(k))
                .map(str::to_owned),
        );
        if next == 0 {
            break;
        }
        cursor = next;
    }
    names.sort();
    names.dedup();
    let mut found = Vec::with_capacity(names.len());
    for name in names {
        // Removed since the scan saw it: not listed.
        if let Some(info) = describe_one(&server, &mut link, &name)? {
            found.push(info);
        }
    }
    Ok(found)
}

/// The semaphore `name` on the server at `url`; `NotFound` if there is none.
pub fn info(url: &str, name: &str, connect_timeout: Duration) -> Result<RedisSemaphoreInfo> {
    paths::to_c_name(KIND, name)?;
    let name = paths::canonical(name);
    let server = Server::new(url, connect_timeout)?;
    let mut link = Link::new(connect_timeout);
    describe_one(&server, &mut link, &name)?.ok_or(Error::NotFound { kind: KIND, name })
}

/// Removes the semaphore `name`: every key of it, so that its holders'
/// next renewal is refused (they learn their lease is lost) and its next
/// acquire creates it anew. `NotFound` if there is none.
pub fn unlink(url: &str, name: &str, connect_timeout: Duration) -> Result<()> {
    paths::to_c_name(KIND, name)?;
    let name = paths::canonical(name);
    let server = Server::new(url, connect_timeout)?;
    let mut link = Link::new(connect_timeout);
    let keys = Keys::of(&name);
    let existed = link.call(&server, &name, |con| {
        invocation(&scripts().unlink, &keys).invoke::<i64>(con)
    })?;
    if existed == 1 {
        Ok(())
    } else {
        Err(Error::NotFound { kind: KIND, name })
    }
}

/// `url` with any password replaced by `***`, for messages.
#[must_use]
pub fn redacted(url: &str) -> String {
    server::redacted(url)
}
