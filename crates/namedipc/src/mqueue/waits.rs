//! Waits that another thread can end: the `*_interruptible` sends and
//! receives wait in `ppoll` on the queue descriptor and on an eventfd that
//! [`MessageQueue::end_waits`] makes readable, and then send or receive
//! without waiting, only if the waits have not been ended meanwhile. So a
//! handle being closed never sends or takes a message after the close.

use std::io;
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::OnceLock;

use super::MessageQueue;
use crate::deadline::Deadline;
use crate::sys;
use crate::sys::mq::{Ready, Waker};

/// Whether a handle's waits were ended, and the eventfd that wakes them;
/// made by the first wait, as opens and closes are hot.
#[derive(Debug, Default)]
pub(super) struct Waits {
    ended: AtomicBool,
    waker: OnceLock<Waker>,
}

impl Waits {
    /// The eventfd, made on first use.
    fn waker(&self) -> io::Result<&Waker> {
        let waker = if let Some(waker) = self.waker.get() {
            waker
        } else {
            // Two first waits may both make one; the loser's is closed.
            let made = Waker::new()?;
            self.waker.get_or_init(|| made)
        };
        // Pairs with the fence in `end`: either this wait sees `ended`, or
        // `end` sees the waker and wakes it.
        fence(Ordering::SeqCst);
        Ok(waker)
    }

    fn ended(&self) -> bool {
        self.ended.load(Ordering::SeqCst)
    }

    fn end(&self) {
        self.ended.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if let Some(waker) = self.waker.get() {
            waker.wake();
        }
    }
}

impl MessageQueue {
    /// Ends every wait in [`Self::send_interruptible`] and
    /// [`Self::receive_interruptible`] on this handle, now and from now on:
    /// they return as if their time were up (`Ok(false)`, `Ok(None)`)
    /// without sending or receiving. For closing a handle that other
    /// threads may be waiting on; check [`Self::waits_ended`] after such a
    /// return. Other waits are not affected.
    pub fn end_waits(&self) {
        self.waits.end();
    }

    /// Whether [`Self::end_waits`] was called.
    #[must_use]
    pub fn waits_ended(&self) -> bool {
        self.waits.ended()
    }

    /// Tries `now` (one send or receive that does not wait: `Ok(None)` when
    /// the queue is full or empty) until it succeeds, fails, `deadline`
    /// (`None`: no limit) passes or the waits are ended, waiting in between
    /// for the queue to have room (`for_room`) or a message. `Ok(None)`: the
    /// time is up or the waits were ended; EINTR when a signal handler ran.
    pub(super) fn wait_endably<T>(
        &self,
        for_room: bool,
        deadline: Option<Deadline>,
        mut now: impl FnMut() -> io::Result<Option<T>>,
    ) -> io::Result<Option<T>> {
        let waker = self.waits.waker()?;
        loop {
            if self.waits.ended() {
                return Ok(None);
            }
            if let Some(done) = sys::retry_on_interrupt(&mut now)? {
                return Ok(Some(done));
            }
            let timeout = match deadline {
                None => None,
                Some(deadline) => {
                    let left = deadline.at().saturating_sub(sys::monotonic_now());
                    if left.is_zero() {
                        return Ok(None);
                    }
                    Some(left)
                }
            };
            if self.raw.wait_ready(for_room, waker, timeout)? == Ready::Woken {
                return Ok(None);
            }
        }
    }
}
