//! Users and groups by name and by number (getpwnam_r, getpwuid_r,
//! getgrnam_r, getgrgid_r), for the owners a caller trusts and for the
//! names in messages.

use std::ffi::{CStr, CString};
use std::io;
use std::mem::MaybeUninit;

/// The buffer the `_r` functions start with; grown on ERANGE up to
/// [`MAX_BUF`] (a group with thousands of members needs more than the start).
const START_BUF: usize = 1024;
const MAX_BUF: usize = 1 << 20;

/// Calls one of the reentrant lookups with a buffer that grows while it is
/// too small. `lookup` gets the buffer, stores what it found itself, and
/// returns the function's result (0, or an errno). Not found is not an error.
fn with_buffer(mut lookup: impl FnMut(&mut [libc::c_char]) -> libc::c_int) -> io::Result<()> {
    let mut len = START_BUF;
    loop {
        let mut buf = vec![0 as libc::c_char; len];
        match lookup(&mut buf) {
            libc::ERANGE if len < MAX_BUF => len *= 2,
            // "Not found" is 0 with a null result, but some libcs report it
            // as one of these errnos instead.
            0 | libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM => return Ok(()),
            errno => return Err(io::Error::from_raw_os_error(errno)),
        }
    }
}

/// The uid of the user called `name`, if there is one.
pub(crate) fn uid_by_name(name: &CStr) -> io::Result<Option<u32>> {
    let mut uid = None;
    with_buffer(|buf| {
        let mut pwd = MaybeUninit::<libc::passwd>::uninit();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: `name` is NUL-terminated; `pwd`, `buf` and `result` are
        // valid, writable memory of the sizes passed, for the duration of the call.
        let ret = unsafe {
            libc::getpwnam_r(
                name.as_ptr(),
                pwd.as_mut_ptr(),
                buf.as_mut_ptr(),
                buf.len(),
                &raw mut result,
            )
        };
        if ret == 0 && !result.is_null() {
            // SAFETY: a non-null result points at `pwd`, which the call filled in.
            uid = Some(unsafe { (*result).pw_uid });
        }
        ret
    })?;
    Ok(uid)
}

/// The gid of the group called `name`, if there is one.
pub(crate) fn gid_by_name(name: &CStr) -> io::Result<Option<u32>> {
    let mut gid = None;
    with_buffer(|buf| {
        let mut grp = MaybeUninit::<libc::group>::uninit();
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: as in `uid_by_name`, for getgrnam_r.
        let ret = unsafe {
            libc::getgrnam_r(
                name.as_ptr(),
                grp.as_mut_ptr(),
                buf.as_mut_ptr(),
                buf.len(),
                &raw mut result,
            )
        };
        if ret == 0 && !result.is_null() {
            // SAFETY: a non-null result points at `grp`, which the call filled in.
            gid = Some(unsafe { (*result).gr_gid });
        }
        ret
    })?;
    Ok(gid)
}

/// The name of the user `uid`, if it has one (lossy UTF-8).
pub(crate) fn user_name(uid: u32) -> io::Result<Option<String>> {
    let mut name = None;
    with_buffer(|buf| {
        let mut pwd = MaybeUninit::<libc::passwd>::uninit();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: `pwd`, `buf` and `result` are valid, writable memory of the
        // sizes passed, for the duration of the call.
        let ret = unsafe {
            libc::getpwuid_r(
                uid,
                pwd.as_mut_ptr(),
                buf.as_mut_ptr(),
                buf.len(),
                &raw mut result,
            )
        };
        if ret == 0 && !result.is_null() {
            // SAFETY: a non-null result points at `pwd`, whose pw_name points
            // into `buf` at a NUL-terminated string; both live until after the copy.
            name = Some(unsafe { c_string((*result).pw_name) });
        }
        ret
    })?;
    Ok(name)
}

/// The name of the group `gid`, if it has one (lossy UTF-8).
pub(crate) fn group_name(gid: u32) -> io::Result<Option<String>> {
    let mut name = None;
    with_buffer(|buf| {
        let mut grp = MaybeUninit::<libc::group>::uninit();
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: as in `user_name`, for getgrgid_r.
        let ret = unsafe {
            libc::getgrgid_r(
                gid,
                grp.as_mut_ptr(),
                buf.as_mut_ptr(),
                buf.len(),
                &raw mut result,
            )
        };
        if ret == 0 && !result.is_null() {
            // SAFETY: a non-null result points at `grp`, whose gr_name points
            // into `buf` at a NUL-terminated string; both live until after the copy.
            name = Some(unsafe { c_string((*result).gr_name) });
        }
        ret
    })?;
    Ok(name)
}

/// Copies a C string (null: empty) into a `String`, replacing bytes that are not UTF-8.
///
/// # Safety
/// `ptr` is null or points at a NUL-terminated string that lives for the call.
unsafe fn c_string(ptr: *const libc::c_char) -> String {
    if ptr.is_null() {
        return String::new();
    }
    // SAFETY: the caller promises a live NUL-terminated string.
    unsafe { CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}

/// A name as a C string; `None` if it holds a NUL (no such user or group).
pub(crate) fn c_name(name: &str) -> Option<CString> {
    CString::new(name).ok()
}
