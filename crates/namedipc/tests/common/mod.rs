//! What the integration tests share: unique names that a guard removes when
//! the test ends, pass or fail, for each kind of object ([`Semaphores`],
//! [`Segments`], [`Queues`], [`RobustSemaphores`]), and signals
//! sent at a waiting thread.

// Each test file is its own crate and uses only part of this module.
#![allow(dead_code)]
// Signals need libc's signal calls; each block says why it is sound.
#![allow(unsafe_code)]

use std::fs;
use std::io::Read;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Once};
use std::thread;
use std::time::Duration;

/// Upper bound for every wait that only a bug could make long.
pub const WAIT: Duration = Duration::from_secs(10);

/// Runs this test binary's test `test` alone, in a child process of its
/// own with the variable `env` set to `value` (such a test does its work
/// only when its variable is set), and returns what it printed. Panics,
/// after killing it, if it has not ended within [`WAIT`].
pub fn run_test_alone(test: &str, env: &str, value: &str) -> Output {
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1", "-q"])
        .env(env, value)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    // Its pipes are read while it runs, so that no amount of output stalls it.
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    if let Ok(out) = rx.recv_timeout(WAIT) {
        return out.unwrap();
    }
    // Still this test's child: the reading thread has not reaped it.
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
    panic!("the child test {test} did not end within {WAIT:?}");
}

/// Runs `open` in `threads` threads released together by a barrier, and
/// returns how many of them said they created the object. `open` opens (or
/// creates) it, marks it as seen (a message, a slot) and returns `created()`.
pub fn race_to_create(threads: usize, open: impl Fn() -> bool + Send + Sync) -> usize {
    let barrier = std::sync::Barrier::new(threads);
    thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    open()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|&created| created)
            .count()
    })
}

/// The kind of object a test file names.
pub trait Kind {
    /// Goes into every name, after `/namedipc-rtest-`.
    const TAG: &'static str;

    /// Removes the object `name`, and whatever a test planted at its path;
    /// errors (usually: nothing there) are ignored.
    fn remove(name: &str);
}

/// A unique name (pid + random + counter), removed by [`Kind::remove`]
/// when the guard drops, even if the test panics.
pub struct Name<K: Kind> {
    text: String,
    /// Names picked elsewhere (e.g. by `create_random`) to remove as well.
    extra: Vec<String>,
    kind: PhantomData<K>,
}

impl<K: Kind> Name<K> {
    pub fn new(label: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        Self {
            text: format!(
                "/namedipc-rtest-{}-{}-{:016x}-{label}-{n}",
                K::TAG,
                std::process::id(),
                random_u64()
            ),
            extra: Vec::new(),
            kind: PhantomData,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Appends `suffix` to the name, e.g. to reach the longest valid name.
    pub fn push_str(&mut self, suffix: &str) {
        self.text.push_str(suffix);
    }

    /// Removes `name` too when the guard drops.
    pub fn track(&mut self, name: &str) {
        self.extra.push(name.to_owned());
    }
}

impl<K: Kind> Drop for Name<K> {
    fn drop(&mut self) {
        for name in std::iter::once(&self.text).chain(&self.extra) {
            K::remove(name);
        }
    }
}

/// Semaphore names; the guard also removes whatever file a test planted there.
pub struct Semaphores;

impl Kind for Semaphores {
    const TAG: &'static str = "sem";

    fn remove(name: &str) {
        let _ = namedipc::semaphore::unlink(name);
        // A test may have planted a file there that is not a semaphore.
        let _ = fs::remove_file(semaphore_file(name));
    }
}

/// The file glibc keeps behind a semaphore name (spelled here, not taken
/// from the crate, so that the tests check where the crate looks).
pub fn semaphore_file(name: &str) -> PathBuf {
    PathBuf::from(format!("/dev/shm/sem.{}", name.trim_start_matches('/')))
}

/// Shared memory segment names; the guard also removes whatever a test
/// planted at the path.
pub struct Segments;

impl Kind for Segments {
    const TAG: &'static str = "shm";

    fn remove(name: &str) {
        let _ = namedipc::shm::unlink(name);
        let path = segment_file(name);
        let _ = fs::remove_file(&path);
        let _ = fs::remove_dir(&path);
    }
}

/// Where Linux keeps the segment `name`.
pub fn segment_file(name: &str) -> PathBuf {
    PathBuf::from(format!("/dev/shm/{}", name.trim_start_matches('/')))
}

/// Robust semaphore names; the guard also removes whatever file a test
/// planted there.
pub struct RobustSemaphores;

impl Kind for RobustSemaphores {
    const TAG: &'static str = "robust";

    fn remove(name: &str) {
        let _ = namedipc::robust::unlink(name);
        let _ = fs::remove_file(robust_path(name));
    }
}

/// The file of the robust semaphore `name` (spelled here, not taken from
/// the crate, so that the tests check where the crate looks).
pub fn robust_path(name: &str) -> String {
    format!("/dev/shm/namedipc-robust.{}", name.trim_start_matches('/'))
}

/// Message queue names.
pub struct Queues;

impl Kind for Queues {
    const TAG: &'static str = "mq";

    fn remove(name: &str) {
        let _ = namedipc::mqueue::unlink(name);
    }
}

/// Receives one message from `queue` at once, as (bytes, priority).
pub fn take_message(queue: &namedipc::MessageQueue) -> (Vec<u8>, u32) {
    let mut buf = queue.new_buffer();
    let got = queue
        .try_receive(&mut buf)
        .expect("receive")
        .expect("a message is waiting");
    (buf[..got.len].to_vec(), got.priority)
}

fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("read /dev/urandom");
    u64::from_ne_bytes(bytes)
}

/// Runs `wait` in a thread of its own and, until it returns, sends that
/// thread SIGUSR1 every millisecond. The signal's handler does nothing and
/// is installed without SA_RESTART, so each signal ends a blocking call in
/// that thread with EINTR, as a signal a user sends would.
pub fn with_signals<T: Send>(wait: impl FnOnce() -> T + Send) -> T {
    install_signal_handler();
    let done = AtomicBool::new(false);
    thread::scope(|scope| {
        let (tx, rx) = mpsc::channel();
        let done = &done;
        let waiter = scope.spawn(move || {
            // SAFETY: pthread_self has no preconditions.
            tx.send(unsafe { libc::pthread_self() }).unwrap();
            let result = wait();
            done.store(true, Ordering::Release);
            result
        });
        let target = rx.recv().expect("the waiting thread started");
        while !done.load(Ordering::Acquire) {
            // SAFETY: `target` stays a valid thread id until the thread is
            // joined, which happens only after this loop; SIGUSR1 has a handler.
            unsafe { libc::pthread_kill(target, libc::SIGUSR1) };
            thread::sleep(Duration::from_millis(1));
        }
        waiter.join().expect("the waiting thread panicked")
    })
}

fn install_signal_handler() {
    extern "C" fn ignore(_signal: libc::c_int) {}
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        // SAFETY: an all-zero sigaction is a valid value to fill in.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = ignore as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // No SA_RESTART: a blocking call that the signal interrupts fails with EINTR.
        action.sa_flags = 0;
        // SAFETY: `action` is a valid sigaction whose handler is async-signal-safe
        // (it does nothing); the old action is not asked for.
        let ret =
            unsafe { libc::sigaction(libc::SIGUSR1, &raw const action, std::ptr::null_mut()) };
        assert_eq!(ret, 0, "sigaction(SIGUSR1)");
    });
}
