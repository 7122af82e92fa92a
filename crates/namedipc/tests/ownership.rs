//! Owners, trust and exact modes of semaphores, segments and queues: what
//! `owner()` reports, what `Trust` refuses, that a requested mode is applied
//! exactly under a umask (in a child process, which sets its own umask),
//! and, as root, objects given to other uids and the kernel's
//! `fs.protected_regular` check that `LinkOrCreate` must not walk around.

// One name per kind (sem_name, shm_name, mq_name) reads best here.
#![allow(clippy::similar_names)]

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use common::{run_test_alone, segment_file, semaphore_file, Name, Queues, Segments, Semaphores};
use namedipc::ownership::{self, current_uid};
use namedipc::{Error, Existence, MessageQueue, ObjectKind, Owner, Semaphore, SharedMemory, Trust};

/// A uid and a gid that no account has (root can give files to them).
const STRANGER: u32 = 4_000_017;
const STRANGER_GROUP: u32 = 4_000_018;

fn is_root() -> bool {
    current_uid() == 0
}

fn current_gid() -> u32 {
    fs::metadata("/proc/self").unwrap().gid()
}

fn file_owner(path: &Path) -> Owner {
    let meta = fs::metadata(path).unwrap();
    Owner {
        uid: meta.uid(),
        gid: meta.gid(),
        mode: meta.permissions().mode() & 0o7777,
    }
}

fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn untrusted_reason(result: Result<impl std::fmt::Debug, Error>) -> String {
    match result {
        Err(Error::Untrusted { reason, .. }) => reason,
        other => panic!("expected Untrusted, got {other:?}"),
    }
}

const OTHERS_MAY_WRITE: &str = "users other than its owner and group may write it";
const FOREIGN: &str = "another user who is not root owns it";

#[test]
fn a_new_object_reports_this_process_as_owner_and_the_mode_asked_for() {
    let (sem_name, shm_name, mq_name) = (
        Name::<Semaphores>::new("own"),
        Name::<Segments>::new("own"),
        Name::<Queues>::new("own"),
    );
    let me = Owner {
        uid: current_uid(),
        gid: current_gid(),
        mode: 0o600,
    };
    let sem = Semaphore::create(sem_name.as_str(), 1).unwrap();
    assert_eq!(sem.owner(), me);
    assert_eq!(file_owner(&semaphore_file(sem_name.as_str())), me);
    let shm = SharedMemory::create(shm_name.as_str(), 16).unwrap();
    assert_eq!(shm.owner().unwrap(), me);
    assert_eq!(file_owner(&segment_file(shm_name.as_str())), me);
    let mq = MessageQueue::create(mq_name.as_str()).unwrap();
    assert_eq!(mq.owner().unwrap(), me);
}

#[test]
fn an_opened_object_reports_its_real_mode_not_the_one_asked_for() {
    let (sem_name, shm_name) = (
        Name::<Semaphores>::new("real"),
        Name::<Segments>::new("real"),
    );
    let _sem = Semaphore::create(sem_name.as_str(), 1).unwrap();
    chmod(&semaphore_file(sem_name.as_str()), 0o640);
    let opened = Semaphore::options()
        .mode(0o666)
        .open(sem_name.as_str())
        .unwrap();
    assert!(!opened.created());
    assert_eq!(opened.owner().mode, 0o640);

    let _shm = SharedMemory::create(shm_name.as_str(), 16).unwrap();
    chmod(&segment_file(shm_name.as_str()), 0o604);
    let opened = SharedMemory::options()
        .trust(Trust::anyone())
        .open(shm_name.as_str())
        .unwrap();
    assert_eq!(opened.owner().unwrap().mode, 0o604);
}

/// What the child below does, for each kind: create with 0o660 exactly,
/// and with the umask applied.
const UMASK_CHILD: &str = "NAMEDIPC_OWNERSHIP_UMASK_CHILD";

