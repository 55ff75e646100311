//! Ctrl-C: while text is streaming, the first press stops generation (what was produced so
//! far stays printed) and a second one exits; otherwise it exits at once with status 130.

use anyhow::Result;
use std::sync::atomic::{AtomicBool, Ordering};

static ARMED: AtomicBool = AtomicBool::new(false);
static STOP: AtomicBool = AtomicBool::new(false);

/// Installs the handler (once per process).
pub fn install() -> Result<()> {
    ctrlc::set_handler(|| {
        if ARMED.load(Ordering::SeqCst) && !STOP.swap(true, Ordering::SeqCst) {
            return;
        }
        eprintln!();
        std::process::exit(130);
    })?;
    Ok(())
}

/// Marks a stretch of streaming; Ctrl-C during it sets [`requested`] instead of exiting.
pub struct Streaming;

impl Streaming {
    pub fn start() -> Self {
        STOP.store(false, Ordering::SeqCst);
        ARMED.store(true, Ordering::SeqCst);
        Self
    }

    /// Whether Ctrl-C was pressed since `start`.
    pub fn requested(&self) -> bool {
        STOP.load(Ordering::SeqCst)
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        ARMED.store(false, Ordering::SeqCst);
    }
}
