//! The bytes a checkpoint file is read from: a read-only memory map of the file, or a buffer
//! the caller already holds (WebAssembly has no file system: the weights arrive from `fetch`
//! or Node's `fs` as bytes).

use crate::{Error, Result};
use std::path::Path;

/// A whole checkpoint file's bytes, mapped or owned.
pub enum FileBytes {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl FileBytes {
    /// Memory-maps the file at `path`.
    pub fn map(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: the map is read-only; like every mmap-based loader we rely on the file not
        // being truncated by another process while it is mapped.
        let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        Ok(Self::Mapped(mmap))
    }

    /// Maps `start..start + len` of a mapped file in one call (`MADV_POPULATE_READ`) before
    /// it is copied out, instead of one page fault per few pages. Only a hint: where the
    /// kernel lacks it, the copy faults the pages in as before.
    pub fn populate(&self, start: usize, len: usize) {
        #[cfg(target_os = "linux")]
        if let Self::Mapped(mmap) = self {
            drop(mmap.advise_range(memmap2::Advice::PopulateRead, start, len));
        }
        #[cfg(not(target_os = "linux"))]
        let _ = (start, len);
    }

    /// Hints that `start..start + len` has been copied out and will not be read soon: a
    /// mapped file's pages leave this process's resident memory (they stay in the page
    /// cache; a later read faults the same bytes back in). Nothing happens to owned bytes.
    pub fn release(&self, start: usize, len: usize) {
        #[cfg(unix)]
        if let Self::Mapped(mmap) = self {
            // SAFETY: the map is private and read-only, never written: MADV_DONTNEED only
            // drops pages that read back unchanged from the file, so nothing that reads the
            // range (now or later) sees different bytes.
            let dropped = unsafe {
                mmap.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, len)
            };
            // Only a hint: if the kernel refuses, the pages stay resident and nothing else
            // changes.
            drop(dropped);
        }
        #[cfg(not(unix))]
        let _ = (start, len);
    }
}

impl std::ops::Deref for FileBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Self::Mapped(mmap) => mmap,
            Self::Owned(bytes) => bytes,
        }
    }
}

/// Asks for transparent huge pages over the 2 MiB-aligned part of `ptr..ptr + len`, an
/// allocation about to be filled with weights: one page fault per 2 MiB instead of one per
/// 4 KiB (where the system leaves huge pages to `madvise`). Only a hint.
pub fn advise_huge_pages(ptr: *mut u8, len: usize) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = (ptr as usize).next_multiple_of(HUGE);
        let end = (ptr as usize).saturating_add(len) / HUGE * HUGE;
        if end > start {
            // SAFETY: MADV_HUGEPAGE changes no memory contents, and the range lies inside an
            // allocation the caller owns.
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (ptr, len);
}
