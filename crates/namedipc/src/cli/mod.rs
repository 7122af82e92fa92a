//! The `namedipc` command: see the named IPC objects on this machine
//! (`ls`, `info`), clean up after crashes (`rm`), and run a command while
//! holding a slot of a crash-safe semaphore (`run`); with `--redis URL`, the
//! same four on the distributed semaphores of a Redis server. One
//! implementation serves the Rust binary and the Python package's entry
//! points; the exit codes and the JSON format are documented in docs/cli.md
//! (shipped at the URL `namedipc --help` names).

mod json;
mod ls;
mod remote;
mod rm;
mod run;
mod run_redis;
mod show;

use std::ffi::OsString;
use std::io::{self, Write};
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::ObjectKind;

/// Exit code: success.
const SUCCESS: i32 = 0;
/// Exit code of `ls`, `info` and `rm` when something failed or was not found.
const FAILURE: i32 = 1;
/// Exit code for bad arguments (except `run`, see [`RUN_FAILED`]).
const USAGE: i32 = 2;
/// Exit code of `run` when the timeout passed without a free slot (as
/// sysexits' EX_TEMPFAIL: try again later); `-E` chooses another.
const TIMEOUT_DEFAULT: u8 = 75;
/// Exit code of `run` when namedipc itself failed (bad arguments included),
/// as for `timeout`, `env` and `nice`, so that it differs from CMD's own codes.
const RUN_FAILED: i32 = 125;
/// Exit code of `run --redis` when the lease was lost while CMD ran (CMD was
/// stopped, or ended after the loss): as GNU `timeout` exits 124 when it
/// stopped its command because its time ran out.
const LEASE_LOST: i32 = 124;
/// How long `ls`, `info`, `rm` and `run` with `--redis` wait for the server
/// to answer a connection before they give up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the documentation is: `cli.md` there has the exit codes and the
/// JSON format. A URL, not a path: the help is read where the source is not.
macro_rules! docs_url {
    () => {
        "https://github.com/namedipc/namedipc/tree/main/docs"
    };
}
#[cfg(test)]
const DOCS_URL: &str = docs_url!();

const AFTER_HELP: &str = concat!(
    "\
With --redis URL, ls, info, rm and run work on the distributed semaphores of the Redis server at
URL instead of on this machine; without it they stay local, whatever NAMEDIPC_REDIS says.

Exit codes: 0 success; 1 an object was not found or an operation failed; 2 bad arguments.
`run` exits with CMD's exit status (128+N if CMD was killed by signal N), 75 (or -E CODE) if
--timeout passed first, 124 if the lease was lost (--redis), 125 if namedipc itself failed
(the Redis server unreachable included), 126/127 if CMD could not be run / found.
Details (exit codes, the JSON format, distributed semaphores): cli.md and distributed.md in ",
    docs_url!()
);

/// See, clean up, and coordinate named IPC objects: POSIX semaphores,
/// shared memory segments and message queues, and namedipc's crash-safe
/// robust semaphores.
#[derive(Debug, Parser)]
#[command(name = "namedipc", version, after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List semaphores, shared memory segments, message queues and robust semaphores
    ///
    /// Lists the named IPC objects this user can see, with owner, mode, age and state: a
    /// semaphore's value, a segment's size, a queue's messages, a robust semaphore's free slots,
    /// attached processes and holders (pid, alive or dead). Message queues can be listed only
    /// while the mqueue file system is mounted; `ls` says when it is not. With --redis URL:
    /// every distributed semaphore on that Redis server, with its free slots and holders (host,
    /// pid, since, lease expires in, fence, slot).
    Ls(LsArgs),
    /// Show everything known about the objects with a name
    Info(InfoArgs),
    /// Remove objects by name, or only robust semaphores nobody uses (--stale)
    ///
    /// Removes the named objects. Never follows a symbolic link, and never removes a file that
    /// is not an object of the kind named. With --redis URL: removes distributed semaphores
    /// from that Redis server.
    Rm(RmArgs),
    /// Run a command while holding a slot of a robust semaphore (or, with --redis, of a
    /// distributed semaphore on a Redis server)
    ///
    /// Runs CMD while holding one slot of the robust semaphore NAME (created with SLOTS slots if
    /// it does not exist), so that at most SLOTS commands started this way run at once,
    /// machine-wide. With --redis URL, NAME is a distributed semaphore on that Redis server, and
    /// the limit holds across every machine that uses the server.
    #[command(after_help = RUN_AFTER_HELP)]
    Run(RunArgs),
}

