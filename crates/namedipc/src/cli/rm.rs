//! `namedipc rm`: remove objects by name, or (`--stale`) only the robust
//! semaphores that can be shown unused.

use std::io::{self, Write};
use std::time::Duration;

use super::{error, note, show, RmArgs, FAILURE, SUCCESS};
use crate::inventory;
use crate::paths::canonical;
use crate::robust;
use crate::{Error, ObjectKind};

/// Temporary files of a robust semaphore's creation are removed by
/// `--stale` once this old: creating one takes a few system calls.
const TEMPORARY_MIN_AGE: Duration = Duration::from_secs(60);

pub(super) fn rm(args: &RmArgs) -> io::Result<i32> {
    if args.stale {
        return stale(&args.names);
    }
    let mut out = io::stdout().lock();
    let mut code = SUCCESS;
    for name in &args.names {
        match remove_one(name, args.kind.map(super::Kind::object_kind)) {
            Ok(done) => writeln!(out, "{}", show::escaped(&done))?,
            Err(message) => {
                error(&message);
                code = FAILURE;
            }
        }
    }
    Ok(code)
}

/// The one kind of object that has the name, or the message for the user.
fn only_kind(name: &str) -> Result<ObjectKind, String> {
    let found = inventory::find(name).map_err(|e| e.to_string())?;
    match found.objects.as_slice() {
        [] => Err(format!(
            "no semaphore, shared memory segment, message queue or robust semaphore is named '{}'; `namedipc ls` lists the objects there are",
            canonical(name)
        )),
        [one] => Ok(one.kind),
        several => {
            let kinds: Vec<String> = several.iter().map(|o| o.kind.to_string()).collect();
            Err(format!(
                "'{}' names a {}; say which to remove with --type (sem, shm, mq or robust)",
                canonical(name),
                kinds.join(" and a ")
            ))
        }
    }
}

/// Removes the object `name` (of `kind`, or of the one kind that has the
/// name); returns what was done, or the message for the user.
fn remove_one(name: &str, kind: Option<ObjectKind>) -> Result<String, String> {
    let kind = match kind {
        Some(kind) => kind,
        None => only_kind(name)?,
    };
    let attached = if kind == ObjectKind::RobustSemaphore {
        robust::inspect(name).map_or(0, |s| s.attached)
    } else {
        0
    };
    inventory::remove(kind, name).map_err(|e| e.to_string())?;
    if attached > 0 {
        note(&format!(
            "{} still had robust semaphore '{}' open: their next acquire fails (the semaphore was removed), and a process that opens the name now creates a new one",
            show::count(u64::from(attached), "process", "processes"),
            canonical(name)
        ));
    }
    Ok(format!("removed {kind} {}", canonical(name)))
}

/// `rm --stale`: robust semaphores that no live process is attached to
/// (all, or those `names`), then old temporaries of a crashed creation.
fn stale(names: &[String]) -> io::Result<i32> {
    let explicit = !names.is_empty();
    let candidates = if explicit {
        names.iter().map(|n| canonical(n)).collect()
    } else {
        match robust::names() {
            Ok(names) => names,
            Err(e) => {
                error(&format!("cannot list the robust semaphores: {e}"));
                return Ok(FAILURE);
            }
        }
    };
    let mut out = io::stdout().lock();
    let mut code = SUCCESS;
    for name in &candidates {
        match robust::inspect(name) {
            Ok(snapshot) if snapshot.persistent => {
                if explicit {
                    note(&format!(
                        "kept robust semaphore '{name}': it is persistent (made to outlive its users); `namedipc rm {name}` removes it"
                    ));
                }
                continue;
            }
            Ok(_) => {}
            // Another user's semaphore (not ours to clean up), or one
            // removed since it was listed.
            Err(Error::PermissionDenied { .. } | Error::NotFound { .. }) if !explicit => continue,
            Err(Error::NotFound { .. }) => {
                error(&format!(
                    "no robust semaphore is named '{name}'; --stale removes only robust semaphores, the only objects whose use can be checked"
                ));
                code = FAILURE;
                continue;
            }
            Err(e) => {
                error(&e.to_string());
                code = FAILURE;
                continue;
            }
        }
        match robust::remove_if_unused(name) {
            Ok(true) => writeln!(
                out,
                "removed robust semaphore {} (no live process was attached)",
                show::escaped(name)
            )?,
            Ok(false) if explicit => note(&format!(
                "kept robust semaphore '{name}': a live process is attached to it"
            )),
            // Kept in use, or removed by someone else meanwhile: nothing to say.
            Ok(false) | Err(Error::NotFound { .. }) => {}
            Err(e) => {
                error(&e.to_string());
                code = FAILURE;
            }
        }
    }
    if !explicit {
        match inventory::remove_stale_temporaries(TEMPORARY_MIN_AGE) {
            Ok(paths) => {
                for path in paths {
                    writeln!(
                        out,
                        "removed {} (left by a robust semaphore's creation that did not finish)",
                        show::escaped(&path.display().to_string())
                    )?;
                }
            }
            Err(e) => {
                error(&e.to_string());
                code = FAILURE;
            }
        }
    }
    Ok(code)
}
