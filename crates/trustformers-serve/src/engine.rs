//! The scheduler (continuous batching): one thread owns the generative model and every
//! running sequence. Each round it admits waiting requests (up to `max_batch_size`
//! sequences), then advances every sequence by one step: a chunk of a new prompt, or one
//! token, so running streams keep flowing while a long prompt is read. The sequences
//! generating run as one batch each round ([`step_rows`]: one forward pass, each weight
//! read once, each sequence attending to its own KV cache); those still reading their
//! prompts run one chunk each, on their own. A sequence whose client has gone is dropped,
//! with its KV cache, at its next round.

use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::prefix::PrefixCache;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;
use trustformers::generation::processors::JsonConstraint;
use trustformers::generation::{step_rows, FinishReason, Sequence, Step, TextStream, TokenLogprob};
use trustformers::nn::kernels::GEMM_ROWS;
use trustformers::{GenerationConfig, LoadedModel};

/// One request's generation: `n` sequences from one prompt.
pub struct Job {
    pub prompt: Vec<u32>,
    pub config: GenerationConfig,
    pub n: usize,
    /// Constrained decoding (`response_format`), applied to each of the `n` sequences.
    pub constraint: Option<JsonConstraint>,
    pub events: UnboundedSender<Event>,
    pub received: Instant,
}

/// What a request's sequences report, in order for each sequence.
#[derive(Debug, Clone)]
pub enum Event {
    /// A token and the text it made ready (possibly empty: a piece still incomplete, or
    /// text that might begin a stop string).
    Token {
        index: usize,
        id: u32,
        text: String,
        logprob: Option<TokenLogprob>,
    },
    /// Sequence `index` ended after `completion_tokens` tokens.
    Finish {
        index: usize,
        reason: FinishReason,
        completion_tokens: usize,
    },
    /// The request failed; its sequences are gone.
    Error(ApiError),
}

/// How the scheduler runs.
#[derive(Debug, Clone, Copy)]
pub struct EngineOptions {
    /// Most sequences running at once.
    pub max_batch_size: usize,
    /// Most requests waiting for a place; more are refused with 429.
    pub max_queue: usize,
    /// Most prompt tokens a sequence runs in one round.
    pub prefill_chunk: usize,
    /// Most prompt tokens all sequences run in one round (at least one chunk runs), so
    /// that a burst of new prompts delays the running streams by a bounded time.
    pub prefill_budget: usize,
    /// KV caches of finished sequences kept for prompts that begin the same way
    /// ([`PrefixCache`]); 0 (the default) turns prefix caching off. With quantized
    /// weights a reused prefix changes which kernel computes the rest of the prompt (the
    /// int8 mat-vec below 32 tokens, the f32 GEMM from there), so a reply can differ from
    /// a fresh run's; with f32 weights only by rounding.
    pub prefix_cache_entries: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            max_batch_size: 8,
            max_queue: 64,
            prefill_chunk: 256,
            prefill_budget: 1024,
            prefix_cache_entries: 0,
        }
    }
}

/// State shared between the handlers and the scheduler thread.
struct Shared {
    /// Requests submitted and not yet admitted.
    queued: AtomicUsize,
    /// Sequences running, as of the scheduler's last round.
    running: AtomicUsize,
    cancel: AtomicBool,
}

/// The handle requests are submitted through; the thread stops when it is dropped.
pub struct Engine {
    jobs: mpsc::Sender<Job>,
    shared: Arc<Shared>,
    options: EngineOptions,
    metrics: Arc<Metrics>,
}

impl Engine {
    /// Starts the scheduler thread for `model`.
    pub fn start(
        model: Arc<LoadedModel>,
        options: EngineOptions,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Self> {
        let (jobs, rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            queued: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            cancel: AtomicBool::new(false),
        });
        let scheduler = Scheduler {
            model,
            options,
            shared: shared.clone(),
            metrics: metrics.clone(),
        };
        std::thread::Builder::new()
            .name("trustformers-scheduler".into())
            .spawn(move || scheduler.run(rx))?;
        Ok(Self {
            jobs,
            shared,
            options,
            metrics,
        })
    }

    /// The options it runs with.
    pub fn options(&self) -> EngineOptions {
        self.options
    }

    /// Queues `job`; 429 when `max_queue` requests are waiting already.
    pub fn submit(&self, job: Job) -> Result<(), ApiError> {
        if self.shared.cancel.load(Ordering::Relaxed) {
            return Err(ApiError::unavailable("the server is shutting down"));
        }
        // A request that a free place will take at the next round does not count
        // against the queue.
        let running = self.shared.running.load(Ordering::SeqCst);
        let free = self.options.max_batch_size.saturating_sub(running);
        let queued = self.shared.queued.fetch_add(1, Ordering::SeqCst);
        if queued >= self.options.max_queue + free {
            self.shared.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(ApiError::busy(format!(
                "{queued} requests are waiting already (--max-queue {}); retry later",
                self.options.max_queue
            )));
        }
        self.metrics.queued_requests.set((queued + 1) as f64);
        self.jobs.send(job).map_err(|_| {
            self.shared.queued.fetch_sub(1, Ordering::SeqCst);
            ApiError::unavailable("the scheduler has stopped")
        })
    }

