//! Prometheus text metrics: `agora_provider_*`.

use std::{
    collections::BTreeMap,
    fmt::Write,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use crate::ServedModel;

/// An engine-side metric: name, Prometheus type, and how to read it from a snapshot.
type EngineMetric = (
    &'static str,
    &'static str,
    fn(&agora_engine::StatsSnapshot) -> u64,
);

/// Counters kept by the HTTP layer; the engines keep their own.
#[derive(Default)]
pub(crate) struct Metrics {
    responses: Mutex<BTreeMap<u16, u64>>,
    ttft_micros_sum: AtomicU64,
    ttft_count: AtomicU64,
    decode_micros_sum: AtomicU64,
    decode_tokens_sum: AtomicU64,
}

impl Metrics {
    /// Counts a response by status code.
    pub(crate) fn response(&self, status: u16) {
        if let Ok(mut map) = self.responses.lock() {
            *map.entry(status).or_default() += 1;
        }
    }

    /// Records a time to first token.
    pub(crate) fn first_token(&self, elapsed: Duration) {
        self.ttft_micros_sum
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
        self.ttft_count.fetch_add(1, Ordering::Relaxed);
    }

    /// Records the decode phase of one request: tokens after the first, and the time they took.
    pub(crate) fn decode(&self, tokens: u32, elapsed: Duration) {
        if tokens == 0 {
            return;
        }
        self.decode_tokens_sum
            .fetch_add(u64::from(tokens), Ordering::Relaxed);
        self.decode_micros_sum
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    /// Renders every metric as Prometheus text.
    pub(crate) fn render(&self, models: &[Arc<ServedModel>]) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# TYPE agora_provider_requests_total counter");
        if let Ok(map) = self.responses.lock() {
            for (status, count) in map.iter() {
                let _ = writeln!(
                    out,
                    "agora_provider_requests_total{{status=\"{status}\"}} {count}"
                );
            }
        }
        let ttft_count = self.ttft_count.load(Ordering::Relaxed);
        let ttft_sum = self.ttft_micros_sum.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "# TYPE agora_provider_time_to_first_token_seconds summary"
        );
        let _ = writeln!(
            out,
            "agora_provider_time_to_first_token_seconds_sum {ttft_sum}"
        );
        let _ = writeln!(
            out,
            "agora_provider_time_to_first_token_seconds_count {ttft_count}"
        );
        let decode_tokens = self.decode_tokens_sum.load(Ordering::Relaxed);
        let decode_secs = self.decode_micros_sum.load(Ordering::Relaxed) as f64 / 1e6;
        let rate = if decode_secs > 0.0 {
            decode_tokens as f64 / decode_secs
        } else {
            0.0
        };
        let _ = writeln!(out, "# TYPE agora_provider_decode_tokens_per_second gauge");
        let _ = writeln!(out, "agora_provider_decode_tokens_per_second {rate}");
        let gauges: [EngineMetric; 5] = [
            ("queue_depth", "gauge", |s| s.queued),
            ("batch_sequences", "gauge", |s| s.active),
            ("batch_tokens", "gauge", |s| s.last_batch_tokens),
            ("tokens_in_total", "counter", |s| s.prompt_tokens),
            ("tokens_out_total", "counter", |s| s.completion_tokens),
        ];
        for (name, kind, read) in gauges {
            let _ = writeln!(out, "# TYPE agora_provider_{name} {kind}");
            for model in models.iter() {
                let value = read(&model.engine.stats());
                let _ = writeln!(
                    out,
                    "agora_provider_{name}{{model=\"{}\"}} {value}",
                    model.name
                );
            }
        }
        out
    }
}
