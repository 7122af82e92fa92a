//! C strings built on the stack from checked parts, for the names and paths
//! every open passes to the OS: the buffer is not zeroed first and the
//! result is not scanned again for a NUL, since the one scan that checks a
//! name (`paths::checked_body`, through [`NulFree::check`]) has already
//! proved there is none.

use std::ffi::CStr;
use std::mem::MaybeUninit;
use std::ptr;

/// Room for the longest C string built here, with its NUL: a directory's
/// path of up to 16 bytes and a file name of up to NAME_MAX (255) bytes
/// (`paths` checks at compile time that its longest path fits).
pub(crate) const CAPACITY: usize = 16 + 255 + 1;

/// Bytes with no NUL among them, nor the one other byte their check
/// refused: made only by [`NulFree::check`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct NulFree<'a>(&'a [u8]);

impl<'a> NulFree<'a> {
    /// `bytes`, if they hold neither a NUL nor `also`: one pass for both.
    pub(crate) fn check(bytes: &'a [u8], also: u8) -> Option<Self> {
        (!holds_either(bytes, 0, also)).then_some(Self(bytes))
    }
}

/// Whether `bytes` hold `a` or `b`: sixteen at a time with SSE2, which
/// every x86_64 processor has, for a name of sixteen bytes or more, else
/// eight at a time as words. For `bench/instructions.py`'s 26-byte names
/// SSE2 took 48 instructions fewer per open than the words (rows 6 and 10,
/// one check each).
#[cfg(target_arch = "x86_64")]
fn holds_either(bytes: &[u8], a: u8, b: u8) -> bool {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    let Some(last) = bytes.last_chunk::<16>() else {
        return holds_either_in_words(bytes, a, b);
    };
    #[allow(clippy::cast_possible_wrap)] // the bytes' bits, as the intrinsic takes them
    let (a, b) = (a as i8, b as i8);
    let holds = |chunk: &[u8; 16]| {
        // SAFETY: SSE2 is part of x86_64 itself (every such processor has
        // it, and the target enables it), and `chunk` is 16 readable bytes,
        // as the unaligned load reads.
        unsafe {
            #[allow(clippy::cast_ptr_alignment)] // an unaligned load
            let block = _mm_loadu_si128(chunk.as_ptr().cast::<__m128i>());
            let either = _mm_or_si128(
                _mm_cmpeq_epi8(block, _mm_set1_epi8(a)),
                _mm_cmpeq_epi8(block, _mm_set1_epi8(b)),
            );
            _mm_movemask_epi8(either) != 0
        }
    };
    // The last block overlaps the one before it unless the length is a
    // multiple of sixteen: the bytes left over are read with it.
    // (Every chunk is sixteen bytes long, so the conversion's fallback
    // never runs.)
    bytes
        .chunks_exact(16)
        .any(|block| holds(block.try_into().unwrap_or(last)))
        || holds(last)
}

#[cfg(not(target_arch = "x86_64"))]
fn holds_either(bytes: &[u8], a: u8, b: u8) -> bool {
    holds_either_in_words(bytes, a, b)
}

/// Whether `bytes` hold `a` or `b`, read eight at a time as words. Names
/// are short (the longest is 255 bytes, most under 32), where memchr2's
/// setup cost more than its scan: `paths::checked_body` of a 7-byte name
/// took 150 instructions with memchr2 (93 of them memchr2's), 97 with
/// this (callgrind); for the benchmark's 26-byte names the two cost alike.
fn holds_either_in_words(bytes: &[u8], a: u8, b: u8) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    // Exact for "is any byte zero": a borrow can only mark bytes above a
    // byte that is zero already.
    let has_zero = |word: u64| word.wrapping_sub(ONES) & !word & HIGHS != 0;
    let (splat_a, splat_b) = (ONES * u64::from(a), ONES * u64::from(b));
    let holds = |word: [u8; 8]| {
        let word = u64::from_ne_bytes(word);
        has_zero(word ^ splat_a) || has_zero(word ^ splat_b)
    };
    let Some(last) = bytes.last_chunk::<8>() else {
        return bytes.iter().any(|&byte| byte == a || byte == b);
    };
    // The last word overlaps the one before it unless the length is a
    // multiple of eight: the bytes left over are read with it. (Every
    // chunk is eight bytes long, so the conversion's fallback never runs.)
    bytes
        .chunks_exact(8)
        .any(|word| holds(word.try_into().unwrap_or(*last)))
        || holds(*last)
}

