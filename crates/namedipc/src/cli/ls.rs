//! `namedipc ls` and `namedipc info`: a table or a description for people,
//! and one JSON document (docs/cli.md has its schema) for scripts.

use std::fmt::Write as _;
use std::io::{self, Write};

use super::json::Json;
use super::show::{self, Users};
use super::{error, note, Kind, FAILURE, SUCCESS};
use crate::inventory::{self, Details, Listing, Object};
use crate::paths;
use crate::robust::Snapshot;
use crate::ObjectKind;

/// The version of the JSON document's format; it changes only when a
/// member is removed or changes meaning (new members may be added).
pub(super) const SCHEMA_VERSION: u32 = 1;

const MQUEUE_NOT_MOUNTED: &str = "message queues are not listed: no mqueue file system is mounted \
     (`mount -t mqueue none /dev/mqueue` as root mounts it); `namedipc info NAME` still finds a queue by name";

fn type_label(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::Semaphore => "sem",
        ObjectKind::SharedMemory => "shm",
        ObjectKind::MessageQueue => "mq",
        ObjectKind::RobustSemaphore => "robust",
        ObjectKind::RedisSemaphore => "redis",
    }
}

/// The objects of `kind` (all of them for `None`).
fn of_kind(objects: &[Object], kind: Option<Kind>) -> Vec<&Object> {
    objects
        .iter()
        .filter(|o| kind.is_none_or(|k| k.object_kind() == o.kind))
        .collect()
}

pub(super) fn ls(kind: Option<Kind>, json: bool) -> io::Result<i32> {
    // Filtered before anything is read: `--type sem` opens no other file.
    let listed = match kind {
        Some(kind) => inventory::list_kind(kind.object_kind()),
        None => inventory::list(),
    };
    let listing = match listed {
        Ok(listing) => listing,
        Err(e) => {
            error(&format!("cannot list the objects: {e}"));
            return Ok(FAILURE);
        }
    };
    let objects = of_kind(&listing.objects, kind);
    let mut notes = Vec::new();
    if listing.mqueue_dir.is_none() && kind.is_none_or(|k| k == Kind::Mq) {
        notes.push(MQUEUE_NOT_MOUNTED.to_owned());
    }
    let users = Users::load();
    let mut out = io::stdout().lock();
    if json {
        writeln!(out, "{}", document(&objects, &listing, &notes, &users))?;
    } else {
        for n in &notes {
            note(n);
        }
        write_table(&mut out, &objects, &users)?;
    }
    Ok(SUCCESS)
}

pub(super) fn info(name: &str, kind: Option<Kind>, json: bool) -> io::Result<i32> {
    let found = match kind {
        Some(kind) => inventory::find_kind(name, kind.object_kind()),
        None => inventory::find(name),
    };
    let listing = match found {
        Ok(listing) => listing,
        Err(e) => {
            error(&e.to_string());
            return Ok(FAILURE);
        }
    };
    let objects = of_kind(&listing.objects, kind);
    if objects.is_empty() {
        let what = kind.map_or(
            "no semaphore, shared memory segment, message queue or robust semaphore".to_owned(),
            |k| format!("no {}", k.object_kind()),
        );
        error(&format!(
            "{what} is named '{}'; `namedipc ls` lists the objects there are",
            paths::canonical(name)
        ));
        // `--json` prints its document all the same (with no objects), so
        // that a script reading stdout always gets one. The exit code stays
        // 1, also when stdout is a pipe already closed.
        if json {
            let doc = document(&[], &listing, &[], &Users::load());
            match writeln!(io::stdout().lock(), "{doc}") {
                Err(e) if e.kind() != io::ErrorKind::BrokenPipe => return Err(e),
                _ => {}
            }
        }
        return Ok(FAILURE);
    }
    let users = Users::load();
    let mut out = io::stdout().lock();
    if json {
        writeln!(out, "{}", document(&objects, &listing, &[], &users))?;
    } else {
        for (i, object) in objects.iter().enumerate() {
            if i > 0 {
                writeln!(out)?;
            }
            describe(&mut out, object, &users)?;
        }
    }
    Ok(SUCCESS)
}

/// The JSON document of `ls --json` and `info --json`.
fn document(objects: &[&Object], listing: &Listing, notes: &[String], users: &Users) -> Json {
    Json::Object(vec![
        ("schema_version", SCHEMA_VERSION.into()),
        (
            "objects",
            Json::Array(objects.iter().map(|o| object_json(o, users)).collect()),
        ),
        (
            "mqueue_dir",
            listing
                .mqueue_dir
                .as_ref()
                .map(|d| d.display().to_string())
                .into(),
        ),
        (
            "notes",
            Json::Array(notes.iter().map(|n| n.as_str().into()).collect()),
        ),
    ])
}