    /// Ends every running and waiting sequence (shutdown): each stream gets its finish.
    pub fn cancel_all(&self) {
        self.shared.cancel.store(true, Ordering::SeqCst);
    }
}

/// One running sequence.
struct Active<'a> {
    seq: Sequence,
    text: TextStream<'a>,
    index: usize,
    events: UnboundedSender<Event>,
    received: Instant,
    last_token: Option<Instant>,
}

struct Scheduler {
    model: Arc<LoadedModel>,
    options: EngineOptions,
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
}

impl Scheduler {
    fn run(self, jobs: mpsc::Receiver<Job>) {
        let model = self.model.clone();
        let mut active: Vec<Active<'_>> = Vec::new();
        let mut waiting: Option<Job> = None;
        let mut prefixes = PrefixCache::new(self.options.prefix_cache_entries);
        loop {
            // Admit what fits.
            loop {
                let job = match waiting.take() {
                    Some(job) => job,
                    None if active.is_empty() => {
                        match jobs.recv_timeout(Duration::from_millis(100)) {
                            Ok(job) => job,
                            Err(RecvTimeoutError::Timeout) => break,
                            Err(RecvTimeoutError::Disconnected) => return,
                        }
                    }
                    None => match jobs.try_recv() {
                        Ok(job) => job,
                        Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                    },
                };
                if !active.is_empty() && active.len() + job.n > self.options.max_batch_size {
                    waiting = Some(job);
                    break;
                }
                self.shared.queued.fetch_sub(1, Ordering::SeqCst);
                if job.events.is_closed() {
                    continue;
                }
                self.admit(&model, job, &mut active, &mut prefixes);
            }
            if self.shared.cancel.load(Ordering::SeqCst) {
                for a in &mut active {
                    a.seq.stop(FinishReason::Stopped);
                    let _ = a.events.send(Event::Finish {
                        index: a.index,
                        reason: FinishReason::Stopped,
                        completion_tokens: a.seq.generated().len(),
                    });
                }
                active.clear();
                for job in waiting.take().into_iter().chain(jobs.try_iter()) {
                    self.shared.queued.fetch_sub(1, Ordering::SeqCst);
                    let _ = job.events.send(Event::Error(ApiError::unavailable(
                        "the server is shutting down",
                    )));
                }
            }
            self.round(&model, &mut active);
            let (done, running): (Vec<_>, Vec<_>) =
                active.drain(..).partition(|a| a.seq.finished().is_some());
            active = running;
            for a in done {
                // A sequence whose client went away (or that failed) frees its cache now.
                if a.seq.finished() != Some(FinishReason::Stopped) {
                    let (ids, cache) = a.seq.into_cache();
                    prefixes.insert(ids, cache);
                }
            }
            self.shared.running.store(active.len(), Ordering::SeqCst);
            self.metrics.active_sequences.set(active.len() as f64);
            self.metrics
                .queued_requests
                .set(self.shared.queued.load(Ordering::SeqCst) as f64);
            let bytes: usize =
                active.iter().map(|a| a.seq.cache_bytes()).sum::<usize>() + prefixes.bytes();
            self.metrics.kv_cache_bytes.set(bytes as f64);
        }
    }

