//! RedisSemaphore against a real redis-server, which each test starts on a
//! free loopback port of its own and stops when it ends (pass or fail).
#![cfg(feature = "redis")]

#[path = "common/redis_server.rs"]
mod redis_server;

use std::collections::HashSet;
use std::io::Write;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use namedipc::redis::{self, RedisSemaphore};
use namedipc::{Error, ObjectKind};
use redis_server::{ChildGuard, Config, Lines, Proxy, RedisServer};

/// Upper bound for waits only a bug makes long.
const WAIT: Duration = Duration::from_secs(10);

/// A name no other test uses.
fn unique(what: &str) -> String {
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "/namedipc-test-{what}-{}-{}",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::SeqCst)
    )
}

fn open(server: &RedisServer, name: &str, slots: u32, lease: Duration) -> RedisSemaphore {
    RedisSemaphore::options()
        .url(&server.url())
        .initial_value(slots)
        .lease(lease)
        .connect_timeout(Duration::from_secs(2))
        .open(name)
        .unwrap()
}

#[test]
fn acquire_release_try_and_timeout() {
    let server = RedisServer::start();
    let name = unique("basic");
    let sem = open(&server, &name, 2, Duration::from_secs(10));
    assert!(sem.created());
    assert_eq!(sem.name(), name);
    assert_eq!(sem.slots(), 2);
    assert_eq!(sem.value().unwrap(), 2);

    let a = sem.acquire().unwrap();
    let b = sem.try_acquire().unwrap().expect("a second slot is free");
    assert_ne!(a.slot, b.slot);
    assert!(b.fence > a.fence);
    assert_eq!(sem.value().unwrap(), 0);
    assert_eq!(sem.held(), vec![a, b]);
    assert!(sem.try_acquire().unwrap().is_none());

    let started = Instant::now();
    assert!(sem
        .acquire_timeout(Duration::from_millis(300))
        .unwrap()
        .is_none());
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    assert!(waited < Duration::from_secs(2), "{waited:?}");

    sem.release(a).unwrap();
    assert_eq!(sem.value().unwrap(), 1);
    // The lowest free slot is given.
    let c = sem.acquire().unwrap();
    assert_eq!(c.slot, a.slot);
    assert!(c.fence > b.fence);
    sem.release(b).unwrap();
    sem.release(c).unwrap();
    assert_eq!(sem.value().unwrap(), 2);
    assert!(sem.held().is_empty());

    // A grant released twice, or never held: NotHeld, nothing freed.
    match sem.release(c) {
        Err(Error::NotHeld { kind, name: n }) => {
            assert_eq!(kind, ObjectKind::RedisSemaphore);
            assert_eq!(n, name);
        }
        other => panic!("expected NotHeld, got {other:?}"),
    }
    assert!(!sem.is_closed());
    sem.close();
    assert!(sem.is_closed());
    assert!(matches!(sem.acquire(), Err(Error::Closed { .. })));
    assert!(matches!(sem.value(), Err(Error::Closed { .. })));
    sem.close();
}

#[test]
fn an_existing_semaphore_keeps_its_slot_count() {
    let server = RedisServer::start();
    let name = unique("slots");
    let first = open(&server, &name, 3, Duration::from_secs(10));
    let second = open(&server, &name, 1, Duration::from_secs(10));
    assert!(first.created());
    assert!(!second.created());
    assert_eq!(second.slots(), 3);
    let grants: Vec<_> = (0..3)
        .map(|_| second.try_acquire().unwrap().unwrap())
        .collect();
    let slots: HashSet<u32> = grants.iter().map(|g| g.slot).collect();
    assert_eq!(slots, HashSet::from([0, 1, 2]));
    assert!(first.try_acquire().unwrap().is_none());
    assert_eq!(first.value().unwrap(), 0);
}