/// Run by [`modes_are_exact_under_a_umask`] in a child process of its own
/// (the umask is per process): sets umask 022 and creates the objects named
/// in the environment, printing each one's `owner().mode`.
#[test]
fn umask_child() {
    let Ok(spec) = std::env::var(UMASK_CHILD) else {
        return;
    };
    let names: Vec<&str> = spec.split(' ').collect();
    let [sem_exact, sem_umask, shm_exact, shm_umask, mq_exact, mq_umask] = names[..] else {
        panic!("six names expected: {spec}");
    };
    // SAFETY: umask has no preconditions; this process is the child that
    // exists to run under it.
    #[allow(unsafe_code)]
    unsafe {
        libc::umask(0o022);
    }
    let create = Existence::RaiseIfExists;
    let modes = [
        Semaphore::options()
            .existence(create)
            .mode(0o660)
            .open(sem_exact)
            .unwrap()
            .owner()
            .mode,
        Semaphore::options()
            .existence(create)
            .mode(0o660)
            .apply_umask(true)
            .open(sem_umask)
            .unwrap()
            .owner()
            .mode,
        SharedMemory::options()
            .existence(create)
            .mode(0o660)
            .open(shm_exact)
            .unwrap()
            .owner()
            .unwrap()
            .mode,
        SharedMemory::options()
            .existence(create)
            .mode(0o660)
            .apply_umask(true)
            .open(shm_umask)
            .unwrap()
            .owner()
            .unwrap()
            .mode,
        MessageQueue::options()
            .existence(create)
            .mode(0o660)
            .open(mq_exact)
            .unwrap()
            .owner()
            .unwrap()
            .mode,
        MessageQueue::options()
            .existence(create)
            .mode(0o660)
            .apply_umask(true)
            .open(mq_umask)
            .unwrap()
            .owner()
            .unwrap()
            .mode,
    ];
    println!("modes {}", modes.map(|m| format!("{m:o}")).join(" "));
}

#[test]
fn modes_are_exact_under_a_umask() {
    let sems = [
        Name::<Semaphores>::new("exact"),
        Name::<Semaphores>::new("umask"),
    ];
    let shms = [
        Name::<Segments>::new("exact"),
        Name::<Segments>::new("umask"),
    ];
    let mqs = [Name::<Queues>::new("exact"), Name::<Queues>::new("umask")];
    let spec = [&sems[0], &sems[1]]
        .iter()
        .map(|n| n.as_str().to_owned())
        .chain(shms.iter().map(|n| n.as_str().to_owned()))
        .chain(mqs.iter().map(|n| n.as_str().to_owned()))
        .collect::<Vec<_>>()
        .join(" ");
    let out = run_test_alone("umask_child", UMASK_CHILD, &spec);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("modes "))
        .unwrap_or_else(|| panic!("no modes in {stdout}"));
    assert_eq!(line, "660 640 660 640 660 640");
    // The files say so too, not only the handles.
    assert_eq!(file_owner(&semaphore_file(sems[0].as_str())).mode, 0o660);
    assert_eq!(file_owner(&semaphore_file(sems[1].as_str())).mode, 0o640);
    assert_eq!(file_owner(&segment_file(shms[0].as_str())).mode, 0o660);
    assert_eq!(file_owner(&segment_file(shms[1].as_str())).mode, 0o640);
    let reopened = |name: &str| {
        MessageQueue::options()
            .existence(Existence::RaiseIfNotExists)
            .trust(Trust::anyone())
            .open(name)
            .unwrap()
            .owner()
            .unwrap()
            .mode
    };
    assert_eq!(
        (reopened(mqs[0].as_str()), reopened(mqs[1].as_str())),
        (0o660, 0o640)
    );
}

#[test]
fn the_default_trust_refuses_what_others_may_write_unless_asked_for() {
    let (sem_name, shm_name, mq_name) = (
        Name::<Semaphores>::new("ww"),
        Name::<Segments>::new("ww"),
        Name::<Queues>::new("ww"),
    );
    let sem = Semaphore::options()
        .existence(Existence::RaiseIfExists)
        .mode(0o666)
        .open(sem_name.as_str())
        .unwrap();
    assert_eq!(sem.owner().mode, 0o666);
    let reason = untrusted_reason(Semaphore::open(sem_name.as_str()));
    assert_eq!(reason, OTHERS_MAY_WRITE);
    for trust in [Trust::new().world_writable(true), Trust::anyone()] {
        let opened = Semaphore::options()
            .trust(trust)
            .open(sem_name.as_str())
            .unwrap();
        assert!(!opened.created());
    }
    // Refused on LinkOrCreate too: nothing is created instead.
    let reason = untrusted_reason(Semaphore::options().open(sem_name.as_str()));
    assert_eq!(reason, OTHERS_MAY_WRITE);

    SharedMemory::options()
        .existence(Existence::RaiseIfExists)
        .mode(0o622)
        .size(8)
        .open(shm_name.as_str())
        .unwrap();
    assert_eq!(
        untrusted_reason(SharedMemory::open(shm_name.as_str())),
        OTHERS_MAY_WRITE
    );
    // A refused segment is left as it was, even when the open asked to truncate it.
    assert_eq!(
        untrusted_reason(
            SharedMemory::options()
                .truncate(true)
                .open(shm_name.as_str())
        ),
        OTHERS_MAY_WRITE
    );
    assert_eq!(
        fs::metadata(segment_file(shm_name.as_str())).unwrap().len(),
        8
    );
    SharedMemory::options()
        .trust(Trust::new().world_writable(true))
        .open(shm_name.as_str())
        .unwrap();

    MessageQueue::options()
        .existence(Existence::RaiseIfExists)
        .mode(0o602)
        .open(mq_name.as_str())
        .unwrap();
    assert_eq!(
        untrusted_reason(MessageQueue::open(mq_name.as_str())),
        OTHERS_MAY_WRITE
    );
    MessageQueue::options()
        .trust(Trust::anyone())
        .open(mq_name.as_str())
        .unwrap();
}