    fn admit<'a>(
        &self,
        model: &'a LoadedModel,
        job: Job,
        active: &mut Vec<Active<'a>>,
        prefixes: &mut PrefixCache,
    ) {
        self.metrics
            .prompt_tokens
            .increment(job.prompt.len() as u64);
        let prefix = prefixes.lookup(&job.prompt);
        for index in 0..job.n {
            let mut config = job.config.clone();
            // The choices of one request differ when sampled.
            config.seed = config.seed.wrapping_add(index as u64);
            let lm = &*model.model;
            let seq = match &prefix {
                Some((cache, shared)) => {
                    Sequence::with_prefix(lm, &job.prompt, &config, cache.clone(), *shared)
                        .inspect(|_| self.metrics.prefix_cache_tokens.increment(*shared as u64))
                        .or_else(|_| Sequence::new(lm, &job.prompt, &config))
                }
                None => Sequence::new(lm, &job.prompt, &config),
            };
            let seq = seq.map(|seq| match &job.constraint {
                Some(c) => seq.with_processor(Box::new(c.clone())),
                None => seq,
            });
            match seq {
                Ok(seq) => active.push(Active {
                    seq,
                    text: TextStream::new(&model.tokenizer, &config.stop_strings),
                    index,
                    events: job.events.clone(),
                    received: job.received,
                    last_token: None,
                }),
                Err(e) => {
                    let _ = job.events.send(Event::Error(e.into()));
                    return;
                }
            }
        }
    }

    /// One round: prompt chunks for the sequences still reading their prompts (those whose
    /// chunks have one length in one pass, up to `prefill_budget` tokens in all), then one
    /// token for every generating sequence, all of them in one pass.
    fn round(&self, model: &LoadedModel, active: &mut [Active<'_>]) {
        let chunk = Some(self.options.prefill_chunk);
        let mut reading = Vec::new();
        let mut decoding = Vec::new();
        for a in active.iter_mut() {
            if a.events.is_closed() {
                // The client has gone: the sequence and its cache are dropped.
                a.seq.stop(FinishReason::Stopped);
            } else if a.seq.decoding() {
                decoding.push(a);
            } else if a.seq.finished().is_none() {
                reading.push(a);
            }
        }
        reading.sort_by_key(|a| a.seq.next_take(chunk));
        let mut budget = self.options.prefill_budget;
        let mut first = true;
        for group in reading.chunk_by_mut(|a, b| a.seq.next_take(chunk) == b.seq.next_take(chunk)) {
            let take = group[0].seq.next_take(chunk).max(1);
            // At least one prompt moves each round, however long its chunk.
            let rows = (budget / take).max(usize::from(first)).min(group.len());
            if rows == 0 {
                break;
            }
            first = false;
            budget = budget.saturating_sub(rows * take);
            if take >= GEMM_ROWS {
                self.step_group(model, &mut group[..rows], chunk);
            } else {
                // Short chunks together would reach the quantized kernels' GEMM path, which
                // rounds differently from the mat-vec path each takes alone.
                for one in group[..rows].chunks_mut(1) {
                    self.step_group(model, one, chunk);
                }
            }
        }
        // Below GEMM_ROWS rows a decode step takes the same kernels as one sequence alone.
        for part in decoding.chunks_mut(GEMM_ROWS - 1) {
            self.step_group(model, part, chunk);
        }
    }

    /// One step of `group` in one pass, reported to each sequence's client. A failure (or
    /// a bug) ends the group's requests only.
    fn step_group(&self, model: &LoadedModel, group: &mut [&mut Active<'_>], chunk: Option<usize>) {
        if group.is_empty() {
            return;
        }
        let steps = {
            let mut seqs: Vec<&mut Sequence> = group.iter_mut().map(|a| &mut a.seq).collect();
            std::panic::catch_unwind(AssertUnwindSafe(|| {
                step_rows(&*model.model, &mut seqs, chunk)
            }))
        };
        match steps {
            Ok(Ok(steps)) => {
                for (a, step) in group.iter_mut().zip(steps) {
                    self.report(a, step);
                }
            }
            Ok(Err(e)) => {
                let error = ApiError::from(e);
                for a in group.iter_mut() {
                    self.fail(a, error.clone());
                }
            }
            Err(_) => {
                for a in group.iter_mut() {
                    self.fail(a, ApiError::internal("generation failed (a bug)"));
                }
            }
        }
    }

    /// What one step of a sequence reports to its client.
    fn report(&self, a: &mut Active<'_>, step: Step) {
        let Step::Token(id, logprob) = step else {
            return;
        };
        let now = Instant::now();
        match a.last_token {
            None => self
                .metrics
                .time_to_first_token
                .record(now.duration_since(a.received).as_secs_f64()),
            Some(last) => self
                .metrics
                .time_per_output_token
                .record(now.duration_since(last).as_secs_f64()),
        }
        a.last_token = Some(now);
        self.metrics.generated_tokens.increment(1);
        let mut text = match a.text.push(id) {
            Ok(piece) => piece.to_owned(),
            Err(e) => return self.fail(a, e.into()),
        };
        if a.text.stopped() {
            a.seq.stop(FinishReason::StopString);
        } else if a.seq.finished().is_some() {
            match a.text.finish() {
                Ok(rest) => text.push_str(rest),
                Err(e) => return self.fail(a, e.into()),
            }
        }
        let _ = a.events.send(Event::Token {
            index: a.index,
            id,
            text,
            logprob,
        });
        if let Some(reason) = a.seq.finished() {
            let _ = a.events.send(Event::Finish {
                index: a.index,
                reason,
                completion_tokens: a.seq.generated().len(),
            });
        }
    }

    fn fail(&self, a: &mut Active<'_>, error: ApiError) {
        tracing::warn!(error = %error.message, "a sequence failed");
        a.seq.stop(FinishReason::Stopped);
        let _ = a.events.send(Event::Error(error));
    }
}
