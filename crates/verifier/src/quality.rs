//! Quality scores (DESIGN §7): what a verifier observed of each provider during an epoch, and
//! the score in millionths it commits to and reveals for the ledger's Yuma-style combination.
//!
//! A provider's score is `uptime × pass rate × speed`:
//! - **uptime**: the share of `/health` probes it answered;
//! - **pass rate**: the share of its checked answers that passed (1 with none checked);
//! - **speed**: `0.5 + 0.25 × throughput / best throughput + 0.25 × best TTFT / TTFT` over the
//!   providers probed with a paid request this epoch (1 when none was), so a slow but honest
//!   provider keeps at least half its score and a cheater's zero pass rate is never offset.
//!
//! Providers never probed in an epoch get no score from this verifier (the ledger counts that
//! as 0 in the combination, so a verifier probes everyone it can reach).

use std::collections::BTreeMap;

use agora_types::{AccountId, ProviderScore};

/// A perfect score.
pub const PPM: u32 = 1_000_000;

/// What one verifier saw of one provider in one epoch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observations {
    /// `/health` probes sent.
    pub probes: u32,
    /// Probes answered with 200.
    pub probes_ok: u32,
    /// Answers checked.
    pub checks: u32,
    /// Checked answers that passed.
    pub checks_passed: u32,
    /// Time to first token of paid probe requests, in milliseconds.
    pub ttft_ms: Vec<f64>,
    /// Completion tokens per second of paid probe requests, after the first token.
    pub tokens_per_s: Vec<f64>,
}

impl Observations {
    fn uptime(&self) -> f64 {
        f64::from(self.probes_ok) / f64::from(self.probes.max(1))
    }

    fn pass_rate(&self) -> f64 {
        if self.checks == 0 {
            1.0
        } else {
            f64::from(self.checks_passed) / f64::from(self.checks)
        }
    }
}

/// Observations by epoch and provider.
#[derive(Debug, Default)]
pub struct QualityBook {
    epochs: BTreeMap<u64, BTreeMap<AccountId, Observations>>,
}

impl QualityBook {
    fn entry(&mut self, epoch: u64, provider: AccountId) -> &mut Observations {
        self.epochs
            .entry(epoch)
            .or_default()
            .entry(provider)
            .or_default()
    }

    /// Records one `/health` probe.
    pub fn record_probe(&mut self, epoch: u64, provider: AccountId, ok: bool) {
        let obs = self.entry(epoch, provider);
        obs.probes += 1;
        obs.probes_ok += u32::from(ok);
    }

    /// Records one checked answer.
    pub fn record_check(&mut self, epoch: u64, provider: AccountId, passed: bool) {
        let obs = self.entry(epoch, provider);
        obs.checks += 1;
        obs.checks_passed += u32::from(passed);
    }

    /// Records the timing of one paid probe request.
    pub fn record_timing(&mut self, epoch: u64, provider: AccountId, ttft_ms: f64, tps: f64) {
        let obs = self.entry(epoch, provider);
        obs.ttft_ms.push(ttft_ms);
        obs.tokens_per_s.push(tps);
    }

    /// What was seen of `provider` in `epoch`.
    pub fn observations(&self, epoch: u64, provider: &AccountId) -> Option<&Observations> {
        self.epochs.get(&epoch)?.get(provider)
    }

    /// Whether a paid probe of `provider` was timed in `epoch`.
    pub fn timed(&self, epoch: u64, provider: &AccountId) -> bool {
        self.observations(epoch, provider)
            .is_some_and(|obs| !obs.ttft_ms.is_empty())
    }

    /// The scores for `epoch`, sorted by provider, one per provider probed at least once.
    pub fn scores(&self, epoch: u64) -> Vec<ProviderScore> {
        let Some(providers) = self.epochs.get(&epoch) else {
            return Vec::new();
        };
        let best_tps = providers
            .values()
            .filter_map(|obs| median(&obs.tokens_per_s))
            .fold(0.0, f64::max);
        let best_ttft = providers
            .values()
            .filter_map(|obs| median(&obs.ttft_ms))
            .fold(f64::INFINITY, f64::min);
        providers
            .iter()
            .filter(|(_, obs)| obs.probes > 0)
            .map(|(provider, obs)| {
                let speed = match (median(&obs.tokens_per_s), median(&obs.ttft_ms)) {
                    (Some(tps), Some(ttft)) if best_tps > 0.0 && ttft > 0.0 => {
                        0.5 + 0.25 * (tps / best_tps).min(1.0) + 0.25 * (best_ttft / ttft).min(1.0)
                    }
                    // Probed by others' timing but not this one: the slowest speed.
                    _ if best_tps > 0.0 => 0.5,
                    _ => 1.0,
                };
                let score = obs.uptime() * obs.pass_rate() * speed;
                ProviderScore {
                    provider: *provider,
                    score_ppm: (score.clamp(0.0, 1.0) * f64::from(PPM)).round() as u32,
                }
            })
            .collect()
    }

    /// Forgets every epoch before `epoch`.
    pub fn prune_before(&mut self, epoch: u64) {
        self.epochs = self.epochs.split_off(&epoch);
    }
}

fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    Some(sorted[sorted.len() / 2])
}

#[cfg(test)]
mod tests {
    use agora_types::Keypair;

    use super::*;

    fn account(n: u8) -> AccountId {
        Keypair::from_bytes(&[n; 32]).account_id()
    }

    #[test]
    fn uptime_and_pass_rate_multiply() {
        let (a, b) = (account(1), account(2));
        let mut book = QualityBook::default();
        for i in 0..4 {
            book.record_probe(7, a, true);
            book.record_probe(7, b, i != 0);
        }
        book.record_check(7, a, true);
        book.record_check(7, b, true);
        book.record_check(7, b, false);
        let scores = book.scores(7);
        let of = |who: AccountId| scores.iter().find(|s| s.provider == who).unwrap().score_ppm;
        assert_eq!(of(a), PPM);
        assert_eq!(of(b), 375_000, "3/4 uptime x 1/2 passed");
        assert!(scores.windows(2).all(|w| w[0].provider < w[1].provider));
        assert!(book.scores(8).is_empty());
    }

    #[test]
    fn a_failed_check_is_never_offset_by_speed() {
        let (fast, slow) = (account(1), account(2));
        let mut book = QualityBook::default();
        book.record_probe(0, fast, true);
        book.record_probe(0, slow, true);
        book.record_timing(0, fast, 100.0, 40.0);
        book.record_timing(0, slow, 400.0, 10.0);
        book.record_check(0, fast, false);
        let scores = book.scores(0);
        assert_eq!(scores[0].score_ppm.min(scores[1].score_ppm), 0);
        let slow_score = scores.iter().find(|s| s.provider == slow).unwrap();
        // 0.5 + 0.25 x 10/40 + 0.25 x 100/400
        assert_eq!(slow_score.score_ppm, 625_000);
    }

    #[test]
    fn unprobed_providers_get_no_score_and_old_epochs_are_pruned() {
        let mut book = QualityBook::default();
        book.record_check(3, account(1), true);
        assert!(book.scores(3).is_empty());
        book.record_probe(4, account(1), true);
        book.prune_before(4);
        assert!(book.observations(3, &account(1)).is_none());
        assert_eq!(book.scores(4).len(), 1);
    }
}
