//! `namedipc ls|info|rm --redis URL`: the distributed semaphores of one
//! Redis server, as a table, a description or the JSON document of
//! docs/cli.md (the local document's format, with objects of type "redis").

use std::io::{self, Write};
use std::time::SystemTime;

use super::json::Json;
use super::ls::SCHEMA_VERSION;
use super::show;
use super::{error, note, CONNECT_TIMEOUT, FAILURE, SUCCESS};
use crate::paths;
use crate::redis::{self, Lease, RedisSemaphoreInfo};
use crate::Error;

/// The `type` of a distributed semaphore in `ls` and in JSON.
const TYPE: &str = "redis";

pub(super) fn ls(url: &str, json: bool) -> io::Result<i32> {
    let mut semaphores = match redis::list(url, CONNECT_TIMEOUT) {
        Ok(semaphores) => semaphores,
        Err(e) => {
            error(&format!("cannot list the redis semaphores: {e}"));
            return Ok(FAILURE);
        }
    };
    semaphores.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = io::stdout().lock();
    if json {
        writeln!(out, "{}", document(url, &semaphores))?;
    } else {
        write_table(&mut out, url, &semaphores)?;
    }
    Ok(SUCCESS)
}

pub(super) fn info(url: &str, name: &str, json: bool) -> io::Result<i32> {
    let found = match redis::info(url, name, CONNECT_TIMEOUT) {
        Ok(found) => found,
        Err(Error::NotFound { .. }) => {
            error(&format!(
                "no redis semaphore is named '{}' on {}; `namedipc ls --redis URL` lists the semaphores there are",
                paths::canonical(name),
                redis::redacted(url)
            ));
            // As for a local name: the document all the same, with no objects.
            if json {
                match writeln!(io::stdout().lock(), "{}", document(url, &[])) {
                    Err(e) if e.kind() != io::ErrorKind::BrokenPipe => return Err(e),
                    _ => {}
                }
            }
            return Ok(FAILURE);
        }
        Err(e) => {
            error(&e.to_string());
            return Ok(FAILURE);
        }
    };
    let mut out = io::stdout().lock();
    if json {
        writeln!(out, "{}", document(url, std::slice::from_ref(&found)))?;
    } else {
        describe(&mut out, url, &found)?;
    }
    Ok(SUCCESS)
}

pub(super) fn rm(url: &str, names: &[String]) -> io::Result<i32> {
    let mut out = io::stdout().lock();
    let mut code = SUCCESS;
    for name in names {
        let name = paths::canonical(name);
        // Who held slots, for the note; a failure here shows again below.
        let holders = redis::info(url, &name, CONNECT_TIMEOUT).map_or(0, |i| i.holders.len());
        match redis::unlink(url, &name, CONNECT_TIMEOUT) {
            Ok(()) => {
                writeln!(out, "removed redis semaphore {}", show::escaped(&name))?;
                if holders > 0 {
                    note(&format!(
                        "{} still held a slot of redis semaphore '{name}': their leases are lost (they learn it at their next renewal), and a process that opens the name now creates a new one",
                        show::count(holders as u64, "holder", "holders"),
                    ));
                }
            }
            Err(Error::NotFound { .. }) => {
                error(&format!(
                    "no redis semaphore is named '{name}' on {}; `namedipc ls --redis URL` lists the semaphores there are",
                    redis::redacted(url)
                ));
                code = FAILURE;
            }
            Err(e) => {
                error(&e.to_string());
                code = FAILURE;
            }
        }
    }
    Ok(code)
}

/// The document of `ls --redis --json` and `info --redis --json`.
fn document(url: &str, semaphores: &[RedisSemaphoreInfo]) -> Json {
    Json::Object(vec![
        ("schema_version", SCHEMA_VERSION.into()),
        ("redis", redis::redacted(url).into()),
        (
            "objects",
            Json::Array(semaphores.iter().map(object_json).collect()),
        ),
        ("mqueue_dir", Json::Null),
        ("notes", Json::Array(Vec::new())),
    ])
}

