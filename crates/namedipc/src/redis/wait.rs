//! Waiting for a wake token, pushed by the server: each wait blocks in
//! BLPOP on a connection of its own, served by a thread of its own, so that
//! the waiting caller stays free to check, every few milliseconds and
//! without a word to the server, whether it should go on waiting.
//!
//! A handle keeps its idle waiters in a pool; a waiter whose caller left
//! while it was blocked finishes its BLPOP and, if that brought a token,
//! passes the token on (the LEAVE script) before it goes back to the pool.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::thread;
use std::time::Duration;

use super::keys::Keys;
use super::scripts::scripts;
use super::server::{breaks_connection, Link, Server};
use crate::error::Result;

/// One waiter thread, idle in the pool or lent to a caller.
#[derive(Debug)]
struct Waiter {
    requests: Sender<Request>,
    /// The server's id of the waiter's connection (CLIENT ID), 0 before it
    /// connected: what CLIENT UNBLOCK names to end its BLPOP early.
    client_id: Arc<AtomicI64>,
}

#[derive(Debug)]
struct Request {
    timeout: Duration,
    holder: String,
    /// Set when the caller left; the reply is sent under this lock, so the
    /// caller either finds it or the waiter knows to pass a token on.
    abandoned: Arc<Mutex<bool>>,
    reply: Sender<Result<bool>>,
    /// The waiter itself, back to the pool when done.
    waiter: Waiter,
}

/// The waiters of one handle.
#[derive(Debug)]
pub(crate) struct Pool {
    idle: Mutex<Vec<Waiter>>,
    server: Arc<Server>,
    keys: Keys,
    name: String,
    io_timeout: Duration,
}

/// A BLPOP under way for one caller.
#[derive(Debug)]
pub(crate) struct Pending {
    reply: Receiver<Result<bool>>,
    abandoned: Arc<Mutex<bool>>,
    client_id: Arc<AtomicI64>,
}

/// What a pending wait brought so far.
pub(crate) enum Outcome {
    /// A wake token (true) or the BLPOP's own timeout (false).
    Done(Result<bool>),
    /// Nothing yet.
    NotYet,
}

impl Pending {
    /// Waits at most `slice` for the BLPOP to end.
    pub(crate) fn poll(&self, slice: Duration) -> Outcome {
        match self.reply.recv_timeout(slice) {
            Ok(result) => Outcome::Done(result),
            Err(RecvTimeoutError::Timeout) => Outcome::NotYet,
            Err(RecvTimeoutError::Disconnected) => Outcome::Done(Ok(false)),
        }
    }

    /// Leaves the wait: a token the BLPOP brings from now on is passed on
    /// by the waiter. Returns whether a token had arrived already (the
    /// caller passes that one on), and the connection id to unblock if the
    /// BLPOP may still be blocked.
    pub(crate) fn abandon(self) -> (bool, Option<i64>) {
        let mut abandoned = self
            .abandoned
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *abandoned = true;
        if let Ok(result) = self.reply.try_recv() {
            (matches!(result, Ok(true)), None)
        } else {
            let id = self.client_id.load(Ordering::SeqCst);
            (false, (id > 0).then_some(id))
        }
    }
}