#[test]
fn a_refusal_names_the_object_owner_group_mode_and_the_way_out() {
    let name = Name::<Semaphores>::new("msg");
    Semaphore::options()
        .existence(Existence::RaiseIfExists)
        .mode(0o606)
        .open(name.as_str())
        .unwrap();
    let err = Semaphore::open(name.as_str()).unwrap_err();
    let message = err.to_string();
    let uid = current_uid();
    let user = ownership::user_name(uid).map_or(uid.to_string(), |n| format!("{uid} ({n})"));
    assert!(
        message.starts_with(&format!(
            "refusing the semaphore '{}': it belongs to uid {user}, group ",
            name.as_str()
        )),
        "{message}"
    );
    assert!(
        message.contains(", mode 0606, and users other than its owner and group may write it; "),
        "{message}"
    );
    assert!(message.contains("mode=0o666, --mode 0666"), "{message}");
    assert!(message.ends_with("; see docs/security.md"), "{message}");
    assert_eq!(err.name(), Some(name.as_str()));
}

#[test]
fn group_gives_a_new_object_its_group_and_refuses_a_foreign_one_first() {
    if !is_root() {
        // A non-root process may give only its own groups; which one of
        // them differs from its primary group depends on the machine.
        let me = current_gid();
        let sem_name = Name::<Semaphores>::new("grp");
        let sem = Semaphore::options()
            .group(me)
            .mode(0o660)
            .open(sem_name.as_str())
            .unwrap();
        assert_eq!(sem.owner().gid, me);
        let err = Semaphore::options()
            .group(STRANGER_GROUP)
            .open(Name::<Semaphores>::new("grp-no").as_str())
            .unwrap_err();
        assert!(
            matches!(&err, Error::InvalidArgument(m) if m.contains("not a member")),
            "{err}"
        );
        return;
    }
    let (sem_name, shm_name, mq_name) = (
        Name::<Semaphores>::new("grp"),
        Name::<Segments>::new("grp"),
        Name::<Queues>::new("grp"),
    );
    let sem = Semaphore::options()
        .group(STRANGER_GROUP)
        .mode(0o660)
        .open(sem_name.as_str())
        .unwrap();
    let want = Owner {
        uid: 0,
        gid: STRANGER_GROUP,
        mode: 0o660,
    };
    assert_eq!(sem.owner(), want);
    assert_eq!(file_owner(&semaphore_file(sem_name.as_str())), want);
    let shm = SharedMemory::options()
        .group(STRANGER_GROUP)
        .mode(0o660)
        .open(shm_name.as_str())
        .unwrap();
    assert_eq!(shm.owner().unwrap(), want);
    assert_eq!(file_owner(&segment_file(shm_name.as_str())), want);
    let mq = MessageQueue::options()
        .group(STRANGER_GROUP)
        .mode(0o660)
        .open(mq_name.as_str())
        .unwrap();
    assert_eq!(mq.owner().unwrap(), want);
}