/// Runs `f` with `head` and then `body` joined into one C string on the
/// stack, or `too_long` if they do not fit in [`CAPACITY`] bytes with
/// their NUL. `f`'s result is returned as it is, not wrapped: an open's
/// handle is some 150 bytes, and each wrapping moved it once more (a
/// `memcpy` call, about 29 instructions, callgrind).
pub(crate) fn with_joined<R>(
    head: &CStr,
    body: NulFree<'_>,
    f: impl FnOnce(&CStr) -> R,
    too_long: impl FnOnce() -> R,
) -> R {
    let (head, body) = (head.to_bytes(), body.0);
    let len = head.len() + body.len();
    // Leaves at least one byte for the NUL.
    if len >= CAPACITY {
        return too_long();
    }
    let mut buf = MaybeUninit::<[u8; CAPACITY]>::uninit();
    let start = buf.as_mut_ptr().cast::<u8>();
    // SAFETY: `head.len() + body.len() < CAPACITY`, so both copies and the
    // NUL stay within `buf`, which is this function's own and overlaps
    // neither part.
    unsafe {
        ptr::copy_nonoverlapping(head.as_ptr(), start, head.len());
        ptr::copy_nonoverlapping(body.as_ptr(), start.add(head.len()), body.len());
        start.add(len).write(0);
    }
    // SAFETY: the copies and the write above initialised bytes 0..=len of
    // `buf`, which outlives the borrow (`f` runs before it ends).
    let bytes = unsafe { std::slice::from_raw_parts(start, len + 1) };
    // SAFETY: the last byte is the NUL written above, and there is no other:
    // `head` is a C string (no NUL before its end, which `to_bytes` leaves
    // out) and `body` is `NulFree`.
    let c_str = unsafe { CStr::from_bytes_with_nul_unchecked(bytes) };
    f(c_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_the_parts_and_refuses_what_does_not_fit() {
        let body = NulFree::check(b"jobs", b'/').unwrap();
        let joined = with_joined(c"/run/x/sem.", body, |c| Some(c.to_owned()), || None).unwrap();
        assert_eq!(joined.to_bytes(), b"/run/x/sem.jobs");
        assert_eq!(
            with_joined(c"", body, |c| Some(c.to_owned()), || None)
                .unwrap()
                .to_bytes(),
            b"jobs"
        );
        let fits = vec![b'x'; CAPACITY - 1];
        let fits = NulFree::check(&fits, b'/').unwrap();
        assert_eq!(
            with_joined(c"", fits, |c| Some(c.to_bytes().len()), || None),
            Some(CAPACITY - 1)
        );
        let too_long = vec![b'x'; CAPACITY];
        let refused = |head, body| with_joined(head, body, |_| false, || true);
        assert!(refused(c"", NulFree::check(&too_long, b'/').unwrap()));
        assert!(refused(c"/", fits));
    }

    #[test]
    fn a_nul_or_the_other_byte_is_refused() {
        assert!(NulFree::check(b"a\0b", b'/').is_none());
        assert!(NulFree::check(b"a/b", b'/').is_none());
        assert!(NulFree::check(b"", b'/').is_some());
    }

    #[test]
    fn both_scans_agree_at_every_position_of_every_length() {
        // The word-at-a-time scan is the whole check off x86_64, and on it
        // only below sixteen bytes: it is held to the same answers here.
        for len in 0..=300 {
            let clean: Vec<u8> = (0..len)
                .map(|i| [b'a', 0x01, 0x80, 0xff, b'.', b'0'][i % 6])
                .collect();
            assert!(!holds_either_in_words(&clean, 0, b'/'), "len {len}");
            for position in 0..len {
                for refused in [0, b'/'] {
                    let mut bytes = clean.clone();
                    bytes[position] = refused;
                    assert!(
                        holds_either_in_words(&bytes, 0, b'/') && holds_either(&bytes, 0, b'/'),
                        "len {len}, {refused:#x} at {position}"
                    );
                }
            }
        }
    }

    #[test]
    fn every_position_of_every_length_is_checked() {
        // Every length a name can have, each byte that must be refused at
        // every position, and bytes near them (0x01, 0x80, 0xff, '.', '0')
        // that must not be.
        for len in 0..=300 {
            let clean: Vec<u8> = (0..len)
                .map(|i| [b'a', 0x01, 0x80, 0xff, b'.', b'0'][i % 6])
                .collect();
            assert!(NulFree::check(&clean, b'/').is_some(), "len {len}");
            for position in 0..len {
                for refused in [0, b'/'] {
                    let mut bytes = clean.clone();
                    bytes[position] = refused;
                    assert!(
                        NulFree::check(&bytes, b'/').is_none(),
                        "len {len}, {refused:#x} at {position}"
                    );
                }
            }
        }
    }
}
