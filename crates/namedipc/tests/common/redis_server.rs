//! A real `redis-server` for the tests: started on a free loopback port in
//! a temporary directory of its own, stopped by pid when the guard drops
//! (also when the test fails), and able to be restarted, paused
//! (SIGSTOP/SIGCONT), protected by a password or served over TLS.
//!
//! And a loopback TCP proxy that can swallow a reply and cut the
//! connection, to make a client resend.

// Each test file uses only part of this module.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long a server may take to start.
const START: Duration = Duration::from_secs(10);

/// How a server is started.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// `requirepass`.
    pub password: Option<String>,
    /// Serve TLS only, with a self-signed certificate made for the test.
    pub tls: bool,
    /// `appendonly yes` with `appendfsync always`.
    pub persistent: bool,
}

/// A running redis-server; stopped when dropped.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    config: Config,
}

/// A fresh, unique temporary directory.
fn temp_dir() -> PathBuf {
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "namedipc-redis-test-{}-{}-{}",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::SeqCst),
        Instant::now().elapsed().as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl RedisServer {
    /// A server without password, TLS or persistence.
    pub fn start() -> Self {
        Self::with(&Config::default())
    }

    /// A server as `config` says.
    pub fn with(config: &Config) -> Self {
        let dir = temp_dir();
        if config.tls {
            make_certificate(&dir);
        }
        // Another process may take the port between our look and the
        // server's bind: try a few.
        for _ in 0..5 {
            let mut server = Self {
                child: None,
                port: free_port(),
                dir: dir.clone(),
                config: config.clone(),
            };
            if server.launch() {
                return server;
            }
        }
        panic!("redis-server did not start; see {}", dir.display());
    }

    /// Starts the process on `self.port` and waits until it answers.
    fn launch(&mut self) -> bool {
        let port = self.port.to_string();
        let mut args: Vec<String> = vec![
            "--bind".into(),
            "127.0.0.1".into(),
            "--dir".into(),
            self.dir.display().to_string(),
            "--save".into(),
            String::new(),
            "--logfile".into(),
            self.dir.join("redis.log").display().to_string(),
        ];
        if self.config.tls {
            args.extend(
                [
                    "--port",
                    "0",
                    "--tls-port",
                    &port,
                    "--tls-cert-file",
                    "cert.pem",
                    "--tls-key-file",
                    "key.pem",
                    "--tls-ca-cert-file",
                    "ca.pem",
                    "--tls-auth-clients",
                    "no",
                ]
                .map(str::to_owned),
            );
        } else {
            args.extend(["--port".to_owned(), port]);
        }
        if let Some(password) = &self.config.password {
            args.extend(["--requirepass".to_owned(), password.clone()]);
        }
        if self.config.persistent {
            args.extend(["--appendonly", "yes", "--appendfsync", "always"].map(str::to_owned));
        } else {
            args.extend(["--appendonly".to_owned(), "no".to_owned()]);
        }
        let child = Command::new("redis-server")
            .args(&args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (apt-get install redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + START;
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                // Exited: most likely the port was taken.
                let _ = status;
                self.child = None;
                return false;
            }
            if self.is_ready() {
                return true;
            }
            thread::sleep(Duration::from_millis(10));
        }
        self.stop();
        false
    }

    /// Whether the server accepts connections (its log says so).
    fn is_ready(&self) -> bool {
        std::fs::read_to_string(self.dir.join("redis.log"))
            .is_ok_and(|log| log.contains("Ready to accept connections"))
            && TcpStream::connect(("127.0.0.1", self.port)).is_ok()
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its directory (certificate files for TLS).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server is running").id()
    }

    /// A URL for it, with the password it was started with.
    pub fn url(&self) -> String {
        let scheme = if self.config.tls { "rediss" } else { "redis" };
        match &self.config.password {
            Some(password) => format!("{scheme}://:{password}@127.0.0.1:{}/0", self.port),
            None => format!("{scheme}://127.0.0.1:{}/0", self.port),
        }
    }

    /// Kills the server (SIGKILL) and waits for it to end.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGCONT first: a stopped process cannot be reaped until it runs.
            signal(child.id(), "CONT");
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server and starts it again on the same port and directory
    /// (without persistence, with all its data lost).
    pub fn restart(&mut self) {
        self.stop();
        let _ = std::fs::remove_file(self.dir.join("redis.log"));
        assert!(
            self.launch(),
            "redis-server did not start again on port {}",
            self.port
        );
    }

    /// SIGSTOP: the server stops answering, its connections stay open.
    pub fn pause(&self) {
        signal(self.pid(), "STOP");
    }

    /// SIGCONT.
    pub fn resume(&self) {
        signal(self.pid(), "CONT");
    }

    /// Runs a command through redis-cli and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut command = Command::new("redis-cli");
        command.args(["-p", &self.port.to_string()]);
        if let Some(password) = &self.config.password {
            command.args(["-a", password, "--no-auth-warning"]);
        }
        if self.config.tls {
            command
                .args(["--tls", "--cacert", "ca.pem"])
                .current_dir(&self.dir);
        }
        let out = command
            .args(args)
            .output()
            .expect("redis-cli must be installed");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sends SIGNAL (a name: STOP, CONT, KILL) to `pid` through kill(1).
pub fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status();
}

