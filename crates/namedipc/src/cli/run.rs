//! `namedipc run NAME -- CMD`: hold one slot of a robust semaphore while
//! CMD runs, pass signals on to CMD, and exit with CMD's status.
//!
//! CMD inherits a read-only open file description of the semaphore's file
//! that holds a read lock on this process's liveness byte
//! ([`RobustSemaphore::inheritable_lock`]), so the slot stays held while
//! CMD runs even if `namedipc` itself is killed; when both are gone, the
//! slot comes back. This process's own description is close-on-exec: CMD
//! cannot write, truncate or unlock it.

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use super::{error, note, show, RunArgs, RUN_FAILED};
use crate::ownership::{self, Trust};
use crate::robust::RobustSemaphore;
use crate::sys::process::{self, BlockedSignals};
use crate::{Error, Existence};

/// `--mode` when none is given: the owner only.
const DEFAULT_MODE: u32 = 0o600;

/// Signals passed on to CMD. Others keep their usual effect.
const FORWARDED: [i32; 6] = [
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// Signals CMD starts with the default disposition of, as a command run from
/// a shell would: Python (SIGPIPE, SIGXFSZ) and Rust (SIGPIPE) set them to
/// "ignore", and an ignored signal stays ignored across exec.
pub(super) const DEFAULT_IN_CMD: &[i32] = &[libc::SIGPIPE, libc::SIGXFSZ];

/// While waiting for a slot, signals are looked at this often. They are
/// blocked (they are read with sigtimedwait), so they cannot end the wait
/// itself: this bounds how late a forwarded signal ends a wait, and each
/// check is one wake-up of an idle `run` (10 a second).
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

/// While CMD runs, its status is checked at least this often (SIGCHLD
/// wakes the wait at once; this is a safety net).
pub(super) const CHILD_CHECK: Duration = Duration::from_secs(1);

/// Exit code for "killed by signal N" (as shells report it).
pub(super) fn signal_exit_code(signal: i32) -> i32 {
    128 + signal
}

/// How waiting for a slot ended.
enum Waited {
    Acquired,
    TimedOut,
    Signalled(i32),
}

/// Why waiting for a slot failed.
enum WaitFailed {
    /// The semaphore refused (removed, replaced, closed).
    Semaphore(Error),
    /// The pending signals could not be read.
    Signals(io::Error),
}

pub(super) fn run(args: &RunArgs) -> i32 {
    // Blocked before anything else, so that a ^C or a SIGTERM while waiting
    // for a slot ends the wait cleanly, and one that arrives while CMD starts
    // is passed on rather than lost.
    let signals = match block_signals() {
        Ok(signals) => signals,
        Err(code) => return code,
    };
    let sem = match open(args) {
        Ok(sem) => sem,
        Err(e) => {
            // An untrusted semaphore's message names its owner and mode,
            // and how to accept it.
            error(&e.to_string());
            return RUN_FAILED;
        }
    };
    notes_on_existing(&sem, args);
    if let Err(code) = take_slot(&sem, &signals, args) {
        return code;
    }
    let mut child = match start(&sem, args) {
        Ok(child) => child,
        Err(code) => return code,
    };
    let status = supervise(&mut child, &signals);
    // Gives the slot back (and removes the semaphore if no one else is attached).
    drop(sem);
    // Signals still pending were meant for CMD (a terminal's ^C reaches both);
    // taken here, they do not end this process once the mask is restored.
    while let Ok(Some(_)) = signals.wait(Duration::ZERO) {}
    match status {
        Ok(status) => exit_code(status),
        Err(e) => {
            error(&format!("lost track of the command: {e}"));
            RUN_FAILED
        }
    }
}

/// Opens the semaphore as `args` say, creating it if missing: an existing
/// one must belong to this user or root, or to a `--trust-owner`, or have
/// the `--group`; others may write it only if `--mode` lets them too.
fn open(args: &RunArgs) -> crate::Result<RobustSemaphore> {
    let mode = args.mode.unwrap_or(DEFAULT_MODE);
    let trust = args
        .trust_owners
        .iter()
        .fold(Trust::new(), |trust, &uid| trust.owner(uid))
        .world_writable(mode & 0o002 != 0);
    let mut options = RobustSemaphore::options()
        .existence(Existence::LinkOrCreate)
        .initial_value(args.slots.unwrap_or(1))
        .mode(mode)
        .trust(trust);
    if let Some(gid) = args.group {
        options = options.group(gid);
    }
    options.open(&args.name)
}

/// Says so where an existing semaphore differs from what `-n`, `--mode` or
/// `--group` asked for: they shape only a semaphore that run creates.
fn notes_on_existing(sem: &RobustSemaphore, args: &RunArgs) {
    if sem.created() {
        return;
    }
    if let Some(asked) = args.slots.filter(|&n| n != sem.slots()) {
        note(&format!(
            "robust semaphore '{}' already exists with {}; -n {asked} applies only when run creates it",
            sem.name(),
            show::count(u64::from(sem.slots()), "slot", "slots")
        ));
    }
    let owner = sem.owner();
    if let Some(asked) = args.mode.filter(|&m| m != owner.mode) {
        note(&format!(
            "robust semaphore '{}' already exists with mode {:04o}; --mode {asked:04o} applies only when run creates it",
            sem.name(),
            owner.mode
        ));
    }
    if let Some(asked) = args.group.filter(|&g| g != owner.gid) {
        let named = |gid: u32| match ownership::group_name(gid) {
            Some(name) => format!("{gid} ({name})"),
            None => gid.to_string(),
        };
        note(&format!(
            "robust semaphore '{}' already exists with group {}; --group {} applies only when run creates it",
            sem.name(),
            named(owner.gid),
            named(asked)
        ));
    }
}

/// Blocks the signals `run` forwards, and SIGCHLD, in this thread (and the
/// threads it starts later); they are read with sigtimedwait. `Err` is the
/// exit code, the message printed.
pub(super) fn block_signals() -> Result<BlockedSignals, i32> {
    let mut blocked = FORWARDED.to_vec();
    blocked.push(libc::SIGCHLD);
    BlockedSignals::block(&blocked).map_err(|e| {
        error(&format!("cannot block signals: {e}"));
        RUN_FAILED
    })
}

/// Takes a slot of `sem` as `args` say, unless a forwarded signal comes
/// first; `Err` is the exit code, the message printed.
fn take_slot(sem: &RobustSemaphore, signals: &BlockedSignals, args: &RunArgs) -> Result<(), i32> {
    match wait_for_slot(sem, signals, args.timeout) {
        Ok(Waited::Acquired) => {}
        Ok(Waited::TimedOut) => {
            error(&timeout_message(sem, args.timeout.unwrap_or_default()));
            return Err(i32::from(args.timeout_exit_code));
        }
        Ok(Waited::Signalled(signal)) => return Err(signal_exit_code(signal)),
        Err(WaitFailed::Semaphore(Error::NotFound { name, .. })) => {
            error(&format!(
                "robust semaphore '{name}' was removed while this waited for a slot; run again to create it anew"
            ));
            return Err(RUN_FAILED);
        }
        Err(WaitFailed::Semaphore(e)) => {
            error(&e.to_string());
            return Err(RUN_FAILED);
        }
        Err(WaitFailed::Signals(e)) => {
            error(&format!("cannot read pending signals: {e}"));
            return Err(RUN_FAILED);
        }
    }
    // A signal that came while the slot was taken: do not start CMD at all.
    match pending_signal(signals) {
        Ok(Some(signal)) => Err(signal_exit_code(signal)),
        Ok(None) => Ok(()),
        Err(e) => {
            error(&format!("cannot read pending signals: {e}"));
            Err(RUN_FAILED)
        }
    }
}

/// Starts CMD with a descriptor that keeps this process's registration in
/// `sem` alive; `Err` is the exit code, the message printed.
fn start(sem: &RobustSemaphore, args: &RunArgs) -> Result<Child, i32> {
    let mut command = command(args)?;
    let lock = sem.inheritable_lock().map_err(|e| {
        error(&e.to_string());
        RUN_FAILED
    })?;
    let spawned = spawn(&mut command);
    // CMD has its copy; this process keeps the lock through its own handle.
    drop(lock);
    spawned
}

/// CMD and its arguments, to start with the signal dispositions a shell
/// gives a command; `Err` is the exit code, the message printed.
pub(super) fn command(args: &RunArgs) -> Result<Command, i32> {
    let Some((program, arguments)) = args.command.split_first() else {
        error("no command to run; put it after the name, e.g. namedipc run /jobs -- ./job.sh");
        return Err(RUN_FAILED);
    };
    let mut command = Command::new(program);
    command.args(arguments);
    process::default_signals_in_child(&mut command, DEFAULT_IN_CMD);
    Ok(command)
}

/// Starts `command`; `Err` is the exit code (127 not found, 126 not
/// runnable, 125 no process), the message printed.
pub(super) fn spawn(command: &mut Command) -> Result<Child, i32> {
    command.spawn().map_err(|e| {
        let program = command.get_program().to_string_lossy();
        match e.kind() {
            io::ErrorKind::NotFound => {
                error(&format!(
                    "cannot run '{program}': command not found; check the name and PATH"
                ));
                127
            }
            _ if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::ENOMEM)) => {
                error(&format!("cannot start a process for '{program}': {e}"));
                RUN_FAILED
            }
            _ => {
                error(&format!("cannot run '{program}': {e}"));
                126
            }
        }
    })
}

