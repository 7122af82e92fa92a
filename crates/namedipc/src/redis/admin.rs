//! What needs no handle: describing one semaphore or every one on a
//! server, and removing one, each through a one-off connection.

use std::time::{Duration, SystemTime};

use ::redis::Value;

use super::keys::{self, Keys};
use super::scripts::scripts;
use super::server::{Link, Server};
use super::{corrupt, invocation, Lease, RedisSemaphoreInfo, KIND};
use crate::error::{Error, Result};
use crate::paths;

/// Reads the INFO script's answer; None when the semaphore does not exist.
pub(super) fn parse_info(
    name: &str,
    server: &Server,
    value: Value,
) -> Result<Option<RedisSemaphoreInfo>> {
    let bad = || {
        corrupt(
            name,
            server,
            "the server's description of it has an unknown form",
        )
    };
    let Value::Array(items) = value else {
        return Err(bad());
    };
    if items.is_empty() {
        return Ok(None);
    }
    let mut items = items.into_iter();
    let number = |v: Option<Value>| match v {
        Some(Value::Int(n)) => Ok(n),
        _ => Err(bad()),
    };
    let slots = u32::try_from(number(items.next())?).map_err(|_| bad())?;
    let value = u32::try_from(number(items.next())?).map_err(|_| bad())?;
    let mut holders = Vec::new();
    for item in items {
        let (slot, fence, since, remaining, pid, host): (i64, i64, i64, i64, i64, String) =
            ::redis::from_redis_value(item).map_err(|_| bad())?;
        holders.push(Lease {
            host,
            pid: u32::try_from(pid).map_err(|_| bad())?,
            since: SystemTime::UNIX_EPOCH
                + Duration::from_micros(u64::try_from(since).map_err(|_| bad())?),
            expires_in: Duration::from_micros(u64::try_from(remaining).unwrap_or(0)),
            fence: u64::try_from(fence).map_err(|_| bad())?,
            slot: u32::try_from(slot).map_err(|_| bad())?,
        });
    }
    holders.sort_by_key(|lease| lease.slot);
    Ok(Some(RedisSemaphoreInfo {
        name: name.to_owned(),
        slots,
        value,
        holders,
    }))
}

/// Describes the semaphore `name` through a one-off connection.
fn describe_one(
    server: &Server,
    link: &mut Link,
    name: &str,
) -> Result<Option<RedisSemaphoreInfo>> {
    let keys = Keys::of(name);
    let value = link.call(server, name, |con| {
        invocation(&scripts().info, &keys).invoke::<Value>(con)
    })?;
    parse_info(name, server, value)
}

/// Every semaphore on the server at `url`, by name (SCAN, so it does not
/// block the server on a large database).
pub fn list(url: &str, connect_timeout: Duration) -> Result<Vec<RedisSemaphoreInfo>> {
    let server = Server::new(url, connect_timeout)?;
    let mut link = Link::new(connect_timeout);
    let mut names = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = link.call(&server, "", |con| {
            ::redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(keys::META_PATTERN)
                .arg("COUNT")
                .arg(1000)
                .query(con)
        })?;
        names.extend(
            keys.iter()
                .filter_map(|k| keys::name_of_meta_key(k))
                .map(str::to_owned),
        );
        if next == 0 {
            break;
        }
        cursor = next;
    }
    names.sort();
    names.dedup();
    let mut found = Vec::with_capacity(names.len());
    for name in names {
        // Removed since the scan saw it: not listed.
        if let Some(info) = describe_one(&server, &mut link, &name)? {
            found.push(info);
        }
    }
    Ok(found)
}

/// The semaphore `name` on the server at `url`; `NotFound` if there is none.
pub fn info(url: &str, name: &str, connect_timeout: Duration) -> Result<RedisSemaphoreInfo> {
    paths::to_c_name(KIND, name)?;
    let name = paths::canonical(name);
    let server = Server::new(url, connect_timeout)?;
    let mut link = Link::new(connect_timeout);
    describe_one(&server, &mut link, &name)?.ok_or(Error::NotFound { kind: KIND, name })
}

/// Removes the semaphore `name`: every key of it, so that its holders'
/// next renewal is refused (they learn their lease is lost) and its next
/// acquire creates it anew. `NotFound` if there is none.
pub fn unlink(url: &str, name: &str, connect_timeout: Duration) -> Result<()> {
    paths::to_c_name(KIND, name)?;
    let name = paths::canonical(name);
    let server = Server::new(url, connect_timeout)?;
    let mut link = Link::new(connect_timeout);
    let keys = Keys::of(&name);
    let existed = link.call(&server, &name, |con| {
        invocation(&scripts().unlink, &keys).invoke::<i64>(con)
    })?;
    if existed == 1 {
        Ok(())
    } else {
        Err(Error::NotFound { kind: KIND, name })
    }
}
