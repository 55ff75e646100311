//! What every exported function shares: the status codes, the per-thread last error, the
//! panic guard, and checked conversions of the caller's pointers.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use trustformers::core::ErrorKind;
use trustformers::Error;

/// What a call ended in.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum trustformers_status {
    /// Success.
    TRUSTFORMERS_OK = 0,
    /// A bad argument: a null or freed handle, a null pointer, text that is not UTF-8,
    /// malformed JSON, a setting out of range, or a model of the wrong kind.
    TRUSTFORMERS_INVALID_ARGUMENT = 1,
    /// A file, directory or model name that does not exist.
    TRUSTFORMERS_NOT_FOUND = 2,
    /// A file that cannot be read or is not a usable checkpoint or tokenizer.
    TRUSTFORMERS_BAD_CHECKPOINT = 3,
    /// The caller's buffer is too small; the length needed was written to the length
    /// argument, and nothing else.
    TRUSTFORMERS_BUFFER_TOO_SMALL = 4,
    /// A failure inside the engine (or a bug, caught before it reached the caller).
    TRUSTFORMERS_INTERNAL = 5,
}

pub use trustformers_status::*;

/// A failed call: its status and message.
pub struct Failure {
    pub status: trustformers_status,
    pub message: String,
}

impl Failure {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self {
            status: TRUSTFORMERS_INVALID_ARGUMENT,
            message: message.into(),
        }
    }
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        let status = match err.kind() {
            ErrorKind::NotFound => TRUSTFORMERS_NOT_FOUND,
            ErrorKind::BadFile => TRUSTFORMERS_BAD_CHECKPOINT,
            ErrorKind::InvalidInput => TRUSTFORMERS_INVALID_ARGUMENT,
            ErrorKind::Internal => TRUSTFORMERS_INTERNAL,
        };
        Self {
            status,
            message: err.to_string(),
        }
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: &str) {
    // A message never holds NUL in practice; if one did, it is cut there.
    let text = message.split('\0').next().unwrap_or_default();
    let c = CString::new(text).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

/// Runs an exported function's body: its failure becomes the status and the thread's last
/// error, and a panic is caught there (it must never unwind into C).
pub fn run(body: impl FnOnce() -> Result<(), Failure>) -> trustformers_status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => TRUSTFORMERS_OK,
        Ok(Err(f)) => {
            set_last_error(&f.message);
            f.status
        }
        Err(panic) => {
            let what = trustformers::core::panic_message(&*panic);
            set_last_error(&format!("internal error (please report it): {what}"));
            TRUSTFORMERS_INTERNAL
        }
    }
}

/// The message of this thread's last failed call ("" when none failed yet). Valid until
/// the next failing call on the same thread; do not free it.
#[no_mangle]
pub extern "C" fn trustformers_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// The library's version ("0.1.0"); static, do not free it.
#[no_mangle]
pub extern "C" fn trustformers_version() -> *const c_char {
    static VERSION: &CStr =
        match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
            Ok(v) => v,
            Err(_) => c"",
        };
    VERSION.as_ptr()
}

/// Strings handed to the caller, so that freeing one twice, or freeing a pointer the
/// library never gave, is an error instead of heap corruption.
static STRINGS: Mutex<BTreeSet<usize>> = Mutex::new(BTreeSet::new());

/// `text` as a string the caller frees with [`trustformers_string_free`].
pub fn give_string(text: String) -> Result<*mut c_char, Failure> {
    let c = CString::new(text)
        .map_err(|_| Failure::invalid("the text holds a NUL character, which C strings cannot"))?;
    let ptr = c.into_raw();
    STRINGS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(ptr.addr());
    Ok(ptr)
}

/// Frees a string the library returned. NULL is accepted (nothing to do); a pointer the
/// library did not return, or one already freed, is refused.
///
/// # Safety
/// `text` is NULL or a pointer this library returned.
#[no_mangle]
pub unsafe extern "C" fn trustformers_string_free(text: *mut c_char) -> trustformers_status {
    run(|| {
        if text.is_null() {
            return Ok(());
        }
        let known = STRINGS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&text.addr());
        if !known {
            return Err(Failure::invalid(
                "trustformers_string_free: not a string this library returned (or freed already)",
            ));
        }
        // SAFETY: the pointer came from `CString::into_raw` in `give_string` and was live.
        drop(unsafe { CString::from_raw(text) });
        Ok(())
    })
}