const RUN_AFTER_HELP: &str = "\
The slot is held while CMD runs and given back when CMD ends, however it ends; namedipc then
exits with CMD's status. SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1 and SIGUSR2 sent to
namedipc are passed on to CMD (a terminal's ^C already reaches both). If namedipc itself is
killed, CMD keeps the slot until it ends: the semaphore never admits more than SLOTS commands.
CMD inherits a read-only descriptor of the semaphore's file that keeps the slot so; it cannot
give the slot up or change the file through it.
An existing semaphore is used only if it belongs to this user or root, others may not write it,
and nobody may read it who may not write it; otherwise namedipc says whose it is and exits with
125. --group GROUP and --trust-owner USER accept one shared on purpose (see security.md).
Example: namedipc run /nightly -n 2 --timeout 60 -- ./job.sh --full
Example: namedipc run /gpu --mode 0660 --group render -- ./train.sh

With --redis URL the slot is a lease on the Redis server, renewed every LEASE/3 while CMD runs.
CMD gets NAMEDIPC_FENCE (the grant's fencing token, to hand to the resource it writes to) and
NAMEDIPC_SLOT (0 to SLOTS-1) in its environment. When the lease is lost (not renewed in time:
the server unreachable or paused, this process stalled), CMD gets SIGTERM, then SIGKILL after
--kill-after SECS, and namedipc exits with 124. If namedipc itself is killed, CMD gets SIGTERM
at once: its lease is no longer renewed.
Example: namedipc run --redis \"$NAMEDIPC_REDIS\" /nightly -n 2 --lease 30 -- ./job.sh";

/// A kind of object, as `--type` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Kind {
    /// POSIX named semaphores (sem_open)
    Sem,
    /// POSIX shared memory segments (shm_open)
    Shm,
    /// POSIX message queues (mq_open)
    Mq,
    /// namedipc's crash-safe robust semaphores
    Robust,
}

impl Kind {
    fn object_kind(self) -> ObjectKind {
        match self {
            Self::Sem => ObjectKind::Semaphore,
            Self::Shm => ObjectKind::SharedMemory,
            Self::Mq => ObjectKind::MessageQueue,
            Self::Robust => ObjectKind::RobustSemaphore,
        }
    }
}

/// `--redis URL`, the same on every command that takes it.
#[derive(Debug, Args)]
struct RedisArg {
    /// Work on the distributed semaphores of the Redis server at URL, e.g.
    /// redis://:password@host:6379/0 or rediss://host:6380/0 (TLS); without it, on this machine
    /// (NAMEDIPC_REDIS is not read: write --redis "$NAMEDIPC_REDIS")
    #[arg(long = "redis", value_name = "URL", value_parser = parse_redis_url)]
    url: Option<String>,
}

#[derive(Debug, Args)]
struct LsArgs {
    /// List only objects of this kind
    #[arg(
        long = "type",
        short = 't',
        value_name = "TYPE",
        conflicts_with = "url"
    )]
    kind: Option<Kind>,
    #[command(flatten)]
    redis: RedisArg,
    /// Print JSON (one document; its format is in the documentation, see `namedipc --help`)
    /// instead of a table
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct InfoArgs {
    /// The name, e.g. /jobs (the leading slash may be left out)
    name: String,
    /// Show only the object of this kind (a name may belong to several kinds at once)
    #[arg(
        long = "type",
        short = 't',
        value_name = "TYPE",
        conflicts_with = "url"
    )]
    kind: Option<Kind>,
    #[command(flatten)]
    redis: RedisArg,
    /// Print JSON (the same format as `ls --json`) instead of text
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct RmArgs {
    /// Names of the objects to remove, e.g. /jobs
    #[arg(required_unless_present = "stale")]
    names: Vec<String>,
    /// The kind of the objects to remove; needed when a name belongs to several kinds
    #[arg(
        long = "type",
        short = 't',
        value_name = "TYPE",
        conflicts_with_all = ["stale", "url"]
    )]
    kind: Option<Kind>,
    /// Remove only robust semaphores that no live process is attached to (all of them, or those
    /// NAMES), and files left by a robust semaphore's creation that crashed; persistent robust
    /// semaphores, and objects whose use cannot be checked (sem, shm, mq), are never removed
    /// (not with --redis: a distributed semaphore's leases run out by themselves)
    #[arg(long, conflicts_with = "url")]
    stale: bool,
    #[command(flatten)]
    redis: RedisArg,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The robust semaphore, e.g. /nightly (created if missing, and removed when the last
    /// process using it ends)
    name: String,
    /// Slots of the semaphore when this creates it: at most this many commands hold one at
    /// once [default: 1; an existing semaphore keeps its own]
    #[arg(short = 'n', long, value_name = "SLOTS", value_parser = clap::value_parser!(u32).range(1..=65_536))]
    slots: Option<u32>,
    /// Give up after waiting this many seconds for a slot (a decimal number; 0 tries once)
    /// [default: wait as long as it takes]
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    timeout: Option<Duration>,
    /// Exit code when --timeout passes without a free slot
    #[arg(short = 'E', long, value_name = "CODE", default_value_t = TIMEOUT_DEFAULT)]
    timeout_exit_code: u8,
    /// Permission bits of the semaphore when this creates it, in octal, applied exactly (the
    /// umask does not narrow them): 0600 the owner only, 0660 its group too (with --group),
    /// 0666 every user; whoever may read it must be able to write it [default: 0600; an
    /// existing semaphore keeps its own]
    #[arg(long, value_name = "OCTAL", value_parser = parse_mode, conflicts_with = "url")]
    mode: Option<u32>,
    /// Give the semaphore this group (a name or a gid) when this creates it, and use an
    /// existing one of this group whoever owns it: with --mode 0660, the group's members share it
    #[arg(long, value_name = "GROUP", value_parser = parse_group, conflicts_with = "url")]
    group: Option<u32>,
    /// Also use an existing semaphore that belongs to USER (a name or a uid), not only this
    /// user's or root's (repeatable)
    #[arg(long = "trust-owner", value_name = "USER", value_parser = parse_user,
          conflicts_with = "url", action = clap::ArgAction::Append)]
    trust_owners: Vec<u32>,
    #[command(flatten)]
    redis: RedisArg,
    /// With --redis: how long the server keeps the slot without a renewal (a decimal number of
    /// seconds; renewed every LEASE/3 while CMD runs) [default: 10]
    #[arg(long, value_name = "SECS", value_parser = parse_lease, requires = "url")]
    lease: Option<Duration>,
    /// With --redis: when the lease is lost, how long CMD has after SIGTERM before SIGKILL
    #[arg(long, value_name = "SECS", value_parser = parse_seconds, requires = "url",
          default_value = "2")]
    kill_after: Duration,
    /// The command to run, and its arguments (put `--` before it if it starts with `-`)
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    command: Vec<OsString>,
}