/// Waits for a slot until `timeout` passes (`None`: for ever), ending the
/// wait early when one of the forwarded signals arrives. A timeout that
/// would end past the latest instant the clock can represent (about 9.2e18
/// seconds from now, billions of years) never passes: no deadline.
fn wait_for_slot(
    sem: &RobustSemaphore,
    signals: &BlockedSignals,
    timeout: Option<Duration>,
) -> Result<Waited, WaitFailed> {
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    // One wait spread over the slices, so that the waiter's watcher of the
    // holders lives through them instead of starting again each time.
    let mut waiter = sem.waiter().map_err(WaitFailed::Semaphore)?;
    loop {
        let slice = deadline.map_or(SIGNAL_CHECK, |d| {
            d.saturating_duration_since(Instant::now())
                .min(SIGNAL_CHECK)
        });
        let acquired = match waiter.acquire_interruptible(Some(slice)) {
            Err(Error::Interrupted { .. }) => false,
            other => other.map_err(WaitFailed::Semaphore)?,
        };
        if acquired {
            return Ok(Waited::Acquired);
        }
        if let Some(signal) = pending_signal(signals).map_err(WaitFailed::Signals)? {
            return Ok(Waited::Signalled(signal));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(Waited::TimedOut);
        }
    }
}

/// The first forwarded signal that is pending, if any (SIGCHLD is dropped:
/// before CMD starts this process has no child).
pub(super) fn pending_signal(signals: &BlockedSignals) -> io::Result<Option<i32>> {
    while let Some(received) = signals.wait(Duration::ZERO)? {
        if received.signal != libc::SIGCHLD {
            return Ok(Some(received.signal));
        }
    }
    Ok(None)
}

