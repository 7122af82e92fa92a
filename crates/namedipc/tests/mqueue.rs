//! Integration tests of message queues through the public API only, on real
//! kernel objects: opening and creating, names, messages and their limits,
//! access (waits: mqueue_waits.rs; notifications: mqueue_notify.rs). Every
//! name is unique (pid + random) and is removed by a guard when the test
//! ends, pass or fail.

use std::fs;
use std::os::fd::AsRawFd;

use namedipc::mqueue::{system_limits, unlink, MessageQueue, MessageQueueOptions, PRIORITY_MAX};
use namedipc::{Error, Existence};

mod common;
use common::take_message as take;

type Name = common::Name<common::Queues>;

fn opts(existence: Existence) -> MessageQueueOptions {
    MessageQueue::options().existence(existence)
}

// ---------------------------------------------------------------- existence

#[test]
fn existence_modes() {
    let name = Name::new("existence");
    assert!(matches!(
        MessageQueue::open(name.as_str()),
        Err(Error::NotFound { .. })
    ));
    let first = MessageQueue::create(name.as_str()).unwrap();
    assert!(first.created());
    assert!(!MessageQueue::open(name.as_str()).unwrap().created());
    assert!(matches!(
        MessageQueue::create(name.as_str()),
        Err(Error::AlreadyExists { .. })
    ));
    first.send(b"kept", 0).unwrap();
    let linked = opts(Existence::LinkOrCreate).open(name.as_str()).unwrap();
    assert!(!linked.created());
    assert_eq!(linked.current_messages().unwrap(), 1);
    // A fresh queue under the same name: the old message is not in it.
    let fresh = opts(Existence::UnlinkAndCreate)
        .open(name.as_str())
        .unwrap();
    assert!(fresh.created());
    assert_eq!(fresh.current_messages().unwrap(), 0);
    assert_eq!(first.current_messages().unwrap(), 1);
}

#[test]
fn link_or_create_raced_from_many_threads_creates_exactly_once() {
    const THREADS: usize = 8;
    for round in 0..20 {
        let name = Name::new("race");
        let created = common::race_to_create(THREADS, || {
            let queue = opts(Existence::LinkOrCreate)
                .max_messages(THREADS)
                .open(name.as_str())
                .unwrap();
            queue.send(b"", 0).unwrap();
            queue.created()
        });
        assert_eq!(created, 1, "round {round}: {created} threads created it");
        // All eight handles were on one queue.
        let queue = MessageQueue::open(name.as_str()).unwrap();
        assert_eq!(queue.current_messages().unwrap(), THREADS, "round {round}");
    }
}

#[test]
fn names_without_a_leading_slash_mean_the_same_queue() {
    let name = Name::new("slash");
    let queue = MessageQueue::create(name.as_str()).unwrap();
    let plain = MessageQueue::open(name.as_str().trim_start_matches('/')).unwrap();
    // Shown as C's mq_open must be given it: with its one leading slash.
    assert_eq!(plain.name(), name.as_str());
    plain.send(b"x", 0).unwrap();
    assert_eq!(queue.current_messages().unwrap(), 1);
}

#[test]
fn invalid_names_are_rejected_with_the_rule() {
    for bad in ["", "/", "/a/b", "/a\0b", &format!("/{}", "x".repeat(256))] {
        let err = MessageQueue::create(bad).unwrap_err();
        assert!(matches!(err, Error::InvalidName { .. }), "{bad:?}: {err}");
        assert!(
            err.to_string().contains("followed by 1 to 255 bytes"),
            "{err}"
        );
    }
}

#[test]
fn random_names_are_fresh() {
    let mut name = Name::new("random");
    let a = MessageQueue::options()
        .create_random("/namedipc-rtest-mq-")
        .unwrap();
    name.track(a.name());
    let b = MessageQueue::options()
        .create_random("/namedipc-rtest-mq-")
        .unwrap();
    name.track(b.name());
    assert_ne!(a.name(), b.name());
    assert!(MessageQueue::open(a.name()).is_ok());
}

