//! Integration tests of named semaphores through the public API only, on
//! real kernel objects: opening and creating, names, the file behind a
//! name, removal (taking and giving back slots: semaphore_counting.rs).
//! Every name is unique (pid + random) and is removed by a guard when the
//! test ends, pass or fail.

use std::fs;

use namedipc::semaphore::{unlink, VALUE_MAX};
use namedipc::{Error, Existence, Semaphore, SemaphoreOptions};

mod common;
use common::{run_test_alone, semaphore_file};

type Name = common::Name<common::Semaphores>;

fn opts(existence: Existence) -> SemaphoreOptions {
    Semaphore::options().existence(existence)
}

// ---------------------------------------------------------------- existence

#[test]
fn raise_if_exists_on_a_taken_name_is_already_exists() {
    let name = Name::new("rie");
    let first = opts(Existence::RaiseIfExists)
        .initial_value(3)
        .open(name.as_str())
        .unwrap();
    assert!(first.created());
    assert_eq!(first.name(), name.as_str());

    let err = opts(Existence::RaiseIfExists)
        .initial_value(5)
        .open(name.as_str())
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");
    assert_eq!(err.errno(), Some(libc::EEXIST));
    assert_eq!(err.name(), Some(name.as_str()));
    // The failed create left the existing semaphore alone.
    assert_eq!(first.value().unwrap(), 3);
}

