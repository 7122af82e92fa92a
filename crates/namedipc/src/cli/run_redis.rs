//! `namedipc run --redis URL NAME -- CMD`: hold one slot of a distributed
//! semaphore while CMD runs. CMD learns its grant (NAMEDIPC_FENCE,
//! NAMEDIPC_SLOT), is stopped when the lease is lost (SIGTERM, then SIGKILL),
//! and gets SIGTERM at once if this process dies (its lease is then no
//! longer renewed). Signals are passed on as by the local `run`.

use std::io;
use std::process::{Child, ExitStatus};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use super::run::{
    block_signals, command, exit_code, pending_signal, signal_exit_code, spawn, CHILD_CHECK,
};
use super::{error, note, show, RunArgs, CONNECT_TIMEOUT, LEASE_LOST, RUN_FAILED};
use crate::redis::{Grant, RedisSemaphore, DEFAULT_LEASE};
use crate::sys::process::{self, BlockedSignals};
use crate::Error;

/// While CMD runs, the lease is looked at this often (a local check: no
/// command goes to the server for it).
const LEASE_CHECK: Duration = Duration::from_millis(20);

/// After a lost lease, how long `run` waits for the server to take the slot
/// back before it exits all the same: the server may be the reason the lease
/// was lost (paused, unreachable), and the lease runs out without it.
const LOST_RELEASE_WAIT: Duration = Duration::from_secs(1);

/// How CMD's run ended.
struct Ended {
    status: ExitStatus,
    /// CMD was running when the lease was lost.
    lost: bool,
}

pub(super) fn run(args: &RunArgs) -> i32 {
    let url = args.redis.url.as_deref().unwrap_or_default();
    // Blocked before the semaphore starts its threads, which inherit the
    // mask: every signal then waits for this thread, as in the local `run`.
    let signals = match block_signals() {
        Ok(signals) => signals,
        Err(code) => return code,
    };
    let sem = Arc::new(
        match RedisSemaphore::options()
            .url(url)
            .initial_value(args.slots.unwrap_or(1))
            .lease(args.lease.unwrap_or(DEFAULT_LEASE))
            .connect_timeout(CONNECT_TIMEOUT)
            .open(&args.name)
        {
            Ok(sem) => sem,
            Err(e) => {
                error(&e.to_string());
                return RUN_FAILED;
            }
        },
    );
    let code = run_holding(&sem, &signals, args);
    // Gives back whatever is still held (nothing, normally) and stops the
    // keep-alive; a release still under way after a lost lease closes the
    // handle itself.
    if Arc::strong_count(&sem) == 1 {
        sem.close();
    }
    // Signals still pending were meant for CMD (a terminal's ^C reaches both).
    while let Ok(Some(_)) = signals.wait(Duration::ZERO) {}
    code
}

fn run_holding(sem: &Arc<RedisSemaphore>, signals: &BlockedSignals, args: &RunArgs) -> i32 {
    if let Some(asked) = args.slots.filter(|&n| n != sem.slots()) {
        note(&format!(
            "redis semaphore '{}' already exists with {}; -n {asked} applies only when run creates it",
            sem.name(),
            show::count(u64::from(sem.slots()), "slot", "slots")
        ));
    }
    let grant = match take_slot(sem, signals, args) {
        Ok(grant) => grant,
        Err(code) => return code,
    };
    let mut command = match command(args) {
        Ok(command) => command,
        Err(code) => {
            let _ = sem.release(grant);
            return code;
        }
    };
    command
        .env("NAMEDIPC_FENCE", grant.fence.to_string())
        .env("NAMEDIPC_SLOT", grant.slot.to_string());
    process::parent_death_signal_in_child(&mut command, libc::SIGTERM);
    let mut child = match spawn(&mut command) {
        Ok(child) => child,
        Err(code) => {
            let _ = sem.release(grant);
            return code;
        }
    };
    let ended = match supervise(&mut child, signals, sem, grant, args.kill_after) {
        Ok(ended) => ended,
        Err(e) => {
            error(&format!("lost track of the command: {e}"));
            // CMD must not go on without the slot this process gives up.
            let _ = child.kill();
            let _ = child.wait();
            let _ = sem.release(grant);
            return RUN_FAILED;
        }
    };
    if ended.lost {
        release_within(sem, grant, LOST_RELEASE_WAIT);
        return LEASE_LOST;
    }
    match sem.release(grant) {
        Ok(()) => exit_code(ended.status),
        Err(Error::LeaseLost { .. }) => {
            // Lost between CMD's end and the release: CMD's last moments
            // may have run without the slot.
            error(&format!(
                "lease of redis semaphore '{}' was lost before CMD ended (it expired by the server's clock or could not be renewed in time)",
                sem.name()
            ));
            LEASE_LOST
        }
        Err(e) => {
            note(&format!(
                "could not give the slot back ({e}); it comes back when its lease runs out, within {} s",
                sem.lease().as_secs_f64()
            ));
            exit_code(ended.status)
        }
    }
}