#[test]
fn unlink_removes_the_name_but_not_the_queue() {
    let name = Name::new("unlink");
    let queue = MessageQueue::create(name.as_str()).unwrap();
    queue.unlink().unwrap();
    assert!(matches!(queue.unlink(), Err(Error::NotFound { .. })));
    assert!(matches!(unlink(name.as_str()), Err(Error::NotFound { .. })));
    queue.send(b"still here", 3).unwrap();
    assert_eq!(take(&queue), (b"still here".to_vec(), 3));
}

// ---------------------------------------------------------------- messages

#[test]
fn highest_priority_first_and_fifo_within_a_priority() {
    let name = Name::new("order");
    let queue = MessageQueue::create(name.as_str()).unwrap();
    let sent: [(&[u8], u32); 6] = [
        (b"low-1", 1),
        (b"high-1", 7),
        (b"zero", 0),
        (b"low-2", 1),
        (b"high-2", 7),
        (b"top", PRIORITY_MAX),
    ];
    for (message, priority) in sent {
        queue.send(message, priority).unwrap();
    }
    let order: Vec<(Vec<u8>, u32)> = (0..sent.len()).map(|_| take(&queue)).collect();
    let expected: Vec<(Vec<u8>, u32)> = [
        (&b"top"[..], PRIORITY_MAX),
        (b"high-1", 7),
        (b"high-2", 7),
        (b"low-1", 1),
        (b"low-2", 1),
        (b"zero", 0),
    ]
    .iter()
    .map(|(m, p)| (m.to_vec(), *p))
    .collect();
    assert_eq!(order, expected);
}

#[test]
fn empty_and_binary_messages_round_trip() {
    let name = Name::new("binary");
    let queue = MessageQueue::options()
        .max_message_size(16)
        .open(name.as_str())
        .unwrap();
    queue.send(b"", 0).unwrap();
    queue.send(b"\0a\0\xff\0", 0).unwrap();
    queue.send(&[7u8; 16], 0).unwrap();
    assert_eq!(take(&queue), (Vec::new(), 0));
    assert_eq!(take(&queue), (b"\0a\0\xff\0".to_vec(), 0));
    assert_eq!(take(&queue), (vec![7u8; 16], 0));
}

#[test]
fn limits_are_enforced_with_messages_that_say_what_is_allowed() {
    let name = Name::new("limits");
    let queue = MessageQueue::options()
        .max_messages(2)
        .max_message_size(8)
        .open(name.as_str())
        .unwrap();
    assert_eq!((queue.max_messages(), queue.max_message_size()), (2, 8));
    assert_eq!(queue.new_buffer(), vec![0; 8]);

    let err = queue.send(&[0; 9], 0).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(m) if m.contains("9 bytes is too long") && m.contains("max_message_size is 8")),
        "{err}"
    );
    let err = queue.send(b"x", PRIORITY_MAX + 1).unwrap_err();
    assert!(
        err.to_string()
            .contains("priority must be between 0 and 32767, not 32768"),
        "{err}"
    );
    let mut small = [0u8; 7];
    let err = queue.receive(&mut small).unwrap_err();
    assert!(
        err.to_string()
            .contains("at least max_message_size (8) bytes"),
        "{err}"
    );

    assert!(queue.try_send(b"1", 0).unwrap());
    assert!(queue.try_send(b"2", 0).unwrap());
    assert!(!queue.try_send(b"3", 0).unwrap(), "the queue holds two");
    assert_eq!(queue.current_messages().unwrap(), 2);
}

#[test]
fn an_existing_queue_keeps_its_limits() {
    let name = Name::new("keeps");
    let _queue = MessageQueue::options()
        .max_messages(3)
        .max_message_size(50)
        .open(name.as_str())
        .unwrap();
    let other = MessageQueue::options()
        .max_messages(5)
        .max_message_size(100)
        .open(name.as_str())
        .unwrap();
    assert_eq!((other.max_messages(), other.max_message_size()), (3, 50));
}