#[test]
fn bad_arguments_say_what_is_allowed() {
    let server = RedisServer::start();
    let url = server.url();
    let message = |r: namedipc::Result<RedisSemaphore>| match r {
        Err(e @ (Error::InvalidArgument(_) | Error::InvalidName { .. })) => e.to_string(),
        other => panic!("expected an invalid argument, got {other:?}"),
    };
    let m = message(
        RedisSemaphore::options()
            .url(&url)
            .initial_value(0)
            .open("/x"),
    );
    assert!(m.contains("1 to"), "{m}");
    let m = message(
        RedisSemaphore::options()
            .url(&url)
            .lease(Duration::ZERO)
            .open("/x"),
    );
    assert!(m.contains("lease"), "{m}");
    let m = message(RedisSemaphore::options().url(&url).open("/a/b"));
    assert!(m.contains("'/'"), "{m}");
    let m = message(
        RedisSemaphore::options()
            .url("http://:hunter2@host/0")
            .open("/x"),
    );
    assert!(m.contains("redis://") && !m.contains("hunter2"), "{m}");
    let m = message(
        RedisSemaphore::options()
            .url(&url)
            .connect_timeout(Duration::ZERO)
            .open("/x"),
    );
    assert!(m.contains("connect timeout"), "{m}");
}

#[test]
fn fences_increase_across_a_restart_that_lost_everything() {
    let mut server = RedisServer::start();
    let name = unique("fence");
    let sem = open(&server, &name, 1, Duration::from_secs(10));
    let mut last = 0;
    for _ in 0..20 {
        let g = sem.acquire().unwrap();
        assert!(g.fence > last, "{} after {last}", g.fence);
        last = g.fence;
        sem.release(g).unwrap();
    }
    server.restart();
    // The handle reconnects by itself; the semaphore is made again with
    // the handle's slot count and the fence goes on from server time.
    let g = sem.acquire().unwrap();
    assert!(
        g.fence > last,
        "{} after the restart, {last} before",
        g.fence
    );
    sem.release(g).unwrap();
    assert_eq!(sem.value().unwrap(), 1);
}

#[test]
fn a_resend_after_a_lost_reply_takes_no_second_slot() {
    let server = RedisServer::start();
    let proxy = Proxy::to(server.port());
    let name = unique("resend");
    let url = format!("redis://127.0.0.1:{}/0", proxy.port());
    let sem = RedisSemaphore::options()
        .url(&url)
        .initial_value(2)
        .open(&name)
        .unwrap();
    // The server grants, the reply is lost with the connection; the
    // handle resends the same holder id on a new connection.
    proxy.drop_next_reply();
    let grant = sem.acquire().unwrap();
    assert!(proxy.accepted() >= 2, "the handle made a new connection");
    let holders = sem.holders().unwrap();
    assert_eq!(holders.len(), 1, "{holders:?}");
    assert_eq!(holders[0].fence, grant.fence);
    assert_eq!(sem.value().unwrap(), 1);
    // A release whose reply is lost is resent, finds the slot freed by the
    // first, and says so (not LeaseLost).
    proxy.drop_next_reply();
    sem.release(grant).unwrap();
    assert_eq!(sem.value().unwrap(), 2);
}

#[test]
fn holders_list_info_and_unlink() {
    let server = RedisServer::start();
    let url = server.url();
    let name = unique("inventory");
    let other = unique("inventory-other");
    let lease = Duration::from_millis(600);
    let sem = open(&server, &name, 2, lease);
    let _other = open(&server, &other, 1, lease);
    let g = sem.acquire().unwrap();
    let holders = sem.holders().unwrap();
    assert_eq!(holders.len(), 1);
    let h = &holders[0];
    assert_eq!(h.pid, std::process::id());
    assert_eq!((h.fence, h.slot), (g.fence, g.slot));
    assert!(
        h.expires_in <= lease && h.expires_in > Duration::ZERO,
        "{:?}",
        h.expires_in
    );
    assert!(!h.host.is_empty());
    let age = std::time::SystemTime::now()
        .duration_since(h.since)
        .unwrap_or_default();
    assert!(age < Duration::from_secs(5), "{age:?}");

    let all = redis::list(&url, WAIT).unwrap();
    let names: Vec<&str> = all.iter().map(|i| i.name.as_str()).collect();
    assert!(
        names.contains(&name.as_str()) && names.contains(&other.as_str()),
        "{names:?}"
    );
    let info = redis::info(&url, &name, WAIT).unwrap();
    assert_eq!((info.slots, info.value, info.holders.len()), (2, 1, 1));
    assert!(matches!(
        redis::info(&url, &unique("missing"), WAIT),
        Err(Error::NotFound {
            kind: ObjectKind::RedisSemaphore,
            ..
        })
    ));

    redis::unlink(&url, &name, WAIT).unwrap();
    assert!(matches!(
        redis::info(&url, &name, WAIT),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        redis::unlink(&url, &name, WAIT),
        Err(Error::NotFound { .. })
    ));
    assert_eq!(server.cli(&["KEYS", &format!("namedipc:{{{name}}}:*")]), "");
    // The holder learns at its next renewal (lease/3) that it lost.
    let deadline = Instant::now() + lease + WAIT;
    while !sem.is_lost(g) {
        assert!(Instant::now() < deadline, "the holder never saw its loss");
        thread::sleep(Duration::from_millis(10));
    }
    assert!(matches!(sem.release(g), Err(Error::LeaseLost { .. })));
}