/// Parses a number of seconds. A finite, non-negative number of seconds
/// longer than a [`Duration`] can hold (about 1.8e19) is the longest
/// `Duration`: a wait that long is one that never times out.
fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a number of seconds, e.g. 30 or 0.5"))?;
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(format!(
            "{text} is not a finite, non-negative number of seconds"
        ));
    }
    Ok(Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX))
}

/// Parses a mode in octal (`0660`, `660`, `0o660`), permission bits only.
fn parse_mode(text: &str) -> Result<u32, String> {
    let digits = text.trim();
    let digits = digits.strip_prefix("0o").unwrap_or(digits);
    u32::from_str_radix(digits, 8)
        .ok()
        .filter(|&mode| !digits.is_empty() && !digits.starts_with('+') && mode <= 0o7777)
        .ok_or_else(|| {
            format!("'{text}' is not a mode: give octal permission bits such as 0600, 0660 or 0666")
        })
}

/// Parses a group: a name, or a gid.
fn parse_group(text: &str) -> Result<u32, String> {
    crate::ownership::gid_of(text).map_err(|e| e.to_string())
}

/// Parses a user: a name, or a uid.
fn parse_user(text: &str) -> Result<u32, String> {
    crate::ownership::uid_of(text).map_err(|e| e.to_string())
}

