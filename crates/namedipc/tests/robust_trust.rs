//! Whom a robust semaphore's file is trusted from, and which modes it may
//! have, as one user can test it (tests/test_robust_security.py runs the
//! cases that need other users): a new file gets exactly the mode and the
//! group asked for, before it appears at the name; a mode that lets anybody
//! read the file without writing it is refused at creation, and such a
//! file at the name is refused at open, whatever the trust; a file others
//! may write is refused unless asked for; `Trust::anyone` checks nothing.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use namedipc::robust::{self, RobustSemaphore};
use namedipc::{Error, Existence, Trust};

mod common;

type Name = common::Name<common::RobustSemaphores>;
use common::robust_path as path;

/// A persistent semaphore `name` whose file then gets `mode` (chmod: as its
/// owner, or a squatter, could).
fn planted_with_mode(name: &Name, mode: u32) {
    drop(
        RobustSemaphore::options()
            .persistent(true)
            .open(name.as_str())
            .unwrap(),
    );
    fs::set_permissions(path(name.as_str()), fs::Permissions::from_mode(mode)).unwrap();
}

fn untrusted_reason(result: namedipc::Result<RobustSemaphore>) -> (String, String) {
    match result {
        Err(e @ Error::Untrusted { .. }) => {
            let message = e.to_string();
            let Error::Untrusted { reason, .. } = e else {
                unreachable!()
            };
            (reason, message)
        }
        other => panic!("expected Untrusted, got {other:?}"),
    }
}

#[test]
fn a_new_file_gets_exactly_the_mode_asked_for() {
    for mode in [0o600, 0o660, 0o666, 0o606] {
        let name = Name::new("mode");
        let sem = RobustSemaphore::options()
            .mode(mode)
            .open(name.as_str())
            .unwrap();
        let meta = fs::metadata(path(name.as_str())).unwrap();
        assert_eq!(meta.mode() & 0o7777, mode, "{mode:o}");
        let owner = sem.owner();
        assert_eq!(
            (owner.uid, owner.gid, owner.mode),
            (meta.uid(), meta.gid(), mode)
        );
        // Another handle of this process reports the same (one that asks
        // for a mode others may write accepts such a file).
        let again = RobustSemaphore::options()
            .trust(Trust::new().world_writable(mode & 0o002 != 0))
            .open(name.as_str())
            .unwrap();
        assert_eq!(again.owner(), owner);
        assert_eq!(again.clone().owner(), owner);
    }
}

#[test]
fn a_mode_that_lets_a_reader_in_without_write_is_refused_at_creation() {
    let name = Name::new("badmode");
    for mode in [0o640, 0o644, 0o604, 0o400, 0o200, 0o620, 0o602, 0o000] {
        match RobustSemaphore::options().mode(mode).open(name.as_str()) {
            Err(Error::InvalidArgument(message)) => {
                assert!(
                    message.contains(&format!("mode {mode:#05o} for robust semaphore"))
                        && message.contains("0o600, 0o660 or 0o666"),
                    "{message}"
                );
            }
            other => panic!("{mode:o}: expected InvalidArgument, got {other:?}"),
        }
    }
    assert!(!std::path::Path::new(&path(name.as_str())).exists());
}

#[test]
fn a_file_that_a_reader_may_read_without_write_is_refused_at_open_whatever_the_trust() {
    for mode in [0o644, 0o640, 0o604] {
        let name = Name::new("readable");
        planted_with_mode(&name, mode);
        for trust in [
            Trust::new(),
            Trust::new().owner(namedipc::ownership::current_uid()),
            Trust::new().world_writable(true),
        ] {
            let (reason, message) =
                untrusted_reason(RobustSemaphore::options().trust(trust).open(name.as_str()));
            assert_eq!(
                reason,
                "users who may not write it may read it: such a reader can fake a holder's liveness"
            );
            assert!(
                message.starts_with(&format!(
                    "refusing the robust semaphore '{}': it belongs to uid {}",
                    name.as_str(),
                    namedipc::ownership::current_uid()
                )) && message.contains(&format!("mode {mode:04o}")),
                "{message}"
            );
        }
        // Trust::anyone checks nothing (posix_ipc's way; no default uses it).
        RobustSemaphore::options()
            .trust(Trust::anyone())
            .open(name.as_str())
            .unwrap();
        // Looking at it and removing it still work.
        assert_eq!(robust::inspect(name.as_str()).unwrap().slots, 1);
    }
}