/// Releases `grant` (what the server still has of it) and closes the
/// handle, in a thread of its own, waiting for that at most `wait`.
fn release_within(sem: &Arc<RedisSemaphore>, grant: Grant, wait: Duration) {
    let (done, finished) = mpsc::channel();
    let sem = Arc::clone(sem);
    let spawned = thread::Builder::new()
        .name("namedipc-release".to_owned())
        .spawn(move || {
            let _ = sem.release(grant);
            sem.close();
            let _ = done.send(());
        });
    if spawned.is_ok() {
        let _ = finished.recv_timeout(wait);
    }
}

/// Takes a slot as `args` say, unless a forwarded signal comes first; `Err`
/// is the exit code, the message printed.
fn take_slot(sem: &RedisSemaphore, signals: &BlockedSignals, args: &RunArgs) -> Result<Grant, i32> {
    // A timeout past what the clock can count to is no timeout.
    let timeout = args
        .timeout
        .filter(|&t| Instant::now().checked_add(t).is_some());
    let mut signalled = None;
    let mut unreadable = None;
    let mut keep_waiting = || match pending_signal(signals) {
        Ok(None) => true,
        Ok(Some(signal)) => {
            signalled = Some(signal);
            false
        }
        Err(e) => {
            unreadable = Some(e);
            false
        }
    };
    let waited = sem.acquire_while(timeout, &mut keep_waiting);
    if let Some(e) = unreadable {
        error(&format!("cannot read pending signals: {e}"));
        return Err(RUN_FAILED);
    }
    let grant = match waited {
        Ok(Some(grant)) => grant,
        Ok(None) => {
            error(&timeout_message(sem, args.timeout.unwrap_or_default()));
            return Err(i32::from(args.timeout_exit_code));
        }
        Err(Error::Interrupted { .. }) if signalled.is_some() => {
            return Err(signal_exit_code(signalled.unwrap_or_default()));
        }
        Err(Error::NotFound { name, .. }) => {
            error(&format!(
                "redis semaphore '{name}' was removed while this waited for a slot; run again to create it anew"
            ));
            return Err(RUN_FAILED);
        }
        Err(e) => {
            error(&e.to_string());
            return Err(RUN_FAILED);
        }
    };
    // A signal that came while the slot was taken: do not start CMD at all.
    match pending_signal(signals) {
        Ok(None) => Ok(grant),
        Ok(Some(signal)) => {
            let _ = sem.release(grant);
            Err(signal_exit_code(signal))
        }
        Err(e) => {
            let _ = sem.release(grant);
            error(&format!("cannot read pending signals: {e}"));
            Err(RUN_FAILED)
        }
    }
}

/// Waits for CMD to end, passing signals on to it, and stops it when the
/// lease is lost: SIGTERM at once, SIGKILL `kill_after` later.
fn supervise(
    child: &mut Child,
    signals: &BlockedSignals,
    sem: &RedisSemaphore,
    grant: Grant,
    kill_after: Duration,
) -> io::Result<Ended> {
    let pid = child.id();
    // When the loss was seen, and whether SIGKILL has followed.
    let mut lost: Option<Instant> = None;
    let mut killed = false;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Ended {
                status,
                lost: lost.is_some() || sem.is_lost(grant),
            });
        }
        if lost.is_none() && sem.is_lost(grant) {
            error(&format!(
                "lease of redis semaphore '{}' was lost while CMD ran (it expired by the server's clock or could not be renewed in time); stopping CMD: SIGTERM now, SIGKILL in {} s",
                sem.name(),
                kill_after.as_secs_f64()
            ));
            let _ = process::kill(pid, libc::SIGTERM);
            lost = Some(Instant::now());
        }
        let wait = match lost {
            None => LEASE_CHECK,
            Some(_) if killed => CHILD_CHECK,
            Some(at) => {
                let left = kill_after.saturating_sub(at.elapsed());
                if left.is_zero() {
                    let _ = process::kill(pid, libc::SIGKILL);
                    killed = true;
                    CHILD_CHECK
                } else {
                    left
                }
            }
        };
        let Some(received) = signals.wait(wait)? else {
            continue;
        };
        // As in the local `run`: not SIGCHLD, not a signal the kernel sent to
        // the whole process group (CMD has it too), not one from CMD itself.
        if received.signal == libc::SIGCHLD || received.from_kernel || received.sender == Some(pid)
        {
            continue;
        }
        let _ = process::kill(pid, received.signal);
    }
}

fn timeout_message(sem: &RedisSemaphore, timeout: Duration) -> String {
    let holders = sem
        .holders()
        .map(|holders| {
            let who: Vec<String> = holders
                .iter()
                .map(|h| format!("pid {} on {}", h.pid, h.host))
                .collect();
            if who.is_empty() {
                String::new()
            } else {
                format!(", held by {}", who.join(", "))
            }
        })
        .unwrap_or_default();
    format!(
        "no slot of redis semaphore '{}' came free within {} s ({}{holders}); try again later or raise --timeout",
        sem.name(),
        timeout.as_secs_f64(),
        show::count(u64::from(sem.slots()), "slot", "slots")
    )
}
