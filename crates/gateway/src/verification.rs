//! Transcripts for verifiers (DESIGN §7): the gateway saw both sides of every answer, so it
//! sends a sample of its transcripts to the verifiers registered on the ledger.
//!
//! # How often
//! A transcript of provider `j` is sent with probability
//! `p_j = max(rate, 1 / (n_j + 2))`, or 1 while `j` has an open dispute, where `n_j` is the
//! number of `j`'s transcripts this gateway already sent. `1 / (n + 2)` is the posterior mean
//! of the chance that `j` cheats on an answer after `n` checked answers and no challenge
//! (Laplace's rule, a uniform prior): a new provider is checked often, an established one at
//! the base `rate`, a flagged one always.
//!
//! # Where to
//! To one active verifier, chosen at random, that is not the provider itself:
//! `POST {endpoint}/v1/transcripts` with the transcript's canonical bytes, off the request
//! path.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use agora_types::{AccountId, Transcript};
use rand::{seq::SliceRandom as _, Rng as _};

use crate::{receipts::StoredReceipt, Gateway};

/// Decides which transcripts go to verifiers and counts them.
pub struct Sampler {
    rate: f64,
    sent_by_provider: Mutex<HashMap<AccountId, u64>>,
    sent: AtomicU64,
    failed: AtomicU64,
}

impl Sampler {
    /// A sampler with base rate `rate` (0 sends nothing, 1 sends everything).
    pub fn new(rate: f64) -> Self {
        Sampler {
            rate: if rate.is_finite() {
                rate.clamp(0.0, 1.0)
            } else {
                0.0
            },
            sent_by_provider: Mutex::default(),
            sent: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        }
    }

    /// The chance that the next transcript of `provider` is sent.
    pub fn probability(&self, provider: &AccountId, flagged: bool) -> f64 {
        if self.rate <= 0.0 {
            return 0.0;
        }
        if flagged {
            return 1.0;
        }
        (1.0 / (self.sent_for(provider) as f64 + 2.0)).max(self.rate)
    }

    /// Transcripts of `provider` sent so far.
    pub fn sent_for(&self, provider: &AccountId) -> u64 {
        self.lock().get(provider).copied().unwrap_or(0)
    }

    /// Counts one transcript of `provider` sent.
    fn note_sent(&self, provider: &AccountId) {
        *self.lock().entry(*provider).or_default() += 1;
        self.sent.fetch_add(1, Ordering::Relaxed);
    }

    /// Transcripts sent, and those whose verifier did not take them.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.sent.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<AccountId, u64>> {
        self.sent_by_provider
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}

/// Sends `stored`'s transcript to a verifier when the sampler draws it. Only the draw happens
/// on the request path; the transcript is built and sent by a task of its own.
pub(crate) fn offer(gateway: &Arc<Gateway>, stored: &StoredReceipt) {
    let Ok(provider) = stored.receipt.provider.parse::<AccountId>() else {
        return;
    };
    let sampler = &gateway.verification;
    let p = sampler.probability(&provider, gateway.directory.is_flagged(&provider));
    if p <= 0.0 || !rand::thread_rng().gen_bool(p) {
        return;
    }
    let verifiers: Vec<_> = gateway
        .directory
        .verifiers()
        .into_iter()
        .filter(|v| v.account != provider)
        .collect();
    let Some(target) = verifiers.choose(&mut rand::thread_rng()).cloned() else {
        return;
    };
    sampler.note_sent(&provider);
    let (gateway, stored) = (Arc::clone(gateway), stored.clone());
    tokio::spawn(async move {
        let failure = match stored.receipt.to_verified() {
            Ok(signed) => {
                let bytes = Transcript {
                    receipt: signed,
                    request: stored.request.into_bytes(),
                    output_tokens: stored.output_tokens,
                    output_logits: stored.output_logits,
                    output_text: stored.output_text,
                }
                .to_bytes();
                send(&gateway.http, &target.endpoint, bytes).await.err()
            }
            Err(err) => Some(format!("the receipt does not verify: {err}")),
        };
        if let Some(reason) = failure {
            gateway.verification.failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(target: "agora::gateway", verifier = %target.account, %reason, "verifier did not take a transcript");
        }
    });
}

/// `POST {endpoint}/v1/transcripts` with a transcript's canonical bytes.
async fn send(http: &reqwest::Client, endpoint: &str, bytes: Vec<u8>) -> Result<(), String> {
    let res = http
        .post(format!("{endpoint}/v1/transcripts"))
        .header(axum::http::header::CONTENT_TYPE, "application/octet-stream")
        .body(bytes)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if res.status().is_success() {
        return Ok(());
    }
    Err(format!(
        "{} {}",
        res.status(),
        res.text().await.unwrap_or_default()
    ))
}

#[cfg(test)]
mod tests {
    use agora_types::Keypair;

    use super::*;

    #[test]
    fn new_providers_are_checked_often_and_flagged_ones_always() {
        let provider = Keypair::from_bytes(&[7; 32]).account_id();
        let sampler = Sampler::new(0.05);
        assert_eq!(sampler.probability(&provider, false), 0.5);
        sampler.note_sent(&provider);
        assert!((sampler.probability(&provider, false) - 1.0 / 3.0).abs() < 1e-12);
        for _ in 0..100 {
            sampler.note_sent(&provider);
        }
        assert_eq!(sampler.probability(&provider, false), 0.05);
        assert_eq!(sampler.probability(&provider, true), 1.0);
        assert_eq!(Sampler::new(0.0).probability(&provider, true), 0.0);
        assert_eq!(Sampler::new(f64::NAN).probability(&provider, false), 0.0);
    }
}