/// Parses a lease: a positive number of seconds.
fn parse_lease(text: &str) -> Result<Duration, String> {
    let lease = parse_seconds(text)?;
    if lease.is_zero() {
        return Err(format!("{text} is not a positive number of seconds"));
    }
    Ok(lease)
}

/// Takes a Redis URL as written; the core checks it when it connects. An
/// empty one is refused here, with the likely cause.
fn parse_redis_url(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        return Err(
            "the URL is empty (is NAMEDIPC_REDIS set?); write one such as redis://127.0.0.1:6379/0"
                .to_owned(),
        );
    }
    Ok(text.to_owned())
}

/// Runs the `namedipc` command with `args` (the program name first, as in
/// `std::env::args_os()`) and returns its exit code. It prints to this
/// process's stdout and stderr and never exits the process itself, so that
/// a host (the Python package's entry point) can call it.
///
/// ```
/// let code = namedipc::cli::main(["namedipc", "ls", "--type", "robust", "--json"].map(Into::into));
/// assert_eq!(code, 0);
/// ```
pub fn main(args: impl IntoIterator<Item = OsString>) -> i32 {
    let args: Vec<OsString> = args.into_iter().collect();
    let code = match Cli::try_parse_from(&args) {
        Ok(cli) => dispatch(cli),
        Err(err) => {
            let _ = err.print();
            if !err.use_stderr() {
                SUCCESS // --help, --version
            } else if is_run(&args) {
                RUN_FAILED
            } else {
                USAGE
            }
        }
    };
    // Flush here: a host process goes on running after this returns.
    let _ = io::stdout().flush();
    code
}

/// Whether the command line is a `run` (its first argument after the program name).
fn is_run(args: &[OsString]) -> bool {
    args.get(1).is_some_and(|a| a == "run")
}

fn dispatch(cli: Cli) -> i32 {
    let result = match cli.command {
        Command::Ls(LsArgs {
            redis: RedisArg { url: Some(url) },
            json,
            ..
        }) => remote::ls(&url, json),
        Command::Ls(args) => ls::ls(args.kind, args.json),
        Command::Info(InfoArgs {
            redis: RedisArg { url: Some(url) },
            name,
            json,
            ..
        }) => remote::info(&url, &name, json),
        Command::Info(args) => ls::info(&args.name, args.kind, args.json),
        Command::Rm(RmArgs {
            redis: RedisArg { url: Some(url) },
            names,
            ..
        }) => remote::rm(&url, &names),
        Command::Rm(args) => rm::rm(&args),
        Command::Run(args) if args.redis.url.is_some() => return run_redis::run(&args),
        Command::Run(args) => return run::run(&args),
    };
    match result {
        Ok(code) => code,
        // Output cut short by a closed pipe (`namedipc ls | head`) is not an error.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => SUCCESS,
        Err(e) => {
            error(&format!("cannot write the output: {e}"));
            FAILURE
        }
    }
}

/// Prints a one-line message on stderr, escaped (show::escaped): the names
/// and reasons in it come from files other users make.
fn error(message: &str) {
    let _ = writeln!(io::stderr(), "namedipc: {}", show::escaped(message));
}