impl Pool {
    pub(crate) fn new(
        server: Arc<Server>,
        keys: Keys,
        name: String,
        io_timeout: Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            idle: Mutex::new(Vec::new()),
            server,
            keys,
            name,
            io_timeout,
        })
    }

    /// Starts a BLPOP of at most `timeout` for the holder `holder`.
    pub(crate) fn start(self: &Arc<Self>, timeout: Duration, holder: String) -> Pending {
        let waiter = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_else(|| self.spawn());
        let (reply, replies) = mpsc::channel();
        let abandoned = Arc::new(Mutex::new(false));
        let client_id = Arc::clone(&waiter.client_id);
        let requests = waiter.requests.clone();
        let request = Request {
            timeout,
            holder,
            abandoned: Arc::clone(&abandoned),
            reply,
            waiter,
        };
        if let Err(mpsc::SendError(request)) = requests.send(request) {
            // The thread is gone (it could not be started): the caller's
            // local timer still wakes it.
            drop(request);
        }
        Pending {
            reply: replies,
            abandoned,
            client_id,
        }
    }

    /// Drops every idle waiter (their threads end).
    pub(crate) fn clear(&self) {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    fn spawn(self: &Arc<Self>) -> Waiter {
        let (requests, incoming) = mpsc::channel::<Request>();
        let client_id = Arc::new(AtomicI64::new(0));
        let pool = Arc::downgrade(self);
        let server = Arc::clone(&self.server);
        let keys = self.keys.clone();
        let name = self.name.clone();
        let io_timeout = self.io_timeout;
        let id = Arc::clone(&client_id);
        let _ = thread::Builder::new()
            .name("namedipc-redis-wait".to_owned())
            .spawn(move || serve(&incoming, &pool, &server, &keys, &name, io_timeout, &id));
        Waiter {
            requests,
            client_id,
        }
    }
}

/// A waiter thread's loop: one BLPOP per request.
fn serve(
    incoming: &Receiver<Request>,
    pool: &Weak<Pool>,
    server: &Server,
    keys: &Keys,
    name: &str,
    io_timeout: Duration,
    client_id: &AtomicI64,
) {
    let mut link = Link::new(io_timeout);
    while let Ok(request) = incoming.recv() {
        let result = blpop(
            &mut link,
            server,
            keys,
            name,
            request.timeout,
            io_timeout,
            client_id,
        );
        let token = matches!(result, Ok(true));
        let delivered = {
            let abandoned = request
                .abandoned
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            !*abandoned && request.reply.send(result).is_ok()
        };
        if token && !delivered {
            pass_on(&mut link, server, keys, name, &request.holder);
        }
        let Request { waiter, .. } = request;
        match pool.upgrade() {
            Some(pool) => pool
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(waiter),
            // The handle is gone: dropping the waiter ends this loop.
            None => drop(waiter),
        }
    }
}

fn blpop(
    link: &mut Link,
    server: &Server,
    keys: &Keys,
    name: &str,
    timeout: Duration,
    io_timeout: Duration,
    client_id: &AtomicI64,
) -> Result<bool> {
    if !link.is_connected() {
        let con = link.connection(server)?;
        match ::redis::cmd("CLIENT").arg("ID").query::<i64>(con) {
            Ok(id) => client_id.store(id, Ordering::SeqCst),
            Err(e) if breaks_connection(&e) => {
                link.drop_connection();
                return Err(server.error(&e, name));
            }
            // Refused (an ACL without CLIENT): the wait works, only a
            // caller that leaves early cannot cut it short.
            Err(_) => client_id.store(0, Ordering::SeqCst),
        }
    }
    let con = link.connection(server)?;
    if let Err(e) = con.set_read_timeout(Some(timeout + io_timeout)) {
        link.drop_connection();
        return Err(server.error(&e, name));
    }
    // BLPOP takes seconds; 0 would mean for ever, so never less than a ms.
    let seconds = format!("{:.3}", timeout.as_secs_f64().max(0.001));
    let popped = ::redis::cmd("BLPOP")
        .arg(keys.wake())
        .arg(seconds)
        .query::<Option<(String, String)>>(con);
    match popped {
        Ok(token) => Ok(token.is_some()),
        Err(e) => {
            link.drop_connection();
            client_id.store(0, Ordering::SeqCst);
            Err(server.error(&e, name))
        }
    }
}

/// Hands a wake token this waiter took to the next waiter, and takes the
/// holder off the waiters.
pub(crate) fn pass_on(link: &mut Link, server: &Server, keys: &Keys, name: &str, holder: &str) {
    let _ = link.call(server, name, |con| {
        let mut invocation = scripts().leave.prepare_invoke();
        for key in keys.all() {
            invocation.key(key);
        }
        invocation.arg(holder).invoke::<i64>(con)
    });
}
