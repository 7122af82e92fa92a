//! This system's limits for new message queues, as Linux publishes them.

/// Where Linux publishes its message queue limits.
pub(super) const LIMITS_DIR: &str = "/proc/sys/fs/mqueue";

/// This system's limits for new queues, read from `/proc/sys/fs/mqueue` by
/// [`system_limits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// `max_messages` of a queue created without one (`msg_default`).
    pub default_max_messages: usize,
    /// `max_message_size` of a queue created without one (`msgsize_default`).
    pub default_max_message_size: usize,
    /// The largest `max_messages` an unprivileged process may ask for (`msg_max`).
    pub max_messages: usize,
    /// The largest `max_message_size` an unprivileged process may ask for (`msgsize_max`).
    pub max_message_size: usize,
}

/// Reads this system's limits for new queues. Where a file cannot be read
/// (an old kernel, a sandbox), Linux's built-in values stand in: 10 messages
/// of 8192 bytes.
///
/// ```
/// let limits = namedipc::mqueue::system_limits();
/// println!("new queues hold {} messages by default", limits.default_max_messages);
/// ```
#[must_use]
pub fn system_limits() -> Limits {
    let read = |file: &str, fallback: usize| {
        std::fs::read_to_string(format!("{LIMITS_DIR}/{file}"))
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .filter(|&value| value > 0)
            .unwrap_or(fallback)
    };
    Limits {
        default_max_messages: read("msg_default", 10),
        default_max_message_size: read("msgsize_default", 8192),
        max_messages: read("msg_max", 10),
        max_message_size: read("msgsize_max", 8192),
    }
}