fn object_json(semaphore: &RedisSemaphoreInfo) -> Json {
    Json::Object(vec![
        ("type", TYPE.into()),
        ("name", semaphore.name.as_str().into()),
        ("slots", semaphore.slots.into()),
        ("free", semaphore.value.into()),
        (
            "holders",
            Json::Array(semaphore.holders.iter().map(lease_json).collect()),
        ),
    ])
}

fn lease_json(lease: &Lease) -> Json {
    Json::Object(vec![
        ("host", lease.host.as_str().into()),
        ("pid", lease.pid.into()),
        ("since", show::unix_seconds(lease.since).into()),
        ("expires_in", lease.expires_in.as_secs_f64().into()),
        ("fence", lease.fence.into()),
        ("slot", lease.slot.into()),
    ])
}

fn state(semaphore: &RedisSemaphoreInfo) -> String {
    format!(
        "{} of {} free",
        semaphore.value,
        show::count(u64::from(semaphore.slots), "slot", "slots")
    )
}

/// "slot 0: pid 4242 on host-a for 5s, lease expires in 8.2s, fence 17".
fn lease_line(lease: &Lease, since: fn(SystemTime) -> String) -> String {
    format!(
        "slot {}: pid {} on {}{}, lease expires in {:.1}s, fence {}",
        lease.slot,
        lease.pid,
        lease.host,
        since(lease.since),
        lease.expires_in.as_secs_f64(),
        lease.fence
    )
}

/// " for 5s" (by this machine's clock; nothing if the server's is ahead).
fn held_for(since: SystemTime) -> String {
    show::age(since).map_or_else(String::new, |d| format!(" for {}", show::duration(d)))
}

/// " since 2026-12-02 00:50:01 UTC (5s ago)".
fn held_since(since: SystemTime) -> String {
    let ago =
        show::age(since).map_or_else(String::new, |d| format!(" ({} ago)", show::duration(d)));
    format!(" since {}{ago}", show::utc(since))
}

fn write_table(
    out: &mut impl Write,
    url: &str,
    semaphores: &[RedisSemaphoreInfo],
) -> io::Result<()> {
    if semaphores.is_empty() {
        return writeln!(out, "no redis semaphores on {}", redis::redacted(url));
    }
    let header = ["TYPE", "NAME", "STATE"];
    let rows: Vec<[String; 3]> = semaphores
        .iter()
        .map(|s| {
            [
                TYPE.to_owned(),
                show::escaped(&s.name).into_owned(),
                state(s),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 3]| {
        format!(
            "{:<w0$}  {:<w1$}  {}",
            cells[0],
            cells[1],
            cells[2],
            w0 = widths[0],
            w1 = widths[1]
        )
    };
    writeln!(out, "{}", line(header))?;
    for (semaphore, row) in semaphores.iter().zip(&rows) {
        writeln!(out, "{}", line(row.each_ref().map(String::as_str)))?;
        let indent = widths[0] + 2;
        for lease in &semaphore.holders {
            writeln!(
                out,
                "{:indent$}- {}",
                "",
                show::escaped(&lease_line(lease, held_for))
            )?;
        }
    }
    Ok(())
}

fn describe(out: &mut impl Write, url: &str, semaphore: &RedisSemaphoreInfo) -> io::Result<()> {
    let mut facts: Vec<(&str, String)> = vec![
        ("server", redis::redacted(url)),
        (
            "slots",
            format!("{} ({} free)", semaphore.slots, semaphore.value),
        ),
    ];
    if semaphore.holders.is_empty() {
        facts.push(("holders", "none".to_owned()));
    }
    for (i, lease) in semaphore.holders.iter().enumerate() {
        facts.push((
            if i == 0 { "holders" } else { "" },
            lease_line(lease, held_since),
        ));
    }
    writeln!(out, "redis semaphore {}", show::escaped(&semaphore.name))?;
    let width = facts.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (key, value) in facts {
        writeln!(out, "  {key:<width$}  {}", show::escaped(&value))?;
    }
    Ok(())
}
