//! Integration tests of a message queue's notifications (a callback in a
//! new thread, a signal): when they run, when they are dropped unrun, and
//! how they are replaced and cancelled, through the public API only, on real
//! kernel objects. Every name is unique (pid + random) and is removed by a
//! guard when the test ends, pass or fail.

use std::sync::{mpsc, Arc};

use namedipc::MessageQueue;

mod common;
use common::WAIT;

type Name = common::Name<common::Queues>;

/// Sends a value over a channel when dropped: tells a test when a
/// notification callback has been released, run or not.
struct DropSignal(mpsc::Sender<&'static str>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        let _ = self.0.send("dropped");
    }
}

#[test]
fn a_thread_notification_runs_once_when_a_message_arrives() {
    let name = Name::new("notify");
    let queue = MessageQueue::create(name.as_str()).unwrap();
    let (tx, rx) = mpsc::channel();
    let guard = DropSignal(tx.clone());
    queue
        .notify_by_thread(move || {
            let _guard = guard;
            tx.send("ran").unwrap();
        })
        .unwrap();
    let sender = MessageQueue::open(name.as_str()).unwrap();
    sender.send(b"hello", 0).unwrap();
    assert_eq!(rx.recv_timeout(WAIT), Ok("ran"));
    assert_eq!(rx.recv_timeout(WAIT), Ok("dropped"));
    // One-shot: the request was used up, so a new one can be made.
    queue.notify_by_thread(|| {}).unwrap();
    queue.cancel_notification();
}

#[test]
fn cancelling_replacing_or_closing_drops_the_callback_unrun() {
    let name = Name::new("cancel");
    let queue = MessageQueue::create(name.as_str()).unwrap();
    let (tx, rx) = mpsc::channel::<&'static str>();

    let register = |queue: &MessageQueue| {
        let (guard, tx) = (DropSignal(tx.clone()), tx.clone());
        queue
            .notify_by_thread(move || {
                let _guard = guard;
                tx.send("ran").unwrap();
            })
            .unwrap();
    };

    register(&queue);
    queue.cancel_notification();
    assert_eq!(rx.try_recv(), Ok("dropped"));

    register(&queue);
    register(&queue); // replaces the first
    assert_eq!(rx.try_recv(), Ok("dropped"));
    queue.cancel_notification();
    assert_eq!(rx.try_recv(), Ok("dropped"));

    // Closing any handle on the queue in this process ends the request,
    // as the kernel does.
    register(&queue);
    drop(MessageQueue::open(name.as_str()).unwrap());
    assert_eq!(rx.try_recv(), Ok("dropped"));

    register(&queue);
    drop(queue);
    assert_eq!(rx.try_recv(), Ok("dropped"));
    // Nothing ran: a message now finds no request.
    MessageQueue::open(name.as_str())
        .unwrap()
        .send(b"late", 0)
        .unwrap();
    assert_eq!(rx.try_recv(), Err(mpsc::TryRecvError::Empty));
}

#[test]
fn a_callback_whose_message_arrived_runs_even_if_the_handle_closes_at_once() {
    let name = Name::new("arrived");
    let (tx, rx) = mpsc::channel();
    let queue = MessageQueue::create(name.as_str()).unwrap();
    let first = tx.clone();
    queue
        .notify_by_thread(move || first.send("first").unwrap())
        .unwrap();
    // Another handle sends and is closed at once, before the callback's
    // thread can have started: the message already used the request up.
    MessageQueue::open(name.as_str())
        .unwrap()
        .send(b"one", 0)
        .unwrap();
    assert_eq!(rx.recv_timeout(WAIT), Ok("first"));

    let mut buf = queue.new_buffer();
    queue.try_receive(&mut buf).unwrap().unwrap();
    queue
        .notify_by_thread(move || tx.send("second").unwrap())
        .unwrap();
    queue.send(b"two", 0).unwrap();
    queue.cancel_notification();
    drop(queue);
    assert_eq!(rx.recv_timeout(WAIT), Ok("second"));
}

/// Asks for a notification whose callback drains the queue and, for the
/// first rounds, asks for the next one: the usual notification loop.
fn arm(queue: &Arc<MessageQueue>, tx: mpsc::Sender<usize>, round: usize) {
    let again = Arc::clone(queue);
    queue
        .notify_by_thread(move || {
            let mut buf = again.new_buffer();
            while again.try_receive(&mut buf).unwrap().is_some() {}
            if round < 2 {
                arm(&again, tx.clone(), round + 1);
            }
            tx.send(round).unwrap();
        })
        .unwrap();
}

#[test]
fn a_callback_may_ask_for_the_next_notification() {
    let name = Name::new("rearm");
    let queue = Arc::new(MessageQueue::create(name.as_str()).unwrap());
    let (tx, rx) = mpsc::channel();
    arm(&queue, tx, 0);
    let sender = MessageQueue::open(name.as_str()).unwrap();
    for round in 0..3 {
        sender.send(b"tick", 0).unwrap();
        assert_eq!(rx.recv_timeout(WAIT), Ok(round));
    }
    queue.cancel_notification();
}

#[test]
fn a_signal_notification_can_be_asked_for_replaced_and_cancelled() {
    let name = Name::new("notify-signal");
    let queue = MessageQueue::create(name.as_str()).unwrap();
    let signal = *namedipc::mqueue::user_signals().start();
    queue.notify_by_signal(signal).unwrap();
    // A second request from this process replaces the first.
    queue.notify_by_signal(signal).unwrap();
    queue.cancel_notification();
    // Cancelled: the slot is free for a thread notification. No message is
    // sent while a signal request stands, as its default action ends the process.
    let (tx, rx) = mpsc::channel();
    queue
        .notify_by_thread(move || tx.send("ran").unwrap())
        .unwrap();
    queue.send(b"hi", 0).unwrap();
    assert_eq!(rx.recv_timeout(WAIT), Ok("ran"));
}

#[test]
fn bad_signal_numbers_are_invalid_arguments() {
    let name = Name::new("signal");
    let queue = MessageQueue::create(name.as_str()).unwrap();
    let max = *namedipc::mqueue::user_signals().end();
    for bad in [0, -1, max + 1] {
        let err = queue.notify_by_signal(bad).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("between 1 and {max}, not {bad}")),
            "{err}"
        );
    }
}
