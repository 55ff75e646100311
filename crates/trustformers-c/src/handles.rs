//! Handles: the pointers C sees are numbers looked up in a registry of live objects, never
//! dereferenced. A freed handle, a handle of another kind, or garbage is an error instead of
//! a use-after-free, and an object freed while another thread uses it lives until that call
//! ends (the registry hands out shared references).

use crate::ffi::Failure;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Handle numbers are never reused; they start high and step by 16 so that they look like
/// aligned pointers to tools that print them.
static NEXT: AtomicUsize = AtomicUsize::new(0x7f00_0000);

/// The live objects of one kind.
pub struct Registry<T> {
    kind: &'static str,
    live: Mutex<BTreeMap<usize, Arc<T>>>,
}

impl<T> Registry<T> {
    pub const fn new(kind: &'static str) -> Self {
        Self {
            kind,
            live: Mutex::new(BTreeMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<usize, Arc<T>>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers `value`; its handle as a pointer of the opaque C type `H`.
    pub fn insert<H>(&self, value: T) -> *mut H {
        let id = NEXT.fetch_add(16, Ordering::Relaxed);
        self.lock().insert(id, Arc::new(value));
        std::ptr::without_provenance_mut(id)
    }

    /// The object behind `handle`.
    pub fn get<H>(&self, handle: *const H) -> Result<Arc<T>, Failure> {
        if handle.is_null() {
            return Err(Failure::invalid(format!(
                "the {} handle is NULL",
                self.kind
            )));
        }
        self.lock().get(&handle.addr()).cloned().ok_or_else(|| {
            Failure::invalid(format!(
                "not a live {} handle (already freed, or a handle of another kind)",
                self.kind
            ))
        })
    }

    /// Frees `handle` (NULL: nothing to do).
    pub fn remove<H>(&self, handle: *mut H) -> Result<(), Failure> {
        if handle.is_null() {
            return Ok(());
        }
        match self.lock().remove(&handle.addr()) {
            Some(_) => Ok(()),
            None => Err(Failure::invalid(format!(
                "not a live {} handle (already freed, or a handle of another kind)",
                self.kind
            ))),
        }
    }
}