#[test]
fn as_root_another_owner_is_refused_unless_trusted_by_owner_or_group() {
    if !is_root() {
        eprintln!("skipped: giving a file to another uid needs root (CI runs as root)");
        return;
    }
    let (sem_name, shm_name, mq_name) = (
        Name::<Semaphores>::new("foreign"),
        Name::<Segments>::new("foreign"),
        Name::<Queues>::new("foreign"),
    );
    Semaphore::create(sem_name.as_str(), 0).unwrap();
    let file = semaphore_file(sem_name.as_str());
    chown(&file, STRANGER, STRANGER_GROUP);
    chmod(&file, 0o660);
    assert_eq!(
        untrusted_reason(Semaphore::open(sem_name.as_str())),
        FOREIGN
    );
    let message = Semaphore::open(sem_name.as_str()).unwrap_err().to_string();
    assert!(
        message.contains(&format!(
            "it belongs to uid {STRANGER}, group {STRANGER_GROUP}, mode 0660, and {FOREIGN}; \
             if it is shared on purpose, trust its owner (trust_owners=[{STRANGER}], --trust-owner {STRANGER}) \
             or its group (group={STRANGER_GROUP}, --group {STRANGER_GROUP})"
        )),
        "{message}"
    );
    let by_owner = Semaphore::options()
        .trust(Trust::new().owner(STRANGER))
        .open(sem_name.as_str())
        .unwrap();
    assert_eq!(
        by_owner.owner(),
        Owner {
            uid: STRANGER,
            gid: STRANGER_GROUP,
            mode: 0o660
        }
    );
    // The options' group trusts that group, and changes nothing of an existing object.
    let by_group = Semaphore::options()
        .group(STRANGER_GROUP)
        .mode(0o600)
        .open(sem_name.as_str())
        .unwrap();
    assert!(!by_group.created());
    assert_eq!(file_owner(&file).mode, 0o660);
    // Trusting the owner does not trust others' writes.
    chmod(&file, 0o666);
    assert_eq!(
        untrusted_reason(
            Semaphore::options()
                .trust(Trust::new().owner(STRANGER))
                .open(sem_name.as_str())
        ),
        OTHERS_MAY_WRITE
    );
    // Root's own objects are trusted by every default trust, whatever the
    // group; a plain non-root user would trust them too (uid 0).
    chown(&file, 0, STRANGER_GROUP);
    chmod(&file, 0o660);
    Semaphore::open(sem_name.as_str()).unwrap();

    SharedMemory::create(shm_name.as_str(), 8).unwrap();
    chown(&segment_file(shm_name.as_str()), STRANGER, STRANGER_GROUP);
    assert_eq!(
        untrusted_reason(SharedMemory::open(shm_name.as_str())),
        FOREIGN
    );
    SharedMemory::options()
        .existence(Existence::RaiseIfNotExists)
        .trust(Trust::new().owner(STRANGER))
        .open(shm_name.as_str())
        .unwrap();

    let mq = MessageQueue::create(mq_name.as_str()).unwrap();
    // A queue has no path here to chown: its descriptor will do.
    std::os::unix::fs::fchown(&mq, Some(STRANGER), Some(STRANGER_GROUP)).unwrap();
    assert_eq!(
        untrusted_reason(MessageQueue::open(mq_name.as_str())),
        FOREIGN
    );
    let opened = MessageQueue::options()
        .existence(Existence::RaiseIfNotExists)
        .trust(Trust::new().group(STRANGER_GROUP))
        .open(mq_name.as_str())
        .unwrap();
    assert_eq!(
        (opened.owner().unwrap().uid, opened.owner().unwrap().gid),
        (STRANGER, STRANGER_GROUP)
    );
}

fn protected_regular() -> u32 {
    fs::read_to_string("/proc/sys/fs/protected_regular")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// posix_ipc's `SharedMemory(name, O_CREAT)` is `shm_open(O_CREAT)`, which
/// the kernel refuses on another user's file in sticky /dev/shm under
/// `fs.protected_regular` (root included). `LinkOrCreate` must fail there
/// too, and opens as before where the setting is off. (tests/test_ownership.py
/// turns the setting on to compare with posix_ipc itself.)
#[test]
fn as_root_link_or_create_meets_protected_regular_as_shm_open_does() {
    if !is_root() {
        eprintln!("skipped: giving a segment to another uid needs root (CI runs as root)");
        return;
    }
    let name = Name::<Segments>::new("protected");
    SharedMemory::create(name.as_str(), 8).unwrap();
    let file = segment_file(name.as_str());
    chown(&file, STRANGER, STRANGER_GROUP);
    chmod(&file, 0o666);
    let link_or_create = SharedMemory::options()
        .trust(Trust::anyone())
        .open(name.as_str());
    if protected_regular() >= 1 {
        assert!(
            matches!(&link_or_create, Err(Error::PermissionDenied { errno, kind: ObjectKind::SharedMemory, .. }) if *errno == libc::EACCES),
            "{link_or_create:?}"
        );
    } else {
        assert!(!link_or_create.unwrap().created());
    }
    // Without O_CREAT (posix_ipc's flags=0) the kernel has nothing to check.
    SharedMemory::options()
        .existence(Existence::RaiseIfNotExists)
        .trust(Trust::anyone())
        .open(name.as_str())
        .unwrap();
    // Nothing was made or changed on the way.
    assert_eq!(
        file_owner(&file),
        Owner {
            uid: STRANGER,
            gid: STRANGER_GROUP,
            mode: 0o666
        }
    );
}