/// The creator takes the limits it asked for as the queue's (mq_open gives
/// exactly those or fails); a handle that opens the queue asks the kernel.
/// Both must say the same, also where only one limit was given.
#[test]
fn the_creator_reports_the_limits_the_kernel_gave() {
    let defaults = system_limits();
    for (messages, size) in [(Some(3), Some(40)), (Some(2), None), (None, Some(24))] {
        let name = Name::new("creator-limits");
        let mut options = MessageQueue::options().existence(Existence::RaiseIfExists);
        if let Some(messages) = messages {
            options = options.max_messages(messages);
        }
        if let Some(size) = size {
            options = options.max_message_size(size);
        }
        let creator = options.open(name.as_str()).unwrap();
        assert!(creator.created());
        let opened = MessageQueue::open(name.as_str()).unwrap();
        let expected = (
            messages.unwrap_or(defaults.default_max_messages),
            size.unwrap_or(defaults.default_max_message_size),
        );
        assert_eq!(
            (creator.max_messages(), creator.max_message_size()),
            expected
        );
        assert_eq!((opened.max_messages(), opened.max_message_size()), expected);
    }
}

#[test]
fn impossible_limits_are_invalid_arguments() {
    let name = Name::new("impossible");
    for options in [
        MessageQueue::options().max_messages(0),
        MessageQueue::options().max_message_size(0),
    ] {
        let err = options.open(name.as_str()).unwrap_err();
        assert!(err.to_string().contains("must be at least 1"), "{err}");
    }
    // Beyond even a privileged process's hard limit (65536 messages).
    let err = MessageQueue::options()
        .max_messages(1 << 20)
        .open(name.as_str())
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(m) if m.contains("max_messages=1048576") && m.contains("msg_max")),
        "{err}"
    );
    assert!(matches!(
        MessageQueue::open(name.as_str()),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn access_modes_are_enforced() {
    let name = Name::new("access");
    let queue = MessageQueue::create(name.as_str()).unwrap();
    let reader = MessageQueue::options()
        .write(false)
        .open(name.as_str())
        .unwrap();
    let writer = MessageQueue::options()
        .read(false)
        .open(name.as_str())
        .unwrap();
    assert!(reader.can_read() && !reader.can_write());
    assert!(!writer.can_read() && writer.can_write());
    assert!(queue.can_read() && queue.can_write());
    let err = reader.send(b"x", 0).unwrap_err();
    assert!(err.to_string().contains("without write access"), "{err}");
    writer.send(b"from writer", 0).unwrap();
    let mut buf = writer.new_buffer();
    let err = writer.try_receive(&mut buf).unwrap_err();
    assert!(err.to_string().contains("without read access"), "{err}");
    assert_eq!(take(&reader), (b"from writer".to_vec(), 0));
    let err = MessageQueue::options()
        .read(false)
        .write(false)
        .open(name.as_str())
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    drop(queue);
}

// ---------------------------------------------------------------- misc

#[test]
fn each_handle_is_its_own_descriptor() {
    let name = Name::new("fd");
    let a = MessageQueue::create(name.as_str()).unwrap();
    let b = MessageQueue::open(name.as_str()).unwrap();
    assert!(a.as_raw_fd() >= 0 && b.as_raw_fd() >= 0);
    assert_ne!(a.as_raw_fd(), b.as_raw_fd());
}

#[test]
fn system_limits_come_from_proc() {
    let read = |file: &str| -> usize {
        fs::read_to_string(format!("/proc/sys/fs/mqueue/{file}"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let limits = system_limits();
    assert_eq!(limits.default_max_messages, read("msg_default"));
    assert_eq!(limits.default_max_message_size, read("msgsize_default"));
    assert_eq!(limits.max_messages, read("msg_max"));
    assert_eq!(limits.max_message_size, read("msgsize_max"));
    // A queue created without limits gets the defaults.
    let name = Name::new("defaults");
    let queue = MessageQueue::create(name.as_str()).unwrap();
    assert_eq!(queue.max_messages(), limits.default_max_messages);
    assert_eq!(queue.max_message_size(), limits.default_max_message_size);
}
