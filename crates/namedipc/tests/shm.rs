//! Integration tests of shared memory segments through the public API only,
//! on real kernel objects, with independent processes (`cat`, `dd`) reading
//! and writing the same segment. Every name is unique (pid + random) and is
//! removed by a guard when the test ends, pass or fail.

use std::fs;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::mpsc;
use std::thread;

use namedipc::shm::{unlink, SharedMemory, SharedMemoryOptions, MAX_SIZE};
use namedipc::{Error, Existence};

mod common;
use common::{segment_file, WAIT};

type Name = common::Name<common::Segments>;

impl Name {
    fn path(&self) -> PathBuf {
        segment_file(self.as_str())
    }
}

fn opts(existence: Existence) -> SharedMemoryOptions {
    SharedMemory::options().existence(existence)
}

// ---------------------------------------------------------------- existence

#[test]
fn create_then_open_sees_the_same_segment() {
    let name = Name::new("basic");
    let shm = SharedMemory::create(name.as_str(), 4096).unwrap();
    assert!(shm.created() && !shm.read_only());
    assert_eq!(shm.name(), name.as_str());
    assert_eq!(shm.size().unwrap(), 4096);
    assert_eq!(fs::metadata(name.path()).unwrap().len(), 4096);

    let other = SharedMemory::open(name.as_str()).unwrap();
    assert!(!other.created());
    assert_eq!(other.size().unwrap(), 4096);
}

#[test]
fn raise_if_exists_on_a_taken_name_is_already_exists() {
    let name = Name::new("taken");
    let _first = SharedMemory::create(name.as_str(), 1).unwrap();
    let err = SharedMemory::create(name.as_str(), 1).unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    assert_eq!(err.errno(), Some(libc::EEXIST));
    assert!(err.to_string().contains(name.as_str()), "{err}");
}

#[test]
fn raise_if_not_exists_on_a_missing_name_is_not_found() {
    let name = Name::new("missing");
    let err = SharedMemory::open(name.as_str()).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert!(
        err.to_string().starts_with(&format!(
            "shared memory segment '{}' does not exist",
            name.as_str()
        )),
        "{err}"
    );
    assert!(!name.path().exists());
}

#[test]
fn link_or_create_creates_once_then_links() {
    let name = Name::new("link");
    let first = opts(Existence::LinkOrCreate)
        .size(10)
        .open(name.as_str())
        .unwrap();
    first.map().unwrap(); // mapping does not change anything
    let second = opts(Existence::LinkOrCreate).open(name.as_str()).unwrap();
    assert!(first.created() && !second.created());
    assert_eq!(second.size().unwrap(), 10);
}

#[test]
fn unlink_and_create_replaces_the_segment() {
    let name = Name::new("replace");
    let mut old = SharedMemory::create(name.as_str(), 4).unwrap();
    old.map_mut().unwrap().copy_from_slice(b"old!");
    let new = opts(Existence::UnlinkAndCreate)
        .size(4)
        .open(name.as_str())
        .unwrap();
    assert!(new.created());
    assert_eq!(&new.map().unwrap()[..], &[0; 4]);
    // The old handle still has its own, now nameless, segment.
    assert_eq!(&old.map().unwrap()[..], b"old!");
}

#[test]
fn create_random_picks_distinct_valid_names() {
    let mut name = Name::new("unused");
    let a = SharedMemory::options()
        .size(8)
        .create_random("/namedipc-rtest-rand-")
        .unwrap();
    name.track(a.name());
    let b = SharedMemory::options()
        .create_random("/namedipc-rtest-rand-")
        .unwrap();
    name.track(b.name());
    assert_ne!(a.name(), b.name());
    assert!(a.created() && segment_file(a.name()).exists());
    assert_eq!((a.size().unwrap(), b.size().unwrap()), (8, 0));
}

// ---------------------------------------------------------------- sizes

#[test]
fn size_resizes_new_and_existing_segments() {
    let name = Name::new("resize");
    let mut shm = SharedMemory::create(name.as_str(), 100).unwrap();
    shm.map_mut().unwrap()[99] = 7;
    // An existing segment opened with a size grows or shrinks to it.
    let grown = opts(Existence::RaiseIfNotExists)
        .size(200)
        .open(name.as_str())
        .unwrap();
    assert_eq!(shm.size().unwrap(), 200);
    assert_eq!(grown.map().unwrap()[99], 7, "growing keeps the bytes");
    shm.resize(50).unwrap();
    assert_eq!(grown.size().unwrap(), 50);
    shm.resize(100).unwrap();
    assert_eq!(
        shm.map().unwrap()[99],
        0,
        "bytes cut off by a shrink come back as zeros"
    );
}