fn object_json(object: &Object, users: &Users) -> Json {
    let mut members: Vec<(&'static str, Json)> = vec![
        ("type", type_label(object.kind).into()),
        ("name", object.name.as_str().into()),
        (
            "path",
            object.path.as_ref().map(|p| p.display().to_string()).into(),
        ),
        ("uid", object.uid.into()),
        ("user", object.uid.and_then(|u| users.name(u)).into()),
        ("mode", object.mode.map(|m| show::mode(Some(m))).into()),
        ("created", object.created.map(show::unix_seconds).into()),
        (
            "age",
            object
                .created
                .and_then(show::age)
                .map(|d| d.as_secs_f64())
                .into(),
        ),
        ("problem", object.problem.as_deref().into()),
    ];
    match &object.details {
        Details::Semaphore { value, waiters } => {
            members.push(("value", (*value).into()));
            members.push(("waiters", (*waiters).into()));
        }
        Details::SharedMemory { size } => members.push(("size", (*size).into())),
        Details::MessageQueue {
            messages,
            max_messages,
            max_message_size,
            queued_bytes,
        } => {
            members.push(("messages", (*messages).into()));
            members.push(("max_messages", (*max_messages).into()));
            members.push(("max_message_size", (*max_message_size).into()));
            members.push(("queued_bytes", (*queued_bytes).into()));
        }
        Details::RobustSemaphore(snapshot) => {
            let s = snapshot.as_ref();
            members.push(("slots", s.map(|s| s.slots).into()));
            members.push(("free", s.map(|s| s.free).into()));
            members.push(("attached", s.map(|s| s.attached).into()));
            members.push(("records", s.map(|s| s.records).into()));
            members.push(("persistent", s.map(|s| s.persistent).into()));
            members.push(("reclaimed", s.map(|s| s.reclaimed).into()));
            members.push((
                "holders",
                s.map_or(Json::Null, |s| {
                    Json::Array(
                        s.holders
                            .iter()
                            .map(|h| {
                                Json::Object(vec![
                                    ("pid", h.pid.into()),
                                    ("uid", h.uid.into()),
                                    ("user", users.name(h.uid).into()),
                                    ("alive", h.alive.into()),
                                    ("since", show::unix_seconds(h.since).into()),
                                ])
                            })
                            .collect(),
                    )
                }),
            ));
        }
    }
    Json::Object(members)
}

/// The STATE column: the object's state in a few words.
fn state(object: &Object) -> String {
    let known = |n: Option<u32>| n.map_or_else(|| "?".to_owned(), |n| n.to_string());
    let mut text = match &object.details {
        Details::Semaphore { value, waiters } => {
            let mut text = format!("value {}", known(*value));
            if let Some(w) = waiters.filter(|&w| w > 0) {
                let _ = write!(text, ", {w} waiting");
            }
            text
        }
        Details::SharedMemory { size } => show::size(*size),
        Details::MessageQueue {
            messages,
            max_messages,
            max_message_size,
            ..
        } => match (messages, max_messages, max_message_size) {
            (Some(n), Some(max), Some(size)) => format!(
                "{} (at most {max} of {})",
                show::count(*n, "message", "messages"),
                show::size(*size)
            ),
            _ => "? messages".to_owned(),
        },
        Details::RobustSemaphore(Some(s)) => robust_state(s),
        Details::RobustSemaphore(None) => "? slots".to_owned(),
    };
    if let Some(problem) = &object.problem {
        let _ = write!(text, " ({problem})");
    }
    text
}

fn robust_state(s: &Snapshot) -> String {
    let mut text = format!(
        "{} of {} free, {} attached",
        s.free,
        show::count(u64::from(s.slots), "slot", "slots"),
        show::count(u64::from(s.attached), "process", "processes"),
    );
    if s.persistent {
        text.push_str(", persistent");
    }
    text
}

/// One line per holder: "pid 4242 holds a slot for 3s (alive)".
fn holder_lines(s: &Snapshot, users: &Users) -> Vec<String> {
    s.holders
        .iter()
        .map(|h| {
            let held = show::age(h.since)
                .map_or_else(String::new, |d| format!(" for {}", show::duration(d)));
            let state = if h.alive {
                "alive"
            } else {
                "dead: its slot comes back at the next acquire"
            };
            format!(
                "pid {} ({}) holds a slot{held} ({state})",
                h.pid,
                users.display(Some(h.uid))
            )
        })
        .collect()
}