/// Waits for CMD to end, passing signals on to it.
fn supervise(child: &mut Child, signals: &BlockedSignals) -> io::Result<ExitStatus> {
    let pid = child.id();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        let Some(received) = signals.wait(CHILD_CHECK)? else {
            continue;
        };
        // Not passed on: SIGCHLD (CMD's own exit, seen above); a signal the
        // kernel sent to the whole foreground process group (a terminal's ^C),
        // which CMD got too; and one that CMD sent to this process.
        if received.signal == libc::SIGCHLD || received.from_kernel || received.sender == Some(pid)
        {
            continue;
        }
        // CMD may have just exited (ESRCH): its status is read above.
        let _ = process::kill(pid, received.signal);
    }
}

pub(super) fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(signal_exit_code))
        .unwrap_or(RUN_FAILED)
}

fn timeout_message(sem: &RobustSemaphore, timeout: Duration) -> String {
    let holders = sem
        .holders()
        .map(|holders| {
            let pids: Vec<String> = holders.iter().map(|h| h.pid.to_string()).collect();
            match pids.len() {
                0 => String::new(),
                1 => format!(", held by pid {}", pids[0]),
                _ => format!(", held by pids {}", pids.join(", ")),
            }
        })
        .unwrap_or_default();
    format!(
        "no slot of robust semaphore '{}' came free within {} s ({}{holders}); try again later or raise --timeout",
        sem.name(),
        timeout.as_secs_f64(),
        show::count(u64::from(sem.slots()), "slot", "slots")
    )
}