/// A NUL-terminated UTF-8 argument.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that outlives the call.
pub unsafe fn str_arg<'a>(ptr: *const c_char, name: &str) -> Result<&'a str, Failure> {
    if ptr.is_null() {
        return Err(Failure::invalid(format!("`{name}` is NULL")));
    }
    // SAFETY: non-null and NUL-terminated by the caller's contract.
    let c = unsafe { CStr::from_ptr(ptr) };
    c.to_str().map_err(|e| {
        Failure::invalid(format!(
            "`{name}` is not valid UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        ))
    })
}

/// An optional string argument (NULL: absent).
///
/// # Safety
/// As [`str_arg`].
pub unsafe fn opt_str_arg<'a>(ptr: *const c_char, name: &str) -> Result<Option<&'a str>, Failure> {
    match ptr.is_null() {
        true => Ok(None),
        // SAFETY: as the caller's contract.
        false => unsafe { str_arg(ptr, name) }.map(Some),
    }
}

/// `len` elements at `ptr` (NULL is allowed for none).
///
/// # Safety
/// `ptr` points to `len` initialised elements, or is NULL with `len` 0.
pub unsafe fn slice_arg<'a, T>(ptr: *const T, len: usize, name: &str) -> Result<&'a [T], Failure> {
    if len == 0 {
        return Ok(&[]);
    }
    check_span::<T>(ptr.is_null(), len, name)?;
    // SAFETY: non-null, and the caller's contract gives `len` elements.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// `len` writable elements at `ptr`.
///
/// # Safety
/// `ptr` points to `len` writable elements, or is NULL with `len` 0.
pub unsafe fn slice_out<'a, T>(
    ptr: *mut T,
    len: usize,
    name: &str,
) -> Result<&'a mut [T], Failure> {
    if len == 0 {
        return Ok(&mut []);
    }
    check_span::<T>(ptr.is_null(), len, name)?;
    // SAFETY: non-null, and the caller's contract gives `len` writable elements.
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
}

fn check_span<T>(null: bool, len: usize, name: &str) -> Result<(), Failure> {
    if null {
        return Err(Failure::invalid(format!(
            "`{name}` is NULL with a length of {len}"
        )));
    }
    match len.checked_mul(std::mem::size_of::<T>()) {
        Some(bytes) if bytes <= isize::MAX as usize => Ok(()),
        _ => Err(Failure::invalid(format!(
            "`{name}`: a length of {len} elements overflows the address space"
        ))),
    }
}

/// Writes `value` through an out-pointer.
///
/// # Safety
/// `ptr` is NULL or valid for one write of `T`.
pub unsafe fn write_out<T>(ptr: *mut T, value: T, name: &str) -> Result<(), Failure> {
    if ptr.is_null() {
        return Err(Failure::invalid(format!("`{name}` is NULL")));
    }
    // SAFETY: non-null and writable by the caller's contract.
    unsafe { ptr.write(value) };
    Ok(())
}

/// Copies `values` into the caller's buffer of `capacity` elements and writes the count to
/// `out_len`; a buffer too small gets nothing but the count needed.
///
/// # Safety
/// `buffer` holds `capacity` writable elements (or is NULL with 0), `out_len` is writable.
pub unsafe fn fill<T: Copy>(
    values: &[T],
    buffer: *mut T,
    capacity: usize,
    out_len: *mut usize,
    name: &str,
) -> Result<(), Failure> {
    if buffer.is_null() && capacity > 0 {
        return Err(Failure::invalid(format!(
            "`{name}` is NULL with a capacity of {capacity}"
        )));
    }
    // SAFETY: forwarded caller contract.
    unsafe { write_out(out_len, values.len(), "out_len")? };
    if values.len() > capacity {
        return Err(Failure {
            status: TRUSTFORMERS_BUFFER_TOO_SMALL,
            message: format!(
                "`{name}` holds {capacity} elements, {} are needed",
                values.len()
            ),
        });
    }
    // SAFETY: forwarded caller contract.
    let out = unsafe { slice_out(buffer, values.len(), name)? };
    out.copy_from_slice(values);
    Ok(())
}

/// Resolves a model name as the CLI does; a name written as a local path (starting with
/// `.`, `/` or `~`) that does not exist is TRUSTFORMERS_NOT_FOUND.
pub fn resolve(name: &str) -> Result<PathBuf, Failure> {
    if name.starts_with(['.', '/', '~']) && !Path::new(name).exists() {
        return Err(Failure {
            status: TRUSTFORMERS_NOT_FOUND,
            message: format!("{name}: no such file or directory"),
        });
    }
    Ok(trustformers::resolve_model(Some(name))?)
}
