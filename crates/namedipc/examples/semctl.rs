//! semctl: a tiny command-line tool that does one thing to a named POSIX
//! semaphore, so that other programs (the Python interop tests, a shell)
//! can work on the same semaphore as a Rust process.
//!
//! ```text
//! semctl create NAME VALUE          create NAME with VALUE free slots (fails if it exists;
//!                                   the semaphore is left in place); prints "created"
//! semctl post NAME                  give one slot back; prints "posted"
//! semctl wait NAME TIMEOUT_SECS     take one slot, waiting at most TIMEOUT_SECS
//!                                   (a decimal number); prints "acquired" or "timeout"
//! semctl value NAME                 print the number of free slots
//! ```
//!
//! Every command but `create` opens an existing semaphore. On any error the
//! tool prints a message to stderr and exits with status 1.
//!
//! ```text
//! cargo run -q -p namedipc --example semctl -- create /jobs 2
//! ```

use std::process::ExitCode;
use std::time::Duration;

use namedipc::{Existence, Semaphore};

const USAGE: &str =
    "usage: semctl create NAME VALUE | post NAME | wait NAME TIMEOUT_SECS | value NAME";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(output) => {
            println!("{output}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("semctl: error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one command; `Ok` is the line to print.
fn run(args: &[String]) -> Result<String, String> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["create", name, value] => {
            let value: u32 = value
                .parse()
                .map_err(|_| format!("VALUE must be a whole number >= 0, not {value:?}"))?;
            Semaphore::options()
                .existence(Existence::RaiseIfExists)
                .initial_value(value)
                .unlink_on_drop(false)
                .open(name)
                .map_err(|e| e.to_string())?;
            Ok("created".to_owned())
        }
        ["post", name] => {
            open(name)?.release().map_err(|e| e.to_string())?;
            Ok("posted".to_owned())
        }
        ["wait", name, timeout] => {
            let timeout = timeout
                .parse::<f64>()
                .ok()
                .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
                .ok_or_else(|| {
                    format!("TIMEOUT_SECS must be a number of seconds >= 0, not {timeout:?}")
                })?;
            let taken = open(name)?
                .acquire_timeout(timeout)
                .map_err(|e| e.to_string())?;
            Ok(if taken { "acquired" } else { "timeout" }.to_owned())
        }
        ["value", name] => Ok(open(name)?.value().map_err(|e| e.to_string())?.to_string()),
        _ => Err(USAGE.to_owned()),
    }
}

fn open(name: &str) -> Result<Semaphore, String> {
    Semaphore::open(name).map_err(|e| e.to_string())
}