/// A test CA (ca.pem) and a certificate it signed for 127.0.0.1 and
/// localhost (cert.pem, key.pem) in `dir`.
fn make_certificate(dir: &Path) {
    let run = |args: &[&str]| {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl must be installed to make a test certificate");
        assert!(status.success(), "openssl {args:?} failed");
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca-key.pem",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=namedipc test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "key.pem",
        "-out",
        "cert.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "cert.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca-key.pem",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "1",
        "-extfile",
        "ext.cnf",
    ]);
}

/// Whether this redis-server was built with TLS.
pub fn server_has_tls() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success())
        && Command::new("sh")
            .args(["-c", "ldd \"$(command -v redis-server)\" | grep -q libssl"])
            .status()
            .is_ok_and(|s| s.success())
}

/// A loopback TCP proxy in front of a server. By default it passes
/// everything; [`drop_next_reply`](Self::drop_next_reply) makes it swallow
/// the next bytes the server sends and cut that connection.
pub struct Proxy {
    port: u16,
    drop_reply: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<TcpStream>>>,
    accepted: Arc<AtomicUsize>,
}

impl Proxy {
    /// A proxy to `127.0.0.1:upstream`.
    pub fn to(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let drop_reply = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(AtomicUsize::new(0));
        {
            let (drop_reply, stop, connections, accepted) = (
                drop_reply.clone(),
                stop.clone(),
                connections.clone(),
                accepted.clone(),
            );
            thread::spawn(move || {
                for client in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                        continue;
                    };
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    {
                        let mut all = connections.lock().unwrap();
                        all.push(client.try_clone().unwrap());
                        all.push(server.try_clone().unwrap());
                    }
                    let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                    thread::spawn(move || pump(client, server, None));
                    let drop_reply = drop_reply.clone();
                    thread::spawn(move || pump(s2, c2, Some(&drop_reply)));
                }
            });
        }
        Self {
            port,
            drop_reply,
            stop,
            connections,
            accepted,
        }
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// How many connections it took so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Swallows the next reply of the server and cuts that connection.
    pub fn drop_next_reply(&self) {
        self.drop_reply.store(true, Ordering::SeqCst);
    }
}

/// Copies `from` to `to` until either ends; with `drop_reply` set, the
/// next bytes are swallowed and both ends are cut.
fn pump(mut from: TcpStream, mut to: TcpStream, drop_reply: Option<&AtomicBool>) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if drop_reply
            .as_ref()
            .is_some_and(|d| d.swap(false, Ordering::SeqCst))
        {
            break;
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for stream in self.connections.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
        // Wake the accept loop so it sees `stop`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// The lines a child process writes to its stdout, each waited for with a
/// deadline (a reader thread feeds them through a channel).
pub struct Lines(std::sync::mpsc::Receiver<String>);

impl Lines {
    /// Reads `out` line by line.
    pub fn of(out: impl Read + Send + 'static) -> Self {
        let (tx, rx) = std::sync::mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self(rx)
    }

    /// The next line that starts with `prefix`, without it, waiting at
    /// most `timeout` (the test harness prints lines of its own).
    pub fn next(&self, timeout: Duration, prefix: &str) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .0
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("no line '{prefix} ...' from the child: {e}"));
            if let Some(rest) = line.strip_prefix(prefix) {
                return rest.trim().to_owned();
            }
        }
    }
}

/// A child process, killed (after SIGCONT) and reaped when dropped.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        signal(self.0.id(), "CONT");
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
