//! Opening a name while another process keeps putting different files at
//! it: too short, empty, too long, garbage, a directory, a symbolic link, a
//! FIFO, a socket, a good object. Each open must give a working handle or a
//! clear error (Corrupt for what is not an object of the kind, NotFound in
//! the instant the name is empty), never a crash: the file that is checked
//! must be the file that is mapped. The placed files are never changed
//! once placed; a process writing into a mapped file is another matter.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use namedipc::{Error, Existence, Semaphore, SharedMemory};

mod common;
use common::{segment_file, semaphore_file, WAIT};

const SWAPPER_ENV: &str = "NAMEDIPC_SWAPPER";

/// How long the opening side keeps at it, at most; it stops earlier once it
/// has made [`OPENS`] opens and seen both a handle and a Corrupt error.
const DEADLINE: Duration = Duration::from_secs(20);
const OPENS: usize = 3000;

/// What the swapper puts at the name, in turn.
const VARIANTS: [&str; 10] = [
    "good",
    "empty",
    "short",
    "long",
    "garbage",
    "foreign",
    "directory",
    "symlink",
    "fifo",
    "socket",
];

/// Not a test on its own: when run as the swapper (`SWAPPER_ENV` =
/// `sem:PATH` or `shm:PATH`), puts one file after another at PATH by
/// rename(2), says `READY` after the first, and stops when its stdin closes.
#[test]
fn swapper_process() {
    let Ok(spec) = std::env::var(SWAPPER_ENV) else {
        return;
    };
    let (kind, path) = spec.split_once(':').expect("swapper: KIND:PATH");
    let path = PathBuf::from(path);
    let stop = Arc::new(AtomicBool::new(false));
    let stopper = Arc::clone(&stop);
    thread::spawn(move || {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        stopper.store(true, Ordering::Release);
    });
    let started = Instant::now();
    let mut fifos = Vec::new();
    for i in 0.. {
        if stop.load(Ordering::Acquire) || started.elapsed() > DEADLINE + WAIT {
            break;
        }
        let variant = VARIANTS[i % VARIANTS.len()];
        let temp = sibling(&path, &format!("swap-{i}"));
        if variant == "fifo" && fifos.is_empty() {
            fifos = make_fifos(&path, i);
        }
        match variant {
            "fifo" => fs::rename(fifos.pop().unwrap(), &temp).unwrap(),
            _ => make(kind, variant, &path, &temp),
        }
        place(&temp, &path);
        if i == 0 {
            println!("READY");
            std::io::stdout().flush().unwrap();
        }
    }
    for fifo in fifos {
        let _ = fs::remove_file(fifo);
    }
    remove_any(&path);
    let _ = fs::remove_file(sibling(&path, "target"));
}

/// A path next to `path` in /dev/shm, unique to it.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{suffix}"));
    PathBuf::from(name)
}

/// A batch of FIFOs made by one mkfifo, as std makes none.
fn make_fifos(path: &Path, batch: usize) -> Vec<PathBuf> {
    let fifos: Vec<PathBuf> = (0..64)
        .map(|j| sibling(path, &format!("fifo-{batch}-{j}")))
        .collect();
    let status = Command::new("mkfifo").args(&fifos).status().unwrap();
    assert!(status.success(), "swapper: mkfifo failed");
    fifos
}

/// A semaphore's file as glibc writes one: value 1, shared.
fn good_semaphore() -> Vec<u8> {
    let mut bytes = vec![0u8; 32];
    bytes[0] = 1;
    bytes[8] = 128;
    bytes
}

/// Makes the file `variant` at `temp`.
fn make(kind: &str, variant: &str, path: &Path, temp: &Path) {
    let good = if kind == "sem" {
        good_semaphore()
    } else {
        vec![0u8; 4096]
    };
    let mut foreign = good_semaphore();
    foreign[8] = 5;
    match variant {
        "good" => fs::write(temp, good).unwrap(),
        "empty" => fs::write(temp, b"").unwrap(),
        "short" => fs::write(temp, [0u8; 7]).unwrap(),
        "long" => fs::write(temp, [0u8; 64]).unwrap(),
        "garbage" => fs::write(temp, [0xffu8; 32]).unwrap(),
        "foreign" => fs::write(temp, foreign).unwrap(),
        "directory" => fs::create_dir(temp).unwrap(),
        "symlink" => {
            let target = sibling(path, "target");
            if !target.exists() {
                fs::write(&target, good).unwrap();
            }
            std::os::unix::fs::symlink(&target, temp).unwrap();
        }
        "socket" => drop(UnixListener::bind(temp).unwrap()),
        other => unreachable!("{other}"),
    }
}

