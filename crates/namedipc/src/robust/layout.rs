//! The file layout of a robust semaphore (see docs/robust-semaphore.md):
//! a 64-byte header, `records` process records of 32 bytes, `slots` slots
//! of 32 bytes. All words are native-endian and naturally aligned.

/// "NIPCRSM1" as a native-endian u64.
pub(crate) const MAGIC: u64 = u64::from_ne_bytes(*b"NIPCRSM1");
/// The layout version this code reads and writes.
pub(crate) const VERSION: u32 = 1;
/// Size of the header in bytes.
pub(crate) const HEADER_LEN: usize = 64;
/// [`HEADER_LEN`] as the header's own field holds it.
pub(crate) const HEADER_LEN_FIELD: u32 = 64;
const _: () = assert!(HEADER_LEN_FIELD as usize == HEADER_LEN);
/// Size of one process record in bytes.
pub(crate) const RECORD_LEN: usize = 32;
/// Size of one slot in bytes.
pub(crate) const SLOT_LEN: usize = 32;
/// The most slots (the semaphore's maximum value) a file may have.
pub const MAX_SLOTS: u32 = 65_536;
/// The most process records a file may have.
pub const MAX_RECORDS: u32 = 65_536;
/// Liveness lock of record `r` is on byte `LOCK_BASE + r` (past the end of
/// the file: byte locks need no data behind them).
pub(crate) const LOCK_BASE: u64 = 1 << 40;

// Header fields (byte offsets).
pub(crate) const H_MAGIC: usize = 0;
pub(crate) const H_VERSION: usize = 8;
pub(crate) const H_HEADER_LEN: usize = 12;
pub(crate) const H_SLOTS: usize = 16;
pub(crate) const H_RECORDS: usize = 20;
/// Futex word, bumped by every release that may have waiters.
pub(crate) const H_SEQ: usize = 24;
/// Number of waiters (a hint: a killed waiter leaves it too high).
pub(crate) const H_WAITERS: usize = 28;
/// Count of slots reclaimed from dead processes (statistics).
pub(crate) const H_RECLAIMED: usize = 32;
/// Flags: [`FLAG_PERSISTENT`], [`FLAG_REMOVED`] (older files: 0).
pub(crate) const H_FLAGS: usize = 40;

/// Set at creation: the file stays when the last process detaches.
pub(crate) const FLAG_PERSISTENT: u32 = 1;
/// Set just before the name is removed, so that handles still attached to
/// this file notice on their next acquire without a syscall.
pub(crate) const FLAG_REMOVED: u32 = 2;

// Record fields, relative to the record.
/// `generation << 1 | in_use`.
pub(crate) const R_STATE: usize = 0;
pub(crate) const R_PID: usize = 8;
pub(crate) const R_UID: usize = 12;
/// The registrant's PID namespace (the inode of its `/proc/self/ns/pid`),
/// which says where `R_PID` means something; 0: not known (a writer that
/// did not say, as older versions of this library).
pub(crate) const R_PIDNS: usize = 16;

// Slot fields, relative to the slot.
/// 0 when free, else the holder's token.
pub(crate) const S_OWNER: usize = 0;
/// When it was taken, nanoseconds since the Unix epoch.
pub(crate) const S_SINCE: usize = 8;

/// Generations are 40 bits wide, so that a token fits record and generation.
pub(crate) const GEN_MASK: u64 = (1 << 40) - 1;

/// The size of a file with `slots` slots and `records` records.
pub(crate) fn file_len(slots: u32, records: u32) -> usize {
    HEADER_LEN + records as usize * RECORD_LEN + slots as usize * SLOT_LEN
}

/// Offset of record `r`.
pub(crate) fn record(r: u32) -> usize {
    HEADER_LEN + r as usize * RECORD_LEN
}

/// Offset of slot `i` in a file with `records` records.
pub(crate) fn slot(records: u32, i: u32) -> usize {
    HEADER_LEN + records as usize * RECORD_LEN + i as usize * SLOT_LEN
}

/// The token of record `r` in generation `generation`: never 0.
pub(crate) fn token(r: u32, generation: u64) -> u64 {
    (u64::from(r) + 1) << 40 | (generation & GEN_MASK)
}

/// The record and generation a non-zero token names.
pub(crate) fn split_token(token: u64) -> (u64, u64) {
    ((token >> 40).wrapping_sub(1), token & GEN_MASK)
}

/// Checks a header read from a file of `file_len` bytes; returns (slots,
/// records) or what is wrong. Nothing is trusted before this passes.
pub(crate) fn check_header(
    file_len: u64,
    magic: u64,
    version: u32,
    header_len: u32,
    slots: u32,
    records: u32,
) -> Result<(u32, u32), String> {
    if magic != MAGIC {
        return Err("the file does not start with the robust semaphore magic number".to_owned());
    }
    if version != VERSION {
        return Err(format!(
            "layout version {version}, but this library reads version {VERSION}"
        ));
    }
    if header_len as usize != HEADER_LEN {
        return Err(format!("header length {header_len}, expected {HEADER_LEN}"));
    }
    if slots == 0 || slots > MAX_SLOTS || records == 0 || records > MAX_RECORDS {
        return Err(format!(
            "{slots} slots and {records} records are outside the allowed range"
        ));
    }
    let expected = file_len_u64(slots, records);
    if file_len != expected {
        return Err(format!(
            "the file has {file_len} bytes, its header needs exactly {expected}"
        ));
    }
    Ok((slots, records))
}

fn file_len_u64(slots: u32, records: u32) -> u64 {
    file_len(slots, records) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_are_never_zero() {
        for (r, g) in [(0, 0), (5, 7), (MAX_RECORDS - 1, GEN_MASK)] {
            let t = token(r, g);
            assert_ne!(t, 0);
            assert_eq!(split_token(t), (u64::from(r), g));
        }
    }

    #[test]
    fn header_checks() {
        let len = file_len(2, 4) as u64;
        assert_eq!(check_header(len, MAGIC, VERSION, 64, 2, 4), Ok((2, 4)));
        assert!(check_header(len, 0, VERSION, 64, 2, 4).is_err());
        assert!(check_header(len, MAGIC, 2, 64, 2, 4).is_err());
        assert!(check_header(len, MAGIC, VERSION, 64, 0, 4).is_err());
        assert!(check_header(len - 1, MAGIC, VERSION, 64, 2, 4).is_err());
        assert!(check_header(len, MAGIC, VERSION, 64, u32::MAX, u32::MAX).is_err());
    }
}