/// Prints a one-line note on stderr, escaped as [`error`] is.
fn note(message: &str) {
    let _ = writeln!(io::stderr(), "namedipc: note: {}", show::escaped(message));
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_help_points_to_documentation_that_ships() {
        assert!(AFTER_HELP.ends_with(DOCS_URL));
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains(DOCS_URL), "{help}");
        assert!(!help.contains("docs/"), "a path in the source tree: {help}");
    }

    #[test]
    fn seconds_are_parsed_or_refused_with_the_rule() {
        assert_eq!(parse_seconds("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_seconds("0"), Ok(Duration::ZERO));
        for bad in ["-1", "nan", "inf", "-inf", "1e400", "soon", ""] {
            assert!(parse_seconds(bad).is_err(), "{bad}");
        }
        // Longer than a Duration holds: the longest one (no limit, in effect).
        assert_eq!(parse_seconds("1e300"), Ok(Duration::MAX));
        assert_eq!(parse_seconds("1.9e19"), Ok(Duration::MAX));
    }

    #[test]
    fn run_takes_a_mode_in_octal_a_group_and_owners_to_trust() {
        assert_eq!(parse_mode("0660"), Ok(0o660));
        assert_eq!(parse_mode("600"), Ok(0o600));
        assert_eq!(parse_mode("0o666"), Ok(0o666));
        for bad in ["", "0o", "8", "0x1a", "-600", "+600", "17777", "rw-rw----"] {
            let said = parse_mode(bad).unwrap_err();
            assert!(said.contains("0600, 0660 or 0666"), "{bad}: {said}");
        }
        assert_eq!(parse_group("0"), Ok(0));
        assert_eq!(parse_user("root"), Ok(0));
        assert!(parse_user("no-such-user-namedipc")
            .unwrap_err()
            .contains("unknown user"));
        let parse = |args: &[&str]| Cli::try_parse_from(args.iter().copied());
        let Ok(Cli {
            command: Command::Run(run),
        }) = parse(&[
            "namedipc",
            "run",
            "/x",
            "--mode",
            "0660",
            "--group",
            "0",
            "--trust-owner",
            "root",
            "--trust-owner",
            "7",
            "--",
            "true",
        ])
        else {
            panic!("run with --mode, --group and --trust-owner is refused");
        };
        assert_eq!((run.mode, run.group), (Some(0o660), Some(0)));
        assert_eq!(run.trust_owners, [0, 7]);
        // Local options: not with --redis.
        assert!(parse(&[
            "namedipc",
            "run",
            "--redis",
            "redis://h/0",
            "/x",
            "--mode",
            "0600",
            "--",
            "true"
        ])
        .is_err());
    }

    #[test]
    fn a_lease_is_positive_and_a_url_is_not_empty() {
        assert_eq!(parse_lease("0.5"), Ok(Duration::from_millis(500)));
        for bad in ["0", "-1", "nan", "soon"] {
            assert!(parse_lease(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_redis_url("redis://h:1/0"),
            Ok("redis://h:1/0".to_owned())
        );
        for empty in ["", "  "] {
            let said = parse_redis_url(empty).unwrap_err();
            assert!(said.contains("NAMEDIPC_REDIS"), "{said}");
        }
    }

    #[test]
    fn redis_switches_each_command_and_goes_with_no_local_option() {
        let parse = |args: &[&str]| Cli::try_parse_from(args.iter().copied());
        let Ok(Cli {
            command: Command::Run(run),
        }) = parse(&[
            "namedipc",
            "run",
            "--redis",
            "redis://h/0",
            "/x",
            "--",
            "true",
        ])
        else {
            panic!("run --redis is refused");
        };
        assert_eq!(run.redis.url.as_deref(), Some("redis://h/0"));
        assert_eq!(run.kill_after, Duration::from_secs(2));
        assert!(parse(&["namedipc", "run", "/x", "--lease", "1", "--", "true"]).is_err());
        assert!(parse(&["namedipc", "ls", "--redis", "redis://h/0", "-t", "sem"]).is_err());
        assert!(parse(&[
            "namedipc",
            "info",
            "--redis",
            "redis://h/0",
            "-t",
            "sem",
            "/x"
        ])
        .is_err());
        assert!(parse(&["namedipc", "rm", "--redis", "redis://h/0", "--stale"]).is_err());
        assert!(parse(&[
            "namedipc",
            "rm",
            "--redis",
            "redis://h/0",
            "-t",
            "sem",
            "/x"
        ])
        .is_err());
    }
}