#[test]
fn keep_alive_renews_a_lease_held_long() {
    let server = RedisServer::start();
    let name = unique("renew");
    let lease = Duration::from_millis(300);
    let sem = open(&server, &name, 1, lease);
    let other = open(&server, &name, 1, lease);
    let g = sem.acquire().unwrap();
    // Four leases long, another handle never gets in and the grant stays.
    assert!(other.acquire_timeout(lease * 4).unwrap().is_none());
    assert!(!sem.is_lost(g));
    sem.release(g).unwrap();
    assert!(other.try_acquire().unwrap().is_some());
}

#[test]
fn a_release_wakes_a_waiter_at_once() {
    let server = RedisServer::start();
    let name = unique("wake");
    let holder = Arc::new(open(&server, &name, 1, Duration::from_secs(30)));
    let waiter = open(&server, &name, 1, Duration::from_secs(30));
    let g = holder.acquire().unwrap();
    let barrier = Arc::new(Barrier::new(2));
    let releaser = {
        let (holder, barrier) = (holder.clone(), barrier.clone());
        thread::spawn(move || {
            barrier.wait();
            thread::sleep(Duration::from_millis(200));
            let at = Instant::now();
            holder.release(g).unwrap();
            at
        })
    };
    barrier.wait();
    let got = waiter
        .acquire_timeout(WAIT)
        .unwrap()
        .expect("woken by the release");
    let woke = Instant::now();
    let release_at = releaser.join().unwrap();
    // Long before any lease could run out: the release pushed the wake-up.
    assert!(
        woke.duration_since(release_at) < Duration::from_millis(500),
        "{:?}",
        woke - release_at
    );
    assert!(got.fence > g.fence);
}

