//! Integration tests of a message queue's waits: sends and receives that
//! wait for room or a message, time out, end on a signal or never wait,
//! through the public API only, on real kernel objects, with other threads.
//! Every name is unique (pid + random) and is removed by a guard when the
//! test ends, pass or fail.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use namedipc::{BusyReason, Error, MessageQueue};

mod common;
use common::{take_message as take, WAIT};

type Name = common::Name<common::Queues>;

#[test]
fn timed_waits_are_never_shorter_than_asked() {
    let name = Name::new("timeouts");
    let queue = MessageQueue::options()
        .max_messages(1)
        .open(name.as_str())
        .unwrap();
    let mut buf = queue.new_buffer();
    assert_eq!(queue.try_receive(&mut buf).unwrap(), None);
    assert_eq!(
        queue
            .receive_interruptible(&mut buf, Some(Duration::from_millis(10)))
            .unwrap(),
        None
    );
    let started = Instant::now();
    assert_eq!(
        queue
            .receive_timeout(&mut buf, Duration::from_millis(200))
            .unwrap(),
        None
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(200) && elapsed < WAIT,
        "{elapsed:?}"
    );

    queue.send(b"fill", 0).unwrap();
    let started = Instant::now();
    assert!(!queue
        .send_timeout(b"more", 0, Duration::from_millis(200))
        .unwrap());
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(200) && elapsed < WAIT,
        "{elapsed:?}"
    );
}

#[test]
fn a_blocked_receiver_wakes_when_a_message_arrives() {
    let name = Name::new("wake");
    let queue = Arc::new(MessageQueue::create(name.as_str()).unwrap());
    let receiver = {
        let queue = Arc::clone(&queue);
        thread::spawn(move || {
            let mut buf = queue.new_buffer();
            let got = queue.receive_timeout(&mut buf, WAIT).unwrap();
            got.map(|got| (buf[..got.len].to_vec(), got.priority))
        })
    };
    let sender = MessageQueue::open(name.as_str()).unwrap();
    sender.send(b"wake up", 5).unwrap();
    assert_eq!(
        receiver.join().unwrap(),
        Some((b"wake up".to_vec(), 5)),
        "the receiver timed out instead of taking the message"
    );
}

#[test]
fn a_blocked_sender_wakes_when_room_appears() {
    let name = Name::new("room");
    let queue = Arc::new(
        MessageQueue::options()
            .max_messages(1)
            .open(name.as_str())
            .unwrap(),
    );
    queue.send(b"first", 0).unwrap();
    let sender = {
        let queue = Arc::clone(&queue);
        thread::spawn(move || queue.send_timeout(b"second", 0, WAIT).unwrap())
    };
    // Only a sender that got in after the first message left can make the
    // queue non-empty again; the receive below waits for that.
    assert_eq!(take(&queue), (b"first".to_vec(), 0));
    let mut buf = queue.new_buffer();
    let got = queue
        .receive_timeout(&mut buf, WAIT)
        .unwrap()
        .expect("the blocked sender's message");
    assert_eq!(&buf[..got.len], b"second");
    assert!(sender.join().unwrap());
}

#[test]
fn a_signal_ends_only_the_interruptible_waits() {
    let name = Name::new("signal");
    let queue = MessageQueue::options()
        .max_messages(1)
        .open(name.as_str())
        .unwrap();
    let mut buf = queue.new_buffer();
    let timeout = Duration::from_millis(200);

    let err =
        common::with_signals(|| queue.receive_interruptible(&mut buf, Some(WAIT))).unwrap_err();
    assert!(matches!(err, Error::Interrupted { .. }), "{err:?}");
    let started = Instant::now();
    let got = common::with_signals(|| queue.receive_timeout(&mut buf, timeout)).unwrap();
    assert_eq!(got, None);
    assert!(started.elapsed() >= timeout, "{:?}", started.elapsed());

    queue.send(b"fill", 0).unwrap();
    let err = common::with_signals(|| queue.send_interruptible(b"more", 0, None)).unwrap_err();
    assert!(matches!(err, Error::Interrupted { .. }), "{err:?}");
    let started = Instant::now();
    assert!(!common::with_signals(|| queue.send_timeout(b"more", 0, timeout)).unwrap());
    assert!(started.elapsed() >= timeout, "{:?}", started.elapsed());
    assert_eq!(queue.current_messages().unwrap(), 1);
}

#[test]
fn a_non_blocking_handle_never_waits() {
    let name = Name::new("nonblocking");
    let queue = MessageQueue::options()
        .max_messages(1)
        .blocking(false)
        .open(name.as_str())
        .unwrap();
    assert!(!queue.is_blocking().unwrap());
    let mut buf = queue.new_buffer();
    let started = Instant::now();
    let err = queue.receive(&mut buf).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Busy {
                reason: BusyReason::Empty,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "message queue '{}' is empty: no message arrived in the time allowed",
            name.as_str()
        )
    );
    assert!(matches!(
        queue.receive_interruptible(&mut buf, None),
        Err(Error::Busy { .. })
    ));
    assert!(matches!(
        queue.receive_timeout(&mut buf, WAIT),
        Ok(None) | Err(Error::Busy { .. })
    ));
    queue.send(b"only", 0).unwrap();
    let err = queue.send(b"more", 0).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Busy {
                reason: BusyReason::Full,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .ends_with("is full: no room was made in the time allowed"),
        "{err}"
    );
    assert!(!queue.try_send(b"more", 0).unwrap());
    assert!(started.elapsed() < WAIT / 2, "a non-blocking handle waited");

    // Blocking is per handle: another handle on the same queue waits.
    let other = MessageQueue::open(name.as_str()).unwrap();
    assert!(other.is_blocking().unwrap());
    queue.set_blocking(true).unwrap();
    assert!(queue.is_blocking().unwrap());
    // And a blocking handle can stop blocking.
    other.set_blocking(false).unwrap();
    assert!(!other.is_blocking().unwrap());
    assert!(matches!(
        other.send(b"more", 0),
        Err(Error::Busy {
            reason: BusyReason::Full,
            ..
        })
    ));
}

#[test]
fn ended_waits_return_without_sending_or_receiving() {
    let name = Name::new("end-waits");
    let queue = Arc::new(
        MessageQueue::options()
            .max_messages(1)
            .open(name.as_str())
            .unwrap(),
    );
    let other = MessageQueue::open(name.as_str()).unwrap();
    // Waiting (or about to) when the waits end: either way it returns
    // without a message, as none is sent before the end.
    let receiver = {
        let queue = Arc::clone(&queue);
        thread::spawn(move || {
            let mut buf = queue.new_buffer();
            queue.receive_interruptible(&mut buf, None)
        })
    };
    queue.end_waits();
    assert!(queue.waits_ended());
    assert_eq!(receiver.join().unwrap().unwrap(), None);
    // Ended for good: later waits return at once, taking or sending nothing.
    other.send(b"stays", 3).unwrap();
    let mut buf = queue.new_buffer();
    assert_eq!(queue.receive_interruptible(&mut buf, None).unwrap(), None);
    assert!(!queue.send_interruptible(b"never", 0, None).unwrap());
    assert_eq!(take(&other), (b"stays".to_vec(), 3));
    assert_eq!(other.current_messages().unwrap(), 0);
    // Waits that do not end on end_waits still work.
    other.send(b"again", 1).unwrap();
    assert_eq!(
        queue
            .receive_timeout(&mut buf, WAIT)
            .unwrap()
            .map(|got| got.priority),
        Some(1)
    );
}
