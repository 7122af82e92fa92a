//! Integration tests of the inventory (`namedipc ls`, `info` and `rm`'s
//! view of the machine) with real objects of every kind. Every name is
//! unique and removed, with anything a test planted at its path, by a guard
//! when the test ends.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use namedipc::inventory::{self, Details, Object};
use namedipc::mqueue::MessageQueue;
use namedipc::robust::{self, RobustSemaphore};
use namedipc::shm::{self, SharedMemory};
use namedipc::{semaphore, Error, ObjectKind, Semaphore};

mod common;

struct AnyKind;

impl common::Kind for AnyKind {
    const TAG: &'static str = "inventory";

    fn remove(name: &str) {
        let _ = semaphore::unlink(name);
        let _ = shm::unlink(name);
        let _ = namedipc::mqueue::unlink(name);
        let _ = robust::unlink(name);
        let planted = segment_path(name);
        let _ = fs::remove_file(&planted);
        let _ = fs::remove_dir(&planted);
    }
}

type Name = common::Name<AnyKind>;

/// Where Linux keeps the shared memory segment `name` (and where a test
/// plants files that are no object).
fn segment_path(name: &str) -> PathBuf {
    PathBuf::from(format!("/dev/shm/{}", name.trim_start_matches('/')))
}

fn of_kind(objects: &[Object], kind: ObjectKind) -> Option<&Object> {
    objects.iter().find(|o| o.kind == kind)
}

#[test]
fn find_describes_every_kind_that_has_the_name() {
    let name = Name::new("find");
    let sem = Semaphore::create(name.as_str(), 3).unwrap();
    let segment = SharedMemory::create(name.as_str(), 4096).unwrap();
    let queue = MessageQueue::create(name.as_str()).unwrap();
    let robust = RobustSemaphore::options()
        .initial_value(2)
        .open(name.as_str())
        .unwrap();
    robust.acquire().unwrap();

    let found = inventory::find(name.as_str()).unwrap().objects;
    let kinds: Vec<ObjectKind> = found.iter().map(|o| o.kind).collect();
    assert_eq!(
        kinds,
        [
            ObjectKind::Semaphore,
            ObjectKind::SharedMemory,
            ObjectKind::MessageQueue,
            ObjectKind::RobustSemaphore
        ],
        "by kind, in this order"
    );
    let uid = fs::metadata(segment_path(name.as_str())).unwrap().uid();
    for object in &found {
        assert_eq!(object.name, name.as_str());
        assert_eq!(object.problem, None, "{object:?}");
        if object.kind != ObjectKind::MessageQueue {
            assert_eq!(object.uid, Some(uid), "{object:?}");
            assert_eq!(object.mode.map(|m| m & !0o600), Some(0), "{object:?}");
            assert!(
                object.path.as_ref().is_some_and(|p| p.exists()),
                "{object:?}"
            );
        }
    }
    let details = |kind| &of_kind(&found, kind).unwrap().details;
    assert!(matches!(
        details(ObjectKind::Semaphore),
        Details::Semaphore {
            value: Some(3),
            waiters: Some(0)
        }
    ));
    assert!(matches!(
        details(ObjectKind::SharedMemory),
        Details::SharedMemory { size: 4096 }
    ));
    assert!(matches!(
        details(ObjectKind::MessageQueue),
        Details::MessageQueue {
            messages: Some(0),
            ..
        }
    ));
    match details(ObjectKind::RobustSemaphore) {
        Details::RobustSemaphore(Some(snapshot)) => {
            assert_eq!(
                (snapshot.slots, snapshot.free, snapshot.attached),
                (2, 1, 1)
            );
            assert_eq!(snapshot.holders[0].pid, std::process::id());
        }
        other => panic!("{other:?}"),
    }
    // A name without its slash finds the same objects.
    let slashless = name.as_str().trim_start_matches('/');
    assert_eq!(inventory::find(slashless).unwrap().objects.len(), 4);
    drop((sem, segment, queue));
}