#[test]
fn raise_if_not_exists_on_a_missing_name_is_not_found() {
    let name = Name::new("rine");
    let err = opts(Existence::RaiseIfNotExists)
        .open(name.as_str())
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert_eq!(err.errno(), Some(libc::ENOENT));
    assert_eq!(err.name(), Some(name.as_str()));
    assert!(err.to_string().contains(name.as_str()), "{err}");
    // It did not create anything on the way.
    assert!(!semaphore_file(name.as_str()).exists());
    assert!(matches!(
        Semaphore::open(name.as_str()),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn raise_if_not_exists_opens_an_existing_semaphore() {
    let name = Name::new("rine-ok");
    let creator = Semaphore::create(name.as_str(), 4).unwrap();
    let opener = opts(Existence::RaiseIfNotExists)
        .initial_value(0)
        .open(name.as_str())
        .unwrap();
    assert!(!opener.created());
    assert_eq!(opener.value().unwrap(), 4, "initial_value ignored on open");
    assert!(opener.try_acquire().unwrap());
    assert_eq!(creator.value().unwrap(), 3);
}

#[test]
fn link_or_create_creates_then_links() {
    let name = Name::new("loc");
    let first = opts(Existence::LinkOrCreate)
        .initial_value(2)
        .open(name.as_str())
        .unwrap();
    assert!(first.created());
    assert_eq!(first.value().unwrap(), 2);

    let second = opts(Existence::LinkOrCreate)
        .initial_value(7)
        .open(name.as_str())
        .unwrap();
    assert!(!second.created());
    // Linked to the same semaphore: its initial_value was not used and the
    // two handles share one value.
    assert_eq!(second.value().unwrap(), 2);
    assert!(second.try_acquire().unwrap());
    assert_eq!(first.value().unwrap(), 1);
    first.release().unwrap();
    first.release().unwrap();
    assert_eq!(second.value().unwrap(), 3);
}

#[test]
fn unlink_and_create_replaces_an_existing_semaphore() {
    let name = Name::new("uac");
    let old = Semaphore::create(name.as_str(), 5).unwrap();

    let new = opts(Existence::UnlinkAndCreate)
        .initial_value(2)
        .open(name.as_str())
        .unwrap();
    assert!(new.created());
    assert_eq!(new.value().unwrap(), 2);
    assert_eq!(old.value().unwrap(), 5);

    // The old handle still works, but on a semaphore of its own.
    old.release().unwrap();
    assert_eq!(old.value().unwrap(), 6);
    assert_eq!(new.value().unwrap(), 2);
    assert!(new.try_acquire().unwrap());
    assert_eq!(new.value().unwrap(), 1);
    assert_eq!(old.value().unwrap(), 6);

    // Whoever opens the name now gets the new one.
    let reopened = Semaphore::open(name.as_str()).unwrap();
    assert_eq!(reopened.value().unwrap(), 1);
}

#[test]
fn unlink_and_create_on_a_missing_name_creates() {
    let name = Name::new("uac-missing");
    let sem = opts(Existence::UnlinkAndCreate)
        .initial_value(3)
        .open(name.as_str())
        .unwrap();
    assert!(sem.created());
    assert_eq!(Semaphore::open(name.as_str()).unwrap().value().unwrap(), 3);
}

#[test]
fn link_or_create_raced_from_many_threads_creates_exactly_once() {
    const THREADS: usize = 8;
    for round in 0..20 {
        let name = Name::new("race");
        let created = common::race_to_create(THREADS, || {
            let sem = opts(Existence::LinkOrCreate)
                .initial_value(0)
                .open(name.as_str())
                .unwrap();
            sem.release().unwrap();
            sem.created()
        });
        assert_eq!(created, 1, "round {round}: {created} threads created it");
        // All eight handles were on one semaphore.
        let sem = Semaphore::open(name.as_str()).unwrap();
        assert_eq!(
            sem.value().unwrap(),
            u32::try_from(THREADS).unwrap(),
            "round {round}"
        );
    }
}

// ---------------------------------------------------------------- arguments

#[test]
fn initial_value_above_value_max_is_invalid_argument() {
    let name = Name::new("toobig");
    for existence in [
        Existence::RaiseIfExists,
        Existence::LinkOrCreate,
        Existence::UnlinkAndCreate,
    ] {
        let err = opts(existence)
            .initial_value(VALUE_MAX + 1)
            .open(name.as_str())
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidArgument(_)),
            "{existence:?}: {err:?}"
        );
        assert_eq!(err.errno(), None);
        assert_eq!(err.name(), None);
        assert!(err.to_string().contains(&VALUE_MAX.to_string()), "{err}");
    }
    let err = Semaphore::options()
        .initial_value(u32::MAX)
        .create_random("/namedipc-rtest-")
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
    // Nothing was created.
    assert!(matches!(
        Semaphore::open(name.as_str()),
        Err(Error::NotFound { .. })
    ));
    // VALUE_MAX itself is allowed.
    let sem = opts(Existence::RaiseIfExists)
        .initial_value(VALUE_MAX)
        .open(name.as_str())
        .unwrap();
    assert_eq!(sem.value().unwrap(), VALUE_MAX);
}

#[test]
fn invalid_names_are_invalid_name() {
    let too_long = format!("/{}", "x".repeat(252));
    let bad: [&str; 7] = ["", "/", "//", "/a/b", "/a\0b", "a/", &too_long];
    for name in bad {
        for existence in [
            Existence::RaiseIfExists,
            Existence::LinkOrCreate,
            Existence::RaiseIfNotExists,
            Existence::UnlinkAndCreate,
        ] {
            let err = opts(existence).open(name).unwrap_err();
            assert!(
                matches!(err, Error::InvalidName { .. }),
                "{name:?} {existence:?}: {err:?}"
            );
            assert_eq!(err.errno(), None);
            assert_eq!(err.name(), Some(name));
        }
        let err = unlink(name).unwrap_err();
        assert!(
            matches!(err, Error::InvalidName { .. }),
            "{name:?}: {err:?}"
        );
        assert_eq!(err.name(), Some(name));
    }
}

#[test]
fn longest_valid_name_works() {
    let mut name = Name::new("long");
    // Pad the unique name to the longest body glibc accepts (251 bytes).
    let body_len = name.as_str().len() - 1;
    name.push_str(&"y".repeat(251 - body_len));
    assert_eq!(name.as_str().len(), 252);
    let sem = Semaphore::create(name.as_str(), 1).unwrap();
    assert!(sem.try_acquire().unwrap());
    let longer = format!("{}y", name.as_str());
    assert!(matches!(
        Semaphore::create(&longer, 1),
        Err(Error::InvalidName { .. })
    ));
}

// ---------------------------------------------------------------- corrupt

/// Writes `bytes` as the file behind the semaphore name.
fn plant(name: &str, bytes: &[u8]) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(semaphore_file(name))
        .unwrap();
    file.write_all(bytes).unwrap();
}

#[test]
fn a_corrupt_file_at_the_name_is_corrupt_not_sigbus() {
    let mut big_value = vec![0u8; 32];
    big_value[..4].copy_from_slice(&0xFFFF_FFFFu32.to_ne_bytes());
    let cases: [(&str, Vec<u8>); 3] = [
        ("empty", Vec::new()),
        ("seven", vec![0u8; 7]),
        ("badvalue", big_value),
    ];
    for (label, bytes) in &cases {
        let name = Name::new(label);
        plant(name.as_str(), bytes);
        for existence in [Existence::RaiseIfNotExists, Existence::LinkOrCreate] {
            let err = opts(existence).open(name.as_str()).unwrap_err();
            assert!(
                matches!(err, Error::Corrupt { .. }),
                "{label} {existence:?}: {err:?}"
            );
            assert_eq!(err.errno(), None);
            assert_eq!(err.name(), Some(name.as_str()));
            assert!(err.to_string().contains("corrupt"), "{err}");
        }
        assert!(matches!(
            Semaphore::open(name.as_str()),
            Err(Error::Corrupt { .. })
        ));
        // Nothing replaced or touched the file.
        assert_eq!(
            &fs::read(semaphore_file(name.as_str())).unwrap(),
            bytes,
            "{label}"
        );

        // UnlinkAndCreate replaces it with a working semaphore.
        let sem = opts(Existence::UnlinkAndCreate)
            .initial_value(1)
            .open(name.as_str())
            .unwrap();
        assert!(sem.created());
        assert!(sem.try_acquire().unwrap());
        assert_eq!(Semaphore::open(name.as_str()).unwrap().value().unwrap(), 0);
    }
}

