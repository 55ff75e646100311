//! The server's metrics, kept in a Prometheus recorder of its own (not the process-wide
//! one, so that servers in one process, as in the tests, count apart) and rendered by
//! `GET /metrics` in Prometheus' text format.

use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

const METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, None);

/// Latency buckets in seconds, from a fast decode step to a long prompt on a busy server.
const SECONDS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Every metric the server exports.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    pub prompt_tokens: Counter,
    pub generated_tokens: Counter,
    /// Prompt tokens taken from the prefix cache instead of computed.
    pub prefix_cache_tokens: Counter,
    pub active_sequences: Gauge,
    pub queued_requests: Gauge,
    pub kv_cache_bytes: Gauge,
    pub time_to_first_token: Histogram,
    pub time_per_output_token: Histogram,
}

impl Metrics {
    pub fn new() -> Self {
        let builder = PrometheusBuilder::new();
        // Buckets for the `_seconds` histograms (the builder only refuses an empty list).
        let builder =
            match builder.set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS) {
                Ok(b) => b,
                Err(_) => PrometheusBuilder::new(),
            };
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // HELP lines of the exposition.
        for (name, help) in [
            (
                "trustformers_requests_total",
                "HTTP requests by endpoint and status",
            ),
            ("trustformers_prompt_tokens_total", "Prompt tokens admitted"),
            ("trustformers_generated_tokens_total", "Tokens generated"),
            (
                "trustformers_prefix_cache_tokens_total",
                "Prompt tokens taken from the prefix cache",
            ),
        ] {
            recorder.describe_counter(name.into(), Some(Unit::Count), help.into());
        }
        for (name, help) in [
            ("trustformers_active_sequences", "Sequences being generated"),
            (
                "trustformers_queued_requests",
                "Requests waiting for a place",
            ),
            (
                "trustformers_kv_cache_bytes",
                "Bytes held by KV caches, the prefix cache's included",
            ),
        ] {
            recorder.describe_gauge(name.into(), None, help.into());
        }
        for (name, help) in [
            (
                "trustformers_time_to_first_token_seconds",
                "From a request's arrival to its first token",
            ),
            (
                "trustformers_time_per_output_token_seconds",
                "Between a sequence's consecutive tokens",
            ),
        ] {
            recorder.describe_histogram(name.into(), Some(Unit::Seconds), help.into());
        }
        let counter =
            |name: &'static str| recorder.register_counter(&Key::from_name(name), &METADATA);
        let gauge = |name: &'static str| recorder.register_gauge(&Key::from_name(name), &METADATA);
        let histogram =
            |name: &'static str| recorder.register_histogram(&Key::from_name(name), &METADATA);
        let metrics = Self {
            prompt_tokens: counter("trustformers_prompt_tokens_total"),
            generated_tokens: counter("trustformers_generated_tokens_total"),
            prefix_cache_tokens: counter("trustformers_prefix_cache_tokens_total"),
            active_sequences: gauge("trustformers_active_sequences"),
            queued_requests: gauge("trustformers_queued_requests"),
            kv_cache_bytes: gauge("trustformers_kv_cache_bytes"),
            time_to_first_token: histogram("trustformers_time_to_first_token_seconds"),
            time_per_output_token: histogram("trustformers_time_per_output_token_seconds"),
            recorder,
            handle,
        };
        // Present from the start, at zero.
        metrics.active_sequences.set(0.0);
        metrics.queued_requests.set(0.0);
        metrics.kv_cache_bytes.set(0.0);
        metrics
    }

    /// Counts a request answered by `endpoint` with `status`.
    pub fn request(&self, endpoint: &str, status: u16) {
        let labels = vec![
            Label::new("endpoint", endpoint.to_owned()),
            Label::new("status", status.to_string()),
        ];
        self.recorder
            .register_counter(
                &Key::from_parts("trustformers_requests_total", labels),
                &METADATA,
            )
            .increment(1);
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        self.handle.render()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
