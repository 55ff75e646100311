//! Opt-in timing of a forward pass by part (projections, attention, norms, ...): where one
//! decode step's time goes (`trustformers bench --profile`).
//!
//! Off, a [`scope`] costs one relaxed atomic load. On, each scope measures its own time
//! without the time of the scopes it encloses, so the parts add up to the time spent inside
//! any scope and nothing is counted twice. Scopes opened inside a [`Part::Head`] scope count
//! as the head: the output projection is a linear layer, but it is reported on its own.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What a scope's time is counted as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Token (and position) embedding lookups.
    Embedding,
    /// Linear layers of the body: the mat-vecs of decode, the GEMMs of prefill.
    Linear,
    /// Attention without its projections: KV cache, scores, softmax, weighted values.
    Attention,
    /// Rotary position embeddings.
    Rope,
    /// RMSNorm and LayerNorm.
    Norm,
    /// The MLP's activation and gating.
    Activation,
    /// The output projection to the vocabulary (and soft-capping).
    Head,
    /// Choosing the next token from the logits.
    Sampling,
}

impl Part {
    /// Every part, in report order.
    pub const ALL: [Part; 8] = [
        Part::Linear,
        Part::Head,
        Part::Attention,
        Part::Norm,
        Part::Rope,
        Part::Activation,
        Part::Embedding,
        Part::Sampling,
    ];

    /// A short lower-case name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Part::Embedding => "embedding",
            Part::Linear => "linear (mat-vec / GEMM)",
            Part::Attention => "attention (cache, scores, softmax)",
            Part::Rope => "rope",
            Part::Norm => "norms",
            Part::Activation => "activation",
            Part::Head => "output head",
            Part::Sampling => "sampling",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

static ENABLED: AtomicBool = AtomicBool::new(false);
static NANOS: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];
static CALLS: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];

thread_local! {
    /// Open scopes on this thread: their part and the time of the scopes they enclose.
    static OPEN: RefCell<Vec<(Part, Duration)>> = const { RefCell::new(Vec::new()) };
}

/// Turns timing on or off for the whole process.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether timing is on.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Zeroes the totals.
pub fn reset() {
    for n in NANOS.iter().chain(&CALLS) {
        n.store(0, Ordering::Relaxed);
    }
}

/// Time and number of scopes per part since the last [`reset`], in [`Part::ALL`] order.
pub fn totals() -> Vec<(Part, Duration, u64)> {
    Part::ALL
        .iter()
        .map(|&p| {
            (
                p,
                Duration::from_nanos(NANOS[p.index()].load(Ordering::Relaxed)),
                CALLS[p.index()].load(Ordering::Relaxed),
            )
        })
        .collect()
}

/// Times the rest of the enclosing block as `part` (when timing is on).
#[must_use = "the scope measures until it is dropped"]
pub fn scope(part: Part) -> Scope {
    if !enabled() {
        return Scope(None);
    }
    let (part, absorbed) = OPEN.with(|open| {
        let mut open = open.borrow_mut();
        let (part, absorbed) = match open.last() {
            Some((Part::Head, _)) => (Part::Head, true),
            _ => (part, false),
        };
        open.push((part, Duration::ZERO));
        (part, absorbed)
    });
    Scope(Some(Open {
        part,
        absorbed,
        start: Instant::now(),
    }))
}

/// An open timing scope; see [`scope`].
pub struct Scope(Option<Open>);

struct Open {
    part: Part,
    /// Counted as the enclosing head's time rather than as a call of its own.
    absorbed: bool,
    start: Instant,
}

impl Drop for Scope {
    fn drop(&mut self) {
        let Some(Open {
            part,
            absorbed,
            start,
        }) = self.0
        else {
            return;
        };
        let elapsed = start.elapsed();
        OPEN.with(|open| {
            let mut open = open.borrow_mut();
            let inner = open.pop().map_or(Duration::ZERO, |(_, inner)| inner);
            if let Some((_, parent_inner)) = open.last_mut() {
                *parent_inner += elapsed;
            }
            let own = elapsed.saturating_sub(inner);
            NANOS[part.index()].fetch_add(own.as_nanos() as u64, Ordering::Relaxed);
            if !absorbed {
                CALLS[part.index()].fetch_add(1, Ordering::Relaxed);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spin(d: Duration) {
        let t = Instant::now();
        while t.elapsed() < d {}
    }

    /// One test, since the totals are process-wide; it opens only parts that no other test
    /// of this crate times (attention layers, sampling, the head), so tests running beside it
    /// do not add to what it reads.
    #[test]
    fn nested_scopes_count_their_own_time_and_the_head_keeps_its_children() {
        set_enabled(true);
        reset();
        {
            let _attn = scope(Part::Attention);
            spin(Duration::from_millis(4));
            {
                let _inner = scope(Part::Sampling);
                spin(Duration::from_millis(12));
            }
        }
        {
            let _head = scope(Part::Head);
            let _inner = scope(Part::Sampling);
            spin(Duration::from_millis(3));
        }
        set_enabled(false);
        {
            let _off = scope(Part::Sampling);
            spin(Duration::from_millis(2));
        }
        let t: Vec<_> = totals();
        let get = |p: Part| {
            t.iter()
                .find(|(q, ..)| *q == p)
                .map(|&(_, d, n)| (d, n))
                .unwrap()
        };
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let (attn, n_attn) = get(Part::Attention);
        let (inner, n_inner) = get(Part::Sampling);
        let (head, n_head) = get(Part::Head);
        // Attention's own time excludes the 12 ms scope inside it; the head keeps its
        // child's time. (Lower bounds are exact; upper bounds leave room for preemption.)
        assert!((4.0..12.0).contains(&ms(attn)), "attention {attn:?}");
        assert!((12.0..40.0).contains(&ms(inner)), "inner {inner:?}");
        assert!((3.0..12.0).contains(&ms(head)), "head {head:?}");
        // The scope inside the head is not a call of its own; the one opened while timing
        // was off is not counted at all.
        assert_eq!((n_attn, n_inner, n_head), (1, 1, 1));
    }
}
