//! The open queue as a handle keeps it: its own until a call first needs
//! to use it outside the handle's lock (a send or receive that may wait, a
//! callback that holds it), and from then on shared, each such call on its
//! own clone. So a handle that is opened and closed, as most short-lived
//! ones are, allocates nothing to share its queue, and a descriptor is
//! still never closed under a thread that uses it.

use std::mem;
use std::sync::Arc;

use namedipc::mqueue::MessageQueue;

/// The queue of one handle, under the handle's lock.
pub(super) enum Slot {
    /// Closed (or never opened).
    Closed,
    /// No call holds the queue but through the handle's lock.
    Own(MessageQueue),
    /// Calls may hold clones, each outside the lock.
    Shared(Arc<MessageQueue>),
}

impl Slot {
    /// Whether the queue is open.
    pub(super) fn is_open(&self) -> bool {
        !matches!(self, Self::Closed)
    }

    /// The queue, for use under the lock.
    pub(super) fn get(&self) -> Option<&MessageQueue> {
        match self {
            Self::Closed => None,
            Self::Own(queue) => Some(queue),
            Self::Shared(queue) => Some(queue),
        }
    }

    /// A clone of the queue for a call that uses it outside the lock; the
    /// first one moves the queue into an `Arc`.
    pub(super) fn share(&mut self) -> Option<Arc<MessageQueue>> {
        if let Self::Own(_) = self {
            if let Self::Own(queue) = mem::replace(self, Self::Closed) {
                *self = Self::Shared(Arc::new(queue));
            }
        }
        match self {
            Self::Shared(queue) => Some(Arc::clone(queue)),
            Self::Closed | Self::Own(_) => None,
        }
    }

    /// The queue, leaving the slot closed.
    pub(super) fn take(&mut self) -> Self {
        mem::replace(self, Self::Closed)
    }
}