fn write_table(out: &mut impl Write, objects: &[&Object], users: &Users) -> io::Result<()> {
    if objects.is_empty() {
        return writeln!(out, "no objects");
    }
    let header = ["TYPE", "NAME", "OWNER", "MODE", "AGE", "STATE"];
    // Every cell escaped (show::escaped): a name with a line break or an
    // escape sequence cannot forge a row or reach the terminal raw.
    let rows: Vec<[String; 6]> = objects
        .iter()
        .map(|o| {
            [
                type_label(o.kind).to_owned(),
                show::escaped(&o.name).into_owned(),
                show::escaped(&users.display(o.uid)).into_owned(),
                show::mode(o.mode),
                o.created
                    .and_then(show::age)
                    .map_or_else(|| "?".to_owned(), show::duration),
                show::escaped(&state(o)).into_owned(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 6]| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<0$}  ", widths[i]);
            }
        }
        text
    };
    writeln!(out, "{}", line(header))?;
    for (object, row) in objects.iter().zip(&rows) {
        writeln!(out, "{}", line(row.each_ref().map(String::as_str)))?;
        if let Details::RobustSemaphore(Some(s)) = &object.details {
            let indent = widths[0] + 2;
            for holder in holder_lines(s, users) {
                writeln!(out, "{:indent$}- {}", "", show::escaped(&holder))?;
            }
        }
    }
    Ok(())
}

/// `info`: every known fact about one object, one per line.
fn describe(out: &mut impl Write, object: &Object, users: &Users) -> io::Result<()> {
    let mut facts: Vec<(&str, String)> = Vec::new();
    facts.push((
        "file",
        object.path.as_ref().map_or_else(
            || "none visible (no mqueue file system is mounted)".to_owned(),
            |p| p.display().to_string(),
        ),
    ));
    facts.push((
        "owner",
        object.uid.map_or_else(
            || "unknown".to_owned(),
            |uid| format!("{} (uid {uid})", users.display(Some(uid))),
        ),
    ));
    facts.push((
        "mode",
        object
            .mode
            .map_or_else(|| "unknown".to_owned(), |m| show::mode(Some(m))),
    ));
    facts.push((
        "created",
        object.created.map_or_else(
            || "unknown".to_owned(),
            |at| {
                let ago = show::age(at)
                    .map_or_else(String::new, |d| format!(" ({} ago)", show::duration(d)));
                format!("{}{ago}", show::utc(at))
            },
        ),
    ));
    let known = |n: Option<u32>| n.map_or_else(|| "unknown".to_owned(), |n| n.to_string());
    let known64 = |n: Option<u64>| n.map_or_else(|| "unknown".to_owned(), |n| n.to_string());
    match &object.details {
        Details::Semaphore { value, waiters } => {
            facts.push(("value", known(*value)));
            facts.push(("waiting", known(*waiters)));
        }
        Details::SharedMemory { size } => {
            facts.push(("size", format!("{} ({size} bytes)", show::size(*size))));
        }
        Details::MessageQueue {
            messages,
            max_messages,
            max_message_size,
            queued_bytes,
        } => {
            facts.push(("messages", known64(*messages)));
            facts.push(("max messages", known64(*max_messages)));
            let bytes =
                |n: Option<u64>| n.map_or_else(|| "unknown".to_owned(), |n| format!("{n} bytes"));
            facts.push(("max size", bytes(*max_message_size)));
            facts.push(("queued", bytes(*queued_bytes)));
        }
        Details::RobustSemaphore(Some(s)) => {
            facts.push(("slots", format!("{} ({} free)", s.slots, s.free)));
            facts.push((
                "attached",
                show::count(u64::from(s.attached), "process", "processes"),
            ));
            facts.push((
                "records",
                format!("{} (processes that may attach at once)", s.records),
            ));
            facts.push((
                "persistent",
                if s.persistent {
                    "yes (stays when the last process detaches)"
                } else {
                    "no (removed when the last process detaches)"
                }
                .to_owned(),
            ));
            facts.push((
                "reclaimed",
                format!(
                    "{} from holders that died",
                    show::count(s.reclaimed, "slot", "slots")
                ),
            ));
            let holders = holder_lines(s, users);
            if holders.is_empty() {
                facts.push(("holders", "none".to_owned()));
            }
            for (i, holder) in holders.into_iter().enumerate() {
                facts.push((if i == 0 { "holders" } else { "" }, holder));
            }
        }
        Details::RobustSemaphore(None) => {}
    }
    if let Some(problem) = &object.problem {
        facts.push(("problem", problem.clone()));
    }
    writeln!(out, "{} {}", object.kind, show::escaped(&object.name))?;
    let width = facts.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (key, value) in facts {
        writeln!(out, "  {key:<width$}  {}", show::escaped(&value))?;
    }
    Ok(())
}
