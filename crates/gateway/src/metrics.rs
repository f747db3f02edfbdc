//! Prometheus text metrics: responses by status, latency, failovers.

use std::{
    collections::BTreeMap,
    fmt::Write,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
    time::Duration,
};

/// The gateway's counters.
#[derive(Default)]
pub(crate) struct Metrics {
    by_status: Mutex<BTreeMap<u16, u64>>,
    latency_us_total: AtomicU64,
    retries_before_first_token: AtomicU64,
    failovers_mid_stream: AtomicU64,
}

impl Metrics {
    /// Counts a response and the time to its headers.
    pub(crate) fn response(&self, status: u16, elapsed: Duration) {
        *self
            .by_status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(status)
            .or_default() += 1;
        self.latency_us_total
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    /// Counts a move to the next provider, before or after the answer started.
    pub(crate) fn failover(&self, mid_stream: bool) {
        let counter = if mid_stream {
            &self.failovers_mid_stream
        } else {
            &self.retries_before_first_token
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text, with the transcripts sent to verifiers and those refused.
    pub(crate) fn render(&self, transcripts: (u64, u64)) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# TYPE agora_gateway_transcripts_sent_total counter\nagora_gateway_transcripts_sent_total {}\n# TYPE agora_gateway_transcripts_refused_total counter\nagora_gateway_transcripts_refused_total {}",
            transcripts.0, transcripts.1
        );
        out.push_str("# TYPE agora_gateway_responses_total counter\n");
        for (status, count) in self
            .by_status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "agora_gateway_responses_total{{status=\"{status}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "# TYPE agora_gateway_header_latency_seconds_total counter\nagora_gateway_header_latency_seconds_total {}",
            self.latency_us_total.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "# TYPE agora_gateway_retries_before_first_token_total counter\nagora_gateway_retries_before_first_token_total {}",
            self.retries_before_first_token.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# TYPE agora_gateway_failovers_mid_stream_total counter\nagora_gateway_failovers_mid_stream_total {}",
            self.failovers_mid_stream.load(Ordering::Relaxed)
        );
        out
    }
}