#[test]
fn truncate_empties_an_existing_segment() {
    let name = Name::new("trunc");
    let shm = SharedMemory::create(name.as_str(), 64).unwrap();
    let again = opts(Existence::RaiseIfNotExists)
        .truncate(true)
        .open(name.as_str())
        .unwrap();
    assert_eq!((shm.size().unwrap(), again.size().unwrap()), (0, 0));
    let resized = opts(Existence::RaiseIfNotExists)
        .truncate(true)
        .size(5)
        .open(name.as_str())
        .unwrap();
    assert_eq!(resized.size().unwrap(), 5);
}

#[test]
fn the_largest_size_off_t_holds_is_accepted_and_one_more_is_not() {
    let name = Name::new("huge");
    // tmpfs files are sparse: this allocates nothing.
    let mut shm = SharedMemory::create(name.as_str(), MAX_SIZE).unwrap();
    assert_eq!(shm.size().unwrap(), MAX_SIZE);
    let err = shm.resize(MAX_SIZE + 1).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    assert!(
        err.to_string().contains("size must be between 0 and"),
        "{err}"
    );
    assert_eq!(shm.size().unwrap(), MAX_SIZE);
    // Mapping 8 EiB cannot work; it must fail cleanly.
    let err = shm.map().unwrap_err();
    assert!(
        matches!(
            err,
            Error::Os {
                operation: "mmap",
                ..
            }
        ),
        "{err}"
    );
    shm.resize(0).unwrap();

    let err = SharedMemory::create(&format!("{}-x", name.as_str()), MAX_SIZE + 1).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
}

#[test]
fn a_size_with_read_only_access_is_refused_and_leaves_the_segment_alone() {
    // posix_ipc removes the segment in this case, even one another process
    // created and uses.
    let name = Name::new("ro-size");
    let mut creator = SharedMemory::create(name.as_str(), 16).unwrap();
    creator.map_mut().unwrap()[0] = 1;
    let err = opts(Existence::RaiseIfNotExists)
        .read_only(true)
        .size(32)
        .open(name.as_str())
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    assert!(err.to_string().contains("read-only"), "{err}");
    assert!(name.path().exists());
    assert_eq!(creator.size().unwrap(), 16);
    assert_eq!(creator.map().unwrap()[0], 1);

    let mut reader = opts(Existence::RaiseIfNotExists)
        .read_only(true)
        .open(name.as_str())
        .unwrap();
    assert!(reader.read_only());
    let err = reader.resize(1).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    let err = reader.map_mut().unwrap_err();
    assert!(err.to_string().contains("opened read-only"), "{err}");
    assert_eq!(reader.map().unwrap()[0], 1);
}

// ---------------------------------------------------------------- mappings

#[test]
fn a_mapping_sees_writes_through_another_handle_at_once() {
    let name = Name::new("share");
    let mut writer = SharedMemory::create(name.as_str(), 8).unwrap();
    let reader = SharedMemory::open(name.as_str()).unwrap();
    let view = reader.map().unwrap();
    writer.map_mut().unwrap()[..4].copy_from_slice(b"abcd");
    assert_eq!(&view[..4], b"abcd");
}

#[test]
fn an_empty_segment_maps_to_an_empty_slice() {
    let name = Name::new("empty");
    let mut shm = SharedMemory::create(name.as_str(), 0).unwrap();
    assert!(shm.map().unwrap().is_empty());
    assert!(shm.map_mut().unwrap().is_empty());
}

#[test]
fn a_mapping_made_before_unlink_keeps_working() {
    let name = Name::new("unlinked");
    let mut shm = SharedMemory::create(name.as_str(), 3).unwrap();
    let mut bytes = shm.map_mut().unwrap();
    unlink(name.as_str()).unwrap();
    bytes.copy_from_slice(b"xyz");
    assert_eq!(&bytes[..], b"xyz");
    assert!(matches!(unlink(name.as_str()), Err(Error::NotFound { .. })));
}

#[test]
fn another_process_reads_what_a_mapping_wrote() {
    let name = Name::new("cat");
    let mut shm = SharedMemory::create(name.as_str(), 11).unwrap();
    shm.map_mut().unwrap().copy_from_slice(b"from rust!\n");
    let out = Command::new("cat").arg(name.path()).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, b"from rust!\n");
}