#[test]
fn many_waiters_share_few_slots_without_over_admission() {
    let server = RedisServer::start();
    let name = unique("crowd");
    let slots = 2;
    let inside = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..6)
        .map(|_| {
            let sem = open(&server, &name, slots, Duration::from_secs(10));
            let (inside, most) = (inside.clone(), most.clone());
            thread::spawn(move || {
                for _ in 0..10 {
                    let g = sem
                        .acquire_timeout(WAIT)
                        .unwrap()
                        .expect("a slot within the bound");
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    thread::sleep(Duration::from_millis(2));
                    inside.fetch_sub(1, Ordering::SeqCst);
                    sem.release(g).unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    assert!(most.load(Ordering::SeqCst) <= slots as usize);
    let check = open(&server, &name, slots, Duration::from_secs(10));
    assert_eq!(check.value().unwrap(), slots);
}

#[test]
fn acquire_while_stopped_leaves_no_slot_and_checks_often() {
    let server = RedisServer::start();
    let name = unique("stop");
    let holder = open(&server, &name, 1, Duration::from_secs(30));
    let waiter = open(&server, &name, 1, Duration::from_secs(30));
    let g = holder.acquire().unwrap();
    let before = server.cli(&["INFO", "commandstats"]);
    let mut calls = Vec::new();
    let started = Instant::now();
    let result = waiter.acquire_while(Some(WAIT), &mut || {
        calls.push(Instant::now());
        calls.len() < 10
    });
    assert!(
        matches!(
            result,
            Err(Error::Interrupted {
                kind: ObjectKind::RedisSemaphore,
                ..
            })
        ),
        "{result:?}"
    );
    let mut previous = started;
    for at in &calls {
        assert!(
            at.duration_since(previous) < Duration::from_millis(150),
            "{:?}",
            at.duration_since(previous)
        );
        previous = *at;
    }
    // Checking keep_waiting sent nothing: about half a second of waiting
    // cost one acquire attempt and one BLPOP (and the leave on stopping).
    let after = server.cli(&["INFO", "commandstats"]);
    let count = |stats: &str, cmd: &str| -> u64 {
        stats
            .lines()
            .find(|l| l.starts_with(&format!("cmdstat_{cmd}:")))
            .and_then(|l| l.split("calls=").nth(1))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    assert!(
        count(&after, "blpop") - count(&before, "blpop") <= 1,
        "{after}"
    );
    assert!(
        count(&after, "evalsha") - count(&before, "evalsha") <= 6,
        "{after}"
    );
    holder.release(g).unwrap();
    assert_eq!(waiter.value().unwrap(), 1);
    assert!(waiter.held().is_empty());
    assert!(waiter.holders().unwrap().is_empty());
    assert!(waiter.try_acquire().unwrap().is_some());
}

#[test]
fn ping_times_a_round_trip_on_the_handles_connection() {
    let mut server = RedisServer::start();
    let proxy = Proxy::to(server.port());
    let name = unique("ping");
    let sem = RedisSemaphore::options()
        .url(&format!("redis://127.0.0.1:{}/0", proxy.port()))
        .connect_timeout(Duration::from_millis(500))
        .open(&name)
        .unwrap();
    let connections = proxy.accepted();
    for _ in 0..3 {
        let rtt = sem.ping().unwrap();
        assert!(rtt > Duration::ZERO && rtt < WAIT, "{rtt:?}");
    }
    assert_eq!(
        proxy.accepted(),
        connections,
        "ping uses the connection the handle opened with"
    );

    // A paused server: Unavailable within the timeout, not a hang.
    server.pause();
    let started = Instant::now();
    let err = sem.ping().unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    server.resume();
    assert!(sem.ping().unwrap() < WAIT);

    // A stopped one: Unavailable too.
    server.stop();
    let started = Instant::now();
    let err = sem.ping().unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3));

    sem.close();
    assert!(matches!(sem.ping(), Err(Error::Closed { .. })));
}

#[test]
fn an_unreachable_server_is_an_error_within_the_connect_timeout() {
    // Nothing listens: refused at once.
    let port = redis_server::free_port();
    let url = format!("redis://:hunter2@127.0.0.1:{port}/0");
    let started = Instant::now();
    let err = RedisSemaphore::options()
        .url(&url)
        .connect_timeout(Duration::from_millis(500))
        .open("/x")
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    let Error::Unavailable { url: shown, .. } = &err else {
        panic!("expected Unavailable, got {err:?}")
    };
    assert!(
        !shown.contains("hunter2") && !err.to_string().contains("hunter2"),
        "{err}"
    );
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );

    // A listener that never answers (as a stopped server): the connect
    // timeout bounds the wait.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "redis://127.0.0.1:{}/0",
        silent.local_addr().unwrap().port()
    );
    let started = Instant::now();
    let err = RedisSemaphore::options()
        .url(&url)
        .connect_timeout(Duration::from_millis(500))
        .open("/x")
        .unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    // The connect succeeds (the kernel accepts into the backlog); the first
    // command's reply is waited for one connect timeout, then the command
    // is resent once on a new connection: at most three timeouts, and a
    // loaded machine's scheduling on top.
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(6),
        "{took:?}: {err}"
    );
}

#[test]
fn a_stopped_server_is_unavailable_and_holders_see_their_loss_in_time() {
    let server = RedisServer::start();
    let name = unique("paused");
    let lease = Duration::from_millis(800);
    let sem = RedisSemaphore::options()
        .url(&server.url())
        .lease(lease)
        .connect_timeout(Duration::from_millis(400))
        .open(&name)
        .unwrap();
    let g = sem.acquire().unwrap();
    let acquired = Instant::now();
    server.pause();
    // The local deadline passes while the server says nothing.
    while !sem.is_lost(g) {
        assert!(
            acquired.elapsed() < lease + Duration::from_millis(200),
            "not lost by the local deadline"
        );
        thread::sleep(Duration::from_millis(5));
    }
    assert!(
        acquired.elapsed() >= lease / 2,
        "lost too early: {:?}",
        acquired.elapsed()
    );
    let started = Instant::now();
    let err = sem.value().unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    server.resume();
    assert!(matches!(sem.release(g), Err(Error::LeaseLost { .. })));
    assert_eq!(sem.value().unwrap(), 1);
}