// ---------------------------------------------------------- unlink & drop

#[test]
fn unlink_on_drop_removes_the_name_only_for_the_creator() {
    let name = Name::new("uod");
    let creator = Semaphore::options()
        .existence(Existence::RaiseIfExists)
        .unlink_on_drop(true)
        .open(name.as_str())
        .unwrap();
    let opener = opts(Existence::RaiseIfNotExists)
        .unlink_on_drop(true)
        .open(name.as_str())
        .unwrap();
    let linker = opts(Existence::LinkOrCreate)
        .unlink_on_drop(true)
        .open(name.as_str())
        .unwrap();
    assert!(!linker.created());

    drop(opener);
    drop(linker);
    assert!(
        Semaphore::open(name.as_str()).is_ok(),
        "removed by a non-creator"
    );

    drop(creator);
    assert!(matches!(
        Semaphore::open(name.as_str()),
        Err(Error::NotFound { .. })
    ));
    assert!(!semaphore_file(name.as_str()).exists());
}

#[test]
fn unlink_if_owner_removes_the_name_once_and_only_for_the_creator() {
    let name = Name::new("owner");
    let creator = Semaphore::options()
        .unlink_on_drop(true)
        .open(name.as_str())
        .unwrap();
    let other = Semaphore::options()
        .unlink_on_drop(true)
        .open(name.as_str())
        .unwrap();
    assert!(creator.created() && !other.created());
    assert!(!other.unlink_if_owner(), "only the creator owns the name");
    assert!(creator.unlink_if_owner());
    assert!(matches!(
        Semaphore::open(name.as_str()),
        Err(Error::NotFound { .. })
    ));
    // At most once: a new semaphore under the name is not the creator's.
    let _new = Semaphore::create(name.as_str(), 0).unwrap();
    assert!(!creator.unlink_if_owner());
    assert!(Semaphore::open(name.as_str()).is_ok());
    // The handle still works after its name is gone.
    creator.release().unwrap();
    assert!(creator.try_acquire().unwrap());
}

#[test]
fn a_replaced_name_is_left_alone_by_unlink_on_drop() {
    let name = Name::new("replaced");
    let creator = Semaphore::options()
        .unlink_on_drop(true)
        .open(name.as_str())
        .unwrap();
    let replacement = opts(Existence::UnlinkAndCreate)
        .initial_value(4)
        .open(name.as_str())
        .unwrap();
    drop(creator);
    assert_eq!(
        Semaphore::open(name.as_str()).unwrap().value().unwrap(),
        4,
        "the creator's drop removed a semaphore it did not create"
    );
    drop(replacement);
}

#[test]
fn without_unlink_on_drop_the_name_outlives_the_creator() {
    let name = Name::new("keep");
    drop(Semaphore::create(name.as_str(), 3).unwrap());
    let reopened = Semaphore::open(name.as_str()).unwrap();
    assert_eq!(reopened.value().unwrap(), 3);
}

#[test]
fn unlink_removes_the_name_and_open_handles_keep_working() {
    let name = Name::new("unlink");
    let sem = Semaphore::create(name.as_str(), 1).unwrap();
    sem.unlink().unwrap();
    assert!(matches!(
        Semaphore::open(name.as_str()),
        Err(Error::NotFound { .. })
    ));
    assert!(sem.try_acquire().unwrap());
    sem.release().unwrap();
    assert_eq!(sem.value().unwrap(), 1);

    let err = sem.unlink().unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    let err = unlink(name.as_str()).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert_eq!(err.errno(), Some(libc::ENOENT));
    assert_eq!(err.name(), Some(name.as_str()));

    // The name is free for a new, separate semaphore.
    let fresh = Semaphore::create(name.as_str(), 0).unwrap();
    assert_eq!(fresh.value().unwrap(), 0);
    assert_eq!(sem.value().unwrap(), 1);
    unlink(name.as_str()).unwrap();
}

// ------------------------------------------------------------------ random