#[test]
fn a_mapping_sees_what_another_process_wrote() {
    let name = Name::new("dd");
    let shm = SharedMemory::create(name.as_str(), 16).unwrap();
    let view = shm.map().unwrap();
    let status = Command::new("sh")
        .arg("-c")
        .arg(r#"printf 'from sh' | dd of="$1" bs=1 seek=4 conv=notrunc status=none"#)
        .arg("sh")
        .arg(name.path())
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(&view[4..11], b"from sh");
    assert_eq!(shm.size().unwrap(), 16, "conv=notrunc keeps the size");
}

#[test]
fn the_file_descriptor_is_the_segment() {
    let name = Name::new("fd");
    let shm = SharedMemory::create(name.as_str(), 21).unwrap();
    assert!(shm.as_raw_fd() >= 0);
    let dup = fs::File::from(shm.as_fd().try_clone_to_owned().unwrap());
    assert_eq!(dup.metadata().unwrap().len(), 21);
    let owned = fs::File::from(OwnedFd::from(shm));
    assert_eq!(owned.metadata().unwrap().len(), 21);
}

// ---------------------------------------------------------------- bad input

#[test]
fn bad_names_are_rejected_with_the_rule() {
    for bad in ["", "/", "/a/b", "/a\0b", &format!("/{}", "x".repeat(256))] {
        let err = SharedMemory::options().open(bad).unwrap_err();
        assert!(matches!(err, Error::InvalidName { .. }), "{bad:?}: {err}");
        assert!(
            err.to_string().contains("followed by 1 to 255 bytes"),
            "{err}"
        );
    }
}

#[test]
fn a_mode_beyond_permission_bits_is_rejected() {
    let name = Name::new("mode");
    let err = SharedMemory::options()
        .mode(0o10000)
        .open(name.as_str())
        .unwrap_err();
    assert!(err.to_string().contains("0o7777"), "{err}");
    assert!(!name.path().exists());
}

#[test]
fn mode_bits_reach_the_file() {
    let name = Name::new("perm");
    let _shm = SharedMemory::options()
        .mode(0o600)
        .open(name.as_str())
        .unwrap();
    let mode = fs::metadata(name.path()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn a_directory_at_the_name_is_reported_not_opened() {
    let name = Name::new("dir");
    fs::create_dir(name.path()).unwrap();
    for read_only in [false, true] {
        for existence in [Existence::RaiseIfNotExists, Existence::LinkOrCreate] {
            let err = opts(existence)
                .read_only(read_only)
                .open(name.as_str())
                .unwrap_err();
            assert!(matches!(err, Error::Corrupt { .. }), "{err}");
            assert!(err.to_string().contains("directory"), "{err}");
        }
    }
}

#[test]
fn a_symbolic_link_at_the_name_is_reported_not_followed() {
    let name = Name::new("link");
    let target = Name::new("target");
    fs::write(target.path(), b"secret").unwrap();
    std::os::unix::fs::symlink(target.path(), name.path()).unwrap();
    let err = SharedMemory::open(name.as_str()).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("symbolic link"), "{err}");
}

#[test]
fn a_fifo_at_the_name_is_reported_without_blocking() {
    let name = Name::new("fifo");
    let status = Command::new("mkfifo").arg(name.path()).status().unwrap();
    assert!(status.success());
    // Opening a FIFO for reading blocks until a writer comes; should that
    // regress, the open hangs in a thread and the test fails in bounded time.
    let (tx, rx) = mpsc::channel();
    let fifo = name.as_str().to_owned();
    thread::spawn(move || {
        let _ = tx.send(
            opts(Existence::RaiseIfNotExists)
                .read_only(true)
                .open(&fifo),
        );
    });
    let err = rx
        .recv_timeout(WAIT)
        .expect("opening a FIFO at the name blocked")
        .unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("a FIFO"), "{err}");
}

#[test]
fn an_open_that_trusts_anyone_finds_a_fifo_or_directory_at_first_use() {
    // Such an open (posix_ipc's) reads nothing of the file; the first call
    // that needs it checks what it is, and says so, every time.
    let fifo = Name::new("fifo-anyone");
    let status = Command::new("mkfifo").arg(fifo.path()).status().unwrap();
    assert!(status.success());
    let dir = Name::new("dir-anyone");
    fs::create_dir(dir.path()).unwrap();
    for (name, what) in [(&fifo, "a FIFO"), (&dir, "a directory")] {
        let shm = opts(Existence::RaiseIfNotExists)
            .trust(namedipc::Trust::anyone())
            .read_only(true)
            .open(name.as_str())
            .unwrap();
        for _ in 0..2 {
            for err in [
                shm.size().unwrap_err(),
                shm.owner().unwrap_err(),
                shm.map().unwrap_err(),
            ] {
                assert!(matches!(err, Error::Corrupt { .. }), "{err}");
                assert!(err.to_string().contains(what), "{err}");
            }
        }
    }
}

#[test]
fn an_open_that_trusts_anyone_reads_the_owner_when_first_asked() {
    let name = Name::new("lazy-owner");
    let made = SharedMemory::create(name.as_str(), 16).unwrap();
    let opened = opts(Existence::RaiseIfNotExists)
        .trust(namedipc::Trust::anyone())
        .open(name.as_str())
        .unwrap();
    // Changed after the open and before the first ask: the ask sees it.
    fs::set_permissions(name.path(), fs::Permissions::from_mode(0o640)).unwrap();
    assert_eq!(opened.owner().unwrap().mode, 0o640);
    fs::set_permissions(name.path(), fs::Permissions::from_mode(0o604)).unwrap();
    assert_eq!(
        opened.owner().unwrap().mode,
        0o640,
        "kept from the first ask"
    );
    // An open with a trust check read it at open.
    assert_eq!(made.owner().unwrap().mode, 0o600);
    assert_eq!(opened.size().unwrap(), 16);
}