#[test]
fn a_password_is_used_and_a_wrong_one_is_a_clear_error() {
    let server = RedisServer::with(&Config {
        password: Some("s3cret-pw".to_owned()),
        ..Config::default()
    });
    let name = unique("auth");
    let sem = open(&server, &name, 1, Duration::from_secs(10));
    let g = sem.acquire().unwrap();
    sem.release(g).unwrap();
    assert!(sem.url().contains("s3cret-pw"), "url() is the URL as given");
    for shown in [
        format!("{sem:?}"),
        format!("{:?}", RedisSemaphore::options().url(&server.url())),
        redis::redacted(&server.url()),
    ] {
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    for url in [
        format!("redis://:wrong-pw@127.0.0.1:{}/0", server.port()),
        format!("redis://default:wrong-pw@127.0.0.1:{}/0", server.port()),
        format!("redis://127.0.0.1:{}/0", server.port()),
    ] {
        let err = RedisSemaphore::open(&url, &name).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
        assert!(
            !message.contains("wrong-pw") && !message.contains("s3cret"),
            "{message}"
        );
        assert!(
            message.contains(&format!("127.0.0.1:{}", server.port())),
            "{message}"
        );
        assert!(message.contains("password"), "{message}");
    }
}

#[test]
fn database_numbers_keep_semaphores_apart() {
    let server = RedisServer::start();
    let name = unique("db");
    let base = format!("redis://127.0.0.1:{}", server.port());
    let zero = RedisSemaphore::options()
        .url(&format!("{base}/0"))
        .initial_value(1)
        .open(&name)
        .unwrap();
    let three = RedisSemaphore::options()
        .url(&format!("{base}/3"))
        .initial_value(1)
        .open(&name)
        .unwrap();
    assert!(zero.created() && three.created());
    let _a = zero.acquire().unwrap();
    assert!(three.try_acquire().unwrap().is_some());
    assert_eq!(
        server.cli(&["-n", "3", "EXISTS", &format!("namedipc:{{{name}}}:meta")]),
        "1"
    );
}

#[test]
fn tls_with_a_given_ca_or_without_verification() {
    assert!(
        redis_server::server_has_tls(),
        "this redis-server was built without TLS"
    );
    let server = RedisServer::with(&Config {
        tls: true,
        ..Config::default()
    });
    let name = unique("tls");
    let ca = server.dir().join("ca.pem");
    let with_ca = format!("{}?ca={}", server.url(), ca.display());
    let sem = RedisSemaphore::options().url(&with_ca).open(&name).unwrap();
    let g = sem.acquire().unwrap();
    sem.release(g).unwrap();

    let insecure = format!("{}#insecure", server.url());
    let sem = RedisSemaphore::open(&insecure, &name).unwrap();
    assert!(!sem.created());

    // Against the system's roots the self-signed certificate fails.
    let err = RedisSemaphore::options()
        .url(&server.url())
        .connect_timeout(Duration::from_secs(2))
        .open(&name)
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");

    // A CA file for a plain URL, or one that cannot be read, is refused.
    let plain = format!("redis://127.0.0.1:{}/0?ca={}", server.port(), ca.display());
    assert!(matches!(
        RedisSemaphore::open(&plain, &name),
        Err(Error::InvalidArgument(_))
    ));
    let missing = format!("{}?ca=/nonexistent/ca.pem", server.url());
    assert!(matches!(
        RedisSemaphore::open(&missing, &name),
        Err(Error::InvalidArgument(_))
    ));
}

/// Starts [`holder_process`] as a process of its own on `name`, with
/// `lease`; its guard (killed on drop) and its output's lines.
fn spawn_holder(server: &RedisServer, name: &str, lease: Duration) -> (ChildGuard, Lines) {
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "holder_process",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(
            "NAMEDIPC_REDIS_TEST_HOLDER",
            format!("{} {name} {}", server.url(), lease.as_millis()),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = ChildGuard(child);
    let lines = Lines::of(child.0.stdout.take().unwrap());
    (child, lines)
}

/// The holder process of the next test: opens, acquires, reports, waits to
/// be told to look, then reports whether it lost the lease and what its
/// release said. Does nothing unless run by that test.
#[test]
fn holder_process() {
    let Ok(spec) = std::env::var("NAMEDIPC_REDIS_TEST_HOLDER") else {
        return;
    };
    let mut parts = spec.splitn(3, ' ');
    let (url, name, lease_ms) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let sem = RedisSemaphore::options()
        .url(url)
        .lease(Duration::from_millis(lease_ms.parse().unwrap()))
        .open(name)
        .unwrap();
    let g = sem.acquire().unwrap();
    println!("acquired {}", g.fence);
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    println!("lost {}", sem.is_lost(g));
    let released = match sem.release(g) {
        Ok(()) => "ok".to_owned(),
        Err(Error::LeaseLost { .. }) => "lease-lost".to_owned(),
        Err(e) => format!("error {e}"),
    };
    println!("release {released}");
}

#[test]
fn a_holder_that_stops_loses_its_slot_and_its_release_frees_nothing() {
    let server = RedisServer::start();
    let name = unique("stopped-holder");
    let lease = Duration::from_millis(700);
    let (mut child, lines) = spawn_holder(&server, &name, lease);
    let their_fence: u64 = lines.next(WAIT, "acquired").parse().unwrap();
    redis_server::signal(child.0.id(), "STOP");
    let sem = open(&server, &name, 1, Duration::from_secs(10));
    let started = Instant::now();
    let mine = sem
        .acquire_timeout(WAIT)
        .unwrap()
        .expect("the stopped holder's lease runs out");
    assert!(
        started.elapsed() <= lease + Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    assert!(mine.fence > their_fence);
    redis_server::signal(child.0.id(), "CONT");
    child
        .0
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"look\n")
        .unwrap();
    assert_eq!(lines.next(WAIT, "lost"), "true");
    assert_eq!(lines.next(WAIT, "release"), "lease-lost");
    // Its release freed nothing: the slot is still this handle's.
    let holders = sem.holders().unwrap();
    assert_eq!(holders.len(), 1);
    assert_eq!(holders[0].fence, mine.fence);
    assert_eq!(sem.value().unwrap(), 0);
    sem.release(mine).unwrap();
}

#[test]
fn a_restart_that_lost_the_lease_is_reported_and_a_persistent_one_keeps_it() {
    for persistent in [false, true] {
        let mut server = RedisServer::with(&Config {
            persistent,
            ..Config::default()
        });
        let name = unique("restart");
        let lease = Duration::from_millis(900);
        let sem = open(&server, &name, 1, lease);
        let other = open(&server, &name, 1, lease);
        let g = sem.acquire().unwrap();
        server.restart();
        if persistent {
            // The lease survived: nobody else gets in while it is renewed.
            assert!(other.acquire_timeout(lease * 2).unwrap().is_none());
            assert!(!sem.is_lost(g));
            sem.release(g).unwrap();
        } else {
            // Its next renewal is refused: lost, and the release frees nothing.
            let deadline = Instant::now() + lease + WAIT;
            while !sem.is_lost(g) {
                assert!(Instant::now() < deadline, "the loss was never seen");
                thread::sleep(Duration::from_millis(10));
            }
            let theirs = other.acquire_timeout(WAIT).unwrap().unwrap();
            assert!(matches!(sem.release(g), Err(Error::LeaseLost { .. })));
            assert_eq!(other.holders().unwrap().len(), 1);
            other.release(theirs).unwrap();
        }
    }
}

#[test]
fn a_killed_holders_slot_comes_back_when_its_lease_runs_out() {
    let server = RedisServer::start();
    let name = unique("killed-holder");
    let lease = Duration::from_millis(500);
    let (mut child, lines) = spawn_holder(&server, &name, lease);
    let their_fence: u64 = lines.next(WAIT, "acquired").parse().unwrap();
    let sem = open(&server, &name, 1, Duration::from_secs(10));
    let remaining = sem.holders().unwrap()[0].expires_in;
    child.0.kill().unwrap();
    let killed = Instant::now();
    let mine = sem
        .acquire_timeout(WAIT)
        .unwrap()
        .expect("the dead holder's lease runs out");
    let took = killed.elapsed();
    // Waiting ends on the waiter's own timer at the expiry, not a poll.
    assert!(
        took <= remaining + Duration::from_millis(250),
        "{took:?} for {remaining:?}"
    );
    assert!(mine.fence > their_fence);
    sem.release(mine).unwrap();
}

#[test]
fn threads_share_one_handle() {
    let server = RedisServer::start();
    let name = unique("shared-handle");
    let sem = Arc::new(open(&server, &name, 2, Duration::from_secs(10)));
    let inside = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..5)
        .map(|_| {
            let (sem, inside, most) = (sem.clone(), inside.clone(), most.clone());
            thread::spawn(move || {
                for _ in 0..10 {
                    let g = sem
                        .acquire_timeout(WAIT)
                        .unwrap()
                        .expect("a slot within the bound");
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    thread::sleep(Duration::from_millis(2));
                    inside.fetch_sub(1, Ordering::SeqCst);
                    sem.release(g).unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    assert!(most.load(Ordering::SeqCst) <= 2);
    assert!(sem.held().is_empty());
    assert_eq!(sem.value().unwrap(), 2);
}

#[test]
fn exactly_one_of_many_openers_creates() {
    let server = RedisServer::start();
    let name = unique("race");
    let barrier = Barrier::new(6);
    let created: usize = thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    open(&server, &name, 2, Duration::from_secs(10)).created()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| usize::from(h.join().unwrap()))
            .sum()
    });
    assert_eq!(created, 1);
}

/// fork(2) and waitpid(2) for the next test.
#[allow(unsafe_code)]
mod forking {
    /// Runs `child` in a forked child, which exits with its result (0 or
    /// 1); returns that exit code.
    pub fn in_child(child: impl FnOnce() -> bool) -> i32 {
        // SAFETY: the child runs only `child` and then _exit, never
        // returning into the test harness.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(false);
            // SAFETY: ends the child at once, without the parent's exit handlers.
            unsafe { libc::_exit(i32::from(!ok)) };
        }
        let deadline = std::time::Instant::now() + super::WAIT;
        let mut status = 0;
        loop {
            // SAFETY: `pid` is our child; `status` is a valid out-parameter.
            let waited = unsafe { libc::waitpid(pid, &raw mut status, libc::WNOHANG) };
            if waited == pid {
                break;
            }
            assert_eq!(waited, 0, "waitpid failed");
            if std::time::Instant::now() > deadline {
                super::redis_server::signal(pid.unsigned_abs(), "KILL");
                // SAFETY: as above; the child is dead, so this returns.
                unsafe { libc::waitpid(pid, &raw mut status, 0) };
                panic!("the forked child did not finish in time");
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(libc::WIFEXITED(status), "the child did not exit: {status}");
        libc::WEXITSTATUS(status)
    }
}

#[test]
fn a_forked_child_starts_afresh_and_leaves_the_parents_grants_alone() {
    let server = RedisServer::start();
    let name = unique("fork");
    let sem = open(&server, &name, 2, Duration::from_secs(10));
    let parents = sem.acquire().unwrap();
    let code = forking::in_child(|| {
        // The parent's grant is not the child's: not held, not releasable.
        if !sem.held().is_empty() || !matches!(sem.release(parents), Err(Error::NotHeld { .. })) {
            return false;
        }
        // A grant of its own, on connections of its own.
        let Ok(mine) = sem.acquire() else {
            return false;
        };
        let holders = sem.holders().unwrap_or_default();
        mine.slot != parents.slot
            && holders
                .iter()
                .any(|h| h.pid == std::process::id() && h.fence == mine.fence)
            && sem.release(mine).is_ok()
    });
    assert_eq!(code, 0, "the child's checks failed");
    // The parent's connection was not disturbed by the child's.
    assert_eq!(sem.held(), vec![parents]);
    assert_eq!(sem.value().unwrap(), 1);
    sem.release(parents).unwrap();
}