#[test]
fn create_random_gives_distinct_valid_names() {
    let mut guard = Name::new("random");
    let prefix = format!("/namedipc-rtest-{}-", std::process::id());
    let sems: Vec<Semaphore> = (0..16)
        .map(|_| {
            let sem = Semaphore::options()
                .initial_value(2)
                .create_random(&prefix)
                .unwrap();
            guard.track(sem.name());
            sem
        })
        .collect();
    let mut names: Vec<&str> = sems.iter().map(Semaphore::name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), sems.len(), "duplicate random names");
    for sem in &sems {
        assert!(sem.created());
        let suffix = sem.name().strip_prefix(prefix.as_str()).unwrap();
        assert_eq!(suffix.len(), 16, "{}", sem.name());
        assert!(
            suffix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
            "{}",
            sem.name()
        );
        // A real semaphore under that name, with the options' value.
        let other = Semaphore::open(sem.name()).unwrap();
        assert_eq!(other.value().unwrap(), 2);
        assert!(other.try_acquire().unwrap());
        assert_eq!(sem.value().unwrap(), 1);
    }
}

#[test]
fn errors_display_their_name() {
    let name = Name::new("display");
    let _sem = Semaphore::create(name.as_str(), 0).unwrap();
    let err = Semaphore::create(name.as_str(), 0).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(name.as_str()) && text.contains("already exists"),
        "{text}"
    );
}

// ------------------------------------------------------- kept mappings

/// How many mappings of the semaphore `name`'s file this process has.
fn mappings_of(name: &str) -> usize {
    let file = semaphore_file(name);
    let file = file.to_str().unwrap();
    fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|line| line.ends_with(file) || line.ends_with(&format!("{file} (deleted)")))
        .count()
}

/// Set, to a semaphore's name, in the child process that
/// [`a_reopen_uses_the_mapping_a_dropped_handle_left_and_shares_the_count`]
/// starts to run [`kept_mapping_child`].
const KEPT_CHILD: &str = "NAMEDIPC_KEPT_MAPPING_CHILD";

#[test]
fn a_reopen_uses_the_mapping_a_dropped_handle_left_and_shares_the_count() {
    // The kept mappings are the process's: another test's open or drop at
    // the same moment may hold their list (an open that finds it taken maps
    // afresh, by design: it never waits) or push this one out. So the check
    // runs alone, in a child process of this test binary.
    let name = Name::new("kept");
    let out = run_test_alone("kept_mapping_child", KEPT_CHILD, name.as_str());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("kept mapping: reused, count shared"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Run by the test above in a child process of its own, where no other
/// test touches the kept mappings; does nothing elsewhere.
#[test]
fn kept_mapping_child() {
    let Ok(name) = std::env::var(KEPT_CHILD) else {
        return;
    };
    let name = name.as_str();
    let creator = Semaphore::create(name, 0).unwrap();
    drop(Semaphore::open(name).unwrap());
    // The dropped opener's mapping, kept for reuse. (The creator's mapping
    // is of the file before it had the name: /proc shows it as `#inode`.)
    assert_eq!(mappings_of(name), 1);
    let again = Semaphore::open(name).unwrap();
    assert_eq!(mappings_of(name), 1, "the kept mapping was not reused");
    again.release().unwrap();
    assert_eq!(creator.value().unwrap(), 1);
    // A second handle open at the same time gets a mapping of its own.
    let beside = Semaphore::open(name).unwrap();
    assert_eq!(mappings_of(name), 2);
    assert!(beside.try_acquire().unwrap());
    assert_eq!(again.value().unwrap(), 0);
    println!("kept mapping: reused, count shared");
}

#[test]
fn a_new_semaphore_at_the_name_is_not_served_by_a_mapping_of_the_old() {
    let name = Name::new("kept-new");
    let old = Semaphore::create(name.as_str(), 5).unwrap();
    drop(Semaphore::open(name.as_str()).unwrap());
    old.unlink().unwrap();
    let new = Semaphore::create(name.as_str(), 0).unwrap();
    let opened = Semaphore::open(name.as_str()).unwrap();
    assert_eq!(opened.value().unwrap(), 0);
    opened.release().unwrap();
    assert_eq!(new.value().unwrap(), 1);
    assert_eq!(old.value().unwrap(), 5);
}

#[test]
fn at_most_eight_dropped_mappings_are_kept() {
    let names: Vec<Name> = (0..20).map(|i| Name::new(&format!("kept-{i}"))).collect();
    let creators: Vec<Semaphore> = names
        .iter()
        .map(|name| Semaphore::create(name.as_str(), 0).unwrap())
        .collect();
    for name in &names {
        drop(Semaphore::open(name.as_str()).unwrap());
    }
    // At most eight of the dropped ones are still mapped (fewer if other
    // tests' drops pushed some out).
    let mapped: usize = names.iter().map(|name| mappings_of(name.as_str())).sum();
    assert!(mapped <= 8, "{mapped} mappings of 20 dropped handles");
    drop(creators);
}