#[test]
fn list_shows_what_is_in_dev_shm() {
    let name = Name::new("list");
    let _sem = Semaphore::create(name.as_str(), 0).unwrap();
    let _segment = SharedMemory::create(name.as_str(), 1).unwrap();
    let _robust = RobustSemaphore::options().open(name.as_str()).unwrap();
    let listing = inventory::list().unwrap();
    let mine: Vec<ObjectKind> = listing
        .objects
        .iter()
        .filter(|o| o.name == name.as_str())
        .map(|o| o.kind)
        .collect();
    assert!(mine.contains(&ObjectKind::Semaphore), "{mine:?}");
    assert!(mine.contains(&ObjectKind::SharedMemory), "{mine:?}");
    assert!(mine.contains(&ObjectKind::RobustSemaphore), "{mine:?}");
    // Message queues are listed only where their file system is mounted.
    assert_eq!(listing.mqueue_dir, inventory::mqueue_dir());
    if let Some(dir) = &listing.mqueue_dir {
        assert!(dir.is_dir());
    }
}

#[test]
fn a_free_name_has_nothing_and_a_bad_one_is_refused() {
    let name = Name::new("nothing");
    assert!(inventory::find(name.as_str()).unwrap().objects.is_empty());
    for bad in ["", "/", "/a/b"] {
        assert!(
            matches!(inventory::find(bad), Err(Error::InvalidArgument(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn remove_removes_the_object_of_the_kind_named() {
    let name = Name::new("remove");
    let _sem = Semaphore::create(name.as_str(), 0).unwrap();
    let _segment = SharedMemory::create(name.as_str(), 1).unwrap();
    let robust = RobustSemaphore::options()
        .persistent(true)
        .open(name.as_str())
        .unwrap();
    inventory::remove(ObjectKind::Semaphore, name.as_str()).unwrap();
    let kinds: Vec<ObjectKind> = inventory::find(name.as_str())
        .unwrap()
        .objects
        .iter()
        .map(|o| o.kind)
        .collect();
    assert_eq!(
        kinds,
        [ObjectKind::SharedMemory, ObjectKind::RobustSemaphore],
        "only the semaphore went"
    );
    assert!(matches!(
        inventory::remove(ObjectKind::Semaphore, name.as_str()),
        Err(Error::NotFound { .. })
    ));
    // A robust semaphore is removed even while in use; its users notice.
    inventory::remove(ObjectKind::RobustSemaphore, name.as_str()).unwrap();
    assert!(matches!(robust.try_acquire(), Err(Error::NotFound { .. })));
}

#[test]
fn special_files_at_a_name_are_no_objects_and_are_left_alone() {
    let name = Name::new("special");
    let planted = segment_path(name.as_str());
    std::os::unix::fs::symlink("/dev/null", &planted).unwrap();
    assert!(inventory::find(name.as_str()).unwrap().objects.is_empty());
    let err = inventory::remove(ObjectKind::SharedMemory, name.as_str()).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("a symbolic link"), "{err}");
    assert!(fs::symlink_metadata(&planted).is_ok(), "left alone");
    fs::remove_file(&planted).unwrap();

    fs::create_dir(&planted).unwrap();
    let err = inventory::remove(ObjectKind::SharedMemory, name.as_str()).unwrap_err();
    assert!(err.to_string().contains("a directory"), "{err}");
    assert!(planted.is_dir(), "left alone");
    assert!(!inventory::list()
        .unwrap()
        .objects
        .iter()
        .any(|o| o.name == name.as_str()));
}

#[test]
fn a_corrupt_robust_semaphore_is_listed_with_its_problem() {
    let name = Name::new("corrupt");
    let file = format!(
        "/dev/shm/namedipc-robust.{}",
        name.as_str().trim_start_matches('/')
    );
    fs::write(&file, b"not a semaphore").unwrap();
    let found = inventory::find(name.as_str()).unwrap().objects;
    let object = of_kind(&found, ObjectKind::RobustSemaphore).unwrap();
    assert!(matches!(object.details, Details::RobustSemaphore(None)));
    let problem = object.problem.as_deref().unwrap();
    assert!(
        problem.contains("not a valid robust semaphore"),
        "{problem}"
    );
    inventory::remove(ObjectKind::RobustSemaphore, name.as_str()).unwrap();
    assert!(!std::path::Path::new(&file).exists());
}

#[test]
fn listing_one_kind_reads_only_that_kind() {
    let name = Name::new("one-kind");
    let _sem = Semaphore::create(name.as_str(), 1).unwrap();
    let _segment = SharedMemory::create(name.as_str(), 1).unwrap();
    let _robust = RobustSemaphore::options().open(name.as_str()).unwrap();
    for kind in [
        ObjectKind::Semaphore,
        ObjectKind::SharedMemory,
        ObjectKind::RobustSemaphore,
    ] {
        let listed = inventory::list_kind(kind).unwrap();
        assert!(listed.objects.iter().all(|o| o.kind == kind));
        assert!(listed.objects.iter().any(|o| o.name == name.as_str()));
        let found = inventory::find_kind(name.as_str(), kind).unwrap().objects;
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].kind, kind);
    }
    let queues = inventory::list_kind(ObjectKind::MessageQueue).unwrap();
    assert!(queues
        .objects
        .iter()
        .all(|o| o.kind == ObjectKind::MessageQueue));
    assert!(
        inventory::find_kind(name.as_str(), ObjectKind::MessageQueue)
            .unwrap()
            .objects
            .is_empty()
    );
}

/// Another process (here a thread, through a descriptor of its own)
/// truncating a robust semaphore's file and writing it back: looking at
/// it, listing it and removing it if unused give an answer or an error,
/// never a fault (which would kill this test process), because nothing of
/// it is mapped.
#[test]
fn a_robust_semaphore_truncated_under_the_reader_gives_errors_never_a_fault() {
    use std::os::unix::fs::FileExt;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    let name = Name::new("truncated");
    let sem = RobustSemaphore::options()
        .initial_value(2)
        .open(name.as_str())
        .unwrap();
    sem.acquire().unwrap();
    let path = format!(
        "/dev/shm/namedipc-robust.{}",
        name.as_str().trim_start_matches('/')
    );
    let bytes = fs::read(&path).unwrap();
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let stop = AtomicBool::new(false);
    let rounds = AtomicU64::new(0);
    let mut answers = [0u32; 3];
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                file.set_len(0).unwrap();
                file.write_all_at(&bytes, 0).unwrap();
                rounds.fetch_add(1, Ordering::Relaxed);
            }
        });
        let mut calls = 0;
        while calls < 3000 || rounds.load(Ordering::Relaxed) < 1000 {
            calls += 1;
            match robust::inspect(name.as_str()) {
                Ok(seen) => {
                    assert_eq!((seen.slots, seen.attached, seen.free), (2, 1, 1));
                    answers[0] += 1;
                }
                Err(Error::Corrupt { .. } | Error::Contended { .. }) => answers[1] += 1,
                Err(other) => panic!("{other}"),
            }
            match robust::remove_if_unused(name.as_str()) {
                Ok(false) | Err(Error::Corrupt { .. } | Error::Contended { .. }) => {}
                other => panic!("{other:?}: removed while in use, or failed"),
            }
            let found = inventory::find_kind(name.as_str(), ObjectKind::RobustSemaphore)
                .unwrap()
                .objects;
            assert_eq!(found.len(), 1);
            answers[2] += 1;
        }
        stop.store(true, Ordering::Relaxed);
    });
    assert!(rounds.load(Ordering::Relaxed) >= 1000);
    assert!(answers[0] > 0, "never read whole: {answers:?}");
    assert!(std::path::Path::new(&path).exists());
    sem.release().unwrap();
}