#[test]
fn a_file_its_owner_may_not_read_and_write_is_refused() {
    let name = Name::new("ownerless");
    planted_with_mode(&name, 0o000);
    // Root may open it anyway; another user gets the OS's refusal first.
    match RobustSemaphore::open(name.as_str()) {
        Err(Error::Untrusted { reason, .. }) => {
            assert_eq!(reason, "its owner may not read and write it");
        }
        Err(Error::PermissionDenied { .. }) => {
            assert_ne!(namedipc::ownership::current_uid(), 0);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_file_others_may_write_is_refused_unless_asked_for() {
    let name = Name::new("open-to-all");
    planted_with_mode(&name, 0o666);
    let (reason, message) = untrusted_reason(RobustSemaphore::open(name.as_str()));
    assert_eq!(reason, "users other than its owner and group may write it");
    assert!(message.contains("mode 0666"), "{message}");
    let sem = RobustSemaphore::options()
        .trust(Trust::new().world_writable(true))
        .open(name.as_str())
        .unwrap();
    assert_eq!(sem.owner().mode, 0o666);
    assert!(!sem.created());
}

#[test]
fn a_new_file_gets_the_group_asked_for_and_that_group_is_trusted() {
    let name = Name::new("group");
    // A group this process may give a file: its own.
    let gid = fs::metadata("/proc/self").unwrap().gid();
    let sem = RobustSemaphore::options()
        .mode(0o660)
        .group(gid)
        .open(name.as_str())
        .unwrap();
    let meta = fs::metadata(path(name.as_str())).unwrap();
    assert_eq!((meta.gid(), meta.mode() & 0o7777), (gid, 0o660));
    assert_eq!(sem.owner().gid, gid);
    // A group this process is not in cannot be given (unless it is root).
    if namedipc::ownership::current_uid() != 0 {
        let other = Name::new("not-a-member");
        let err = RobustSemaphore::options()
            .group(4_000_777)
            .open(other.as_str())
            .unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
    }
}

#[test]
fn a_umask_that_narrows_the_mode_into_a_bad_one_is_refused_at_creation() {
    // The umask applies only when asked for, and then 0o660 under a umask
    // that takes group write (as 0o022 does) would be 0o640: refused, and
    // nothing is left at the name. The umask is the process's: a worker.
    let name = Name::new("umask");
    let status = std::process::Command::new("sh")
        .args([
            "-c",
            "umask 022 && exec \"$0\" --exact umask_worker --test-threads=1 --quiet",
        ])
        .arg(std::env::current_exe().unwrap())
        .env("NAMEDIPC_TRUST_UMASK_WORKER", name.as_str())
        .status()
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!std::path::Path::new(&path(name.as_str())).exists());
}

/// Not a test on its own: the worker of the umask test, run under umask 022.
#[test]
fn umask_worker() {
    let Ok(name) = std::env::var("NAMEDIPC_TRUST_UMASK_WORKER") else {
        return;
    };
    let err = RobustSemaphore::options()
        .existence(Existence::RaiseIfExists)
        .mode(0o660)
        .apply_umask(true)
        .open(&name)
        .unwrap_err();
    match err {
        Error::InvalidArgument(message) => {
            assert!(message.contains("the umask left mode 0o640"), "{message}");
        }
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    // Without apply_umask the same mode is applied exactly.
    let sem = RobustSemaphore::options()
        .existence(Existence::RaiseIfExists)
        .mode(0o660)
        .open(&name)
        .unwrap();
    assert_eq!(sem.owner().mode, 0o660);
    let meta = fs::metadata(path(&name)).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o660);
}