/// Renames `temp` over `path`. A directory and a file cannot replace each
/// other, so then what is at `path` goes first (the name is empty for an
/// instant), again if the opening side created a semaphore there meanwhile.
fn place(temp: &Path, path: &Path) {
    for _ in 0..1000 {
        if fs::rename(temp, path).is_ok() {
            return;
        }
        remove_any(path);
    }
    panic!(
        "swapper: could not put {} at {}",
        temp.display(),
        path.display()
    );
}

fn remove_any(path: &Path) {
    if fs::remove_file(path).is_err() {
        let _ = fs::remove_dir(path);
    }
}

/// The swapper, stopped and waited for (or killed) when dropped.
struct Swapper {
    child: Child,
    path: PathBuf,
}

impl Swapper {
    fn start(kind: &str, path: PathBuf) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "swapper_process",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(SWAPPER_ENV, format!("{kind}:{}", path.display()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn swapper");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // libtest writes "test swapper_process ... " before it, without a newline.
        let ready = lines
            .by_ref()
            .map_while(Result::ok)
            .any(|line| line.ends_with("READY"));
        assert!(ready, "the swapper exited before placing a file");
        thread::spawn(move || lines.for_each(drop));
        Self { child, path }
    }
}

impl Drop for Swapper {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + WAIT;
        while self.child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            thread::sleep(Duration::from_millis(5));
        }
        remove_any(&self.path);
        let _ = fs::remove_file(sibling(&self.path, "target"));
    }
}

/// What the opens gave.
#[derive(Debug, Default)]
struct Outcomes {
    handles: usize,
    corrupt: usize,
    not_found: usize,
}

impl Outcomes {
    /// Runs `open_once` until enough of each outcome was seen, or the deadline.
    fn collect(mut open_once: impl FnMut(&mut Self)) -> Self {
        let mut outcomes = Self::default();
        let started = Instant::now();
        for opens in 1.. {
            open_once(&mut outcomes);
            let enough = opens >= OPENS && outcomes.handles > 0 && outcomes.corrupt > 0;
            if enough || started.elapsed() > DEADLINE {
                break;
            }
        }
        outcomes
    }

    /// A failed open: Corrupt (its reason one of those a bad file gets) or,
    /// while the name is empty for an instant, NotFound.
    fn error(&mut self, err: &Error) {
        match err {
            Error::Corrupt { reason, .. } => {
                let known = [
                    "bytes long",
                    "not a regular file",
                    "directory",
                    "symbolic link",
                    "does not hold a valid semaphore",
                ];
                assert!(known.iter().any(|k| reason.contains(k)), "{err}");
                self.corrupt += 1;
            }
            Error::NotFound { .. } => self.not_found += 1,
            other => panic!("an open gave neither a handle nor a clear error: {other:?}"),
        }
    }
}

#[test]
fn a_semaphore_swapped_during_opens_is_a_handle_or_corrupt() {
    let name = common::Name::<common::Semaphores>::new("swap");
    let _swapper = Swapper::start("sem", semaphore_file(name.as_str()));
    for existence in [Existence::RaiseIfNotExists, Existence::LinkOrCreate] {
        let options = Semaphore::options().existence(existence);
        let outcomes = Outcomes::collect(|outcomes| match options.open(name.as_str()) {
            Ok(sem) => {
                // A good semaphore: it works.
                let value = sem.value().unwrap();
                assert!(value <= namedipc::semaphore::VALUE_MAX, "{value}");
                if sem.try_acquire().unwrap() {
                    sem.release().unwrap();
                }
                outcomes.handles += 1;
            }
            Err(err) => outcomes.error(&err),
        });
        assert!(
            outcomes.handles > 0 && outcomes.corrupt > 0,
            "{existence:?}: {outcomes:?}"
        );
    }
}

#[test]
fn a_segment_swapped_during_opens_is_a_handle_or_corrupt() {
    let name = common::Name::<common::Segments>::new("swap");
    let _swapper = Swapper::start("shm", segment_file(name.as_str()));
    let outcomes = Outcomes::collect(|outcomes| {
        match SharedMemory::options()
            .existence(Existence::RaiseIfNotExists)
            .open(name.as_str())
        {
            Ok(shm) => {
                // A regular file of any length is a segment, every byte of
                // which can be read.
                let size = shm.size().unwrap();
                if size > 0 {
                    let mapping = shm.map().unwrap();
                    assert_eq!(mapping.len() as u64, size);
                    let sum: u64 = mapping.iter().map(|&b| u64::from(b)).sum();
                    assert!(sum <= 255 * size);
                }
                outcomes.handles += 1;
            }
            Err(err) => outcomes.error(&err),
        }
    });
    assert!(outcomes.handles > 0 && outcomes.corrupt > 0, "{outcomes:?}");
}
