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
