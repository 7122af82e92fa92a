//! POSIX message queues: prioritised messages between unrelated processes,
//! found by name.
