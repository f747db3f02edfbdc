//! Provider health: passive failures and active probes put a provider in a cooldown that
//! doubles with each consecutive failure and ends at the first success; time to first token
//! and throughput are tracked as moving averages.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use agora_types::AccountId;

/// First cooldown after a failure.
pub const BASE_COOLDOWN: Duration = Duration::from_millis(500);
/// Longest cooldown.
pub const MAX_COOLDOWN: Duration = Duration::from_secs(30);
/// Weight of a new sample in the moving averages.
const EWMA_ALPHA: f64 = 0.2;
/// Health transitions kept (all providers together).
const MAX_TRANSITIONS: usize = 512;

/// What the gateway knows about one provider.
#[derive(Clone, Debug, Default)]
pub struct ProviderStats {
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// Not routed to before this instant.
    pub cooldown_until: Option<Instant>,
    /// Moving average of time to first token, in milliseconds.
    pub ttft_ms: Option<f64>,
    /// Moving average of decode speed, in tokens per second.
    pub tokens_per_s: Option<f64>,
    /// Requests that succeeded.
    pub successes: u64,
    /// Requests or probes that failed.
    pub failures: u64,
}

impl ProviderStats {
    /// Whether the provider is cooling down at `now`.
    pub fn cooling(&self, now: Instant) -> bool {
        self.cooldown_until.is_some_and(|until| now < until)
    }
}

/// A provider went into cooldown or came back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The provider.
    pub account: AccountId,
    /// Whether it is healthy after the transition.
    pub healthy: bool,
}

/// Health of every provider seen.
#[derive(Default)]
pub struct HealthBook {
    stats: Mutex<HashMap<AccountId, ProviderStats>>,
    transitions: Mutex<VecDeque<Transition>>,
}

fn ewma(old: Option<f64>, sample: f64) -> Option<f64> {
    Some(match old {
        None => sample,
        Some(old) => old + EWMA_ALPHA * (sample - old),
    })
}

impl HealthBook {
    fn with<T>(&self, account: &AccountId, f: impl FnOnce(&mut ProviderStats) -> T) -> T {
        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        f(stats.entry(*account).or_default())
    }

    /// Whether the provider may be routed to now.
    pub fn is_healthy(&self, account: &AccountId) -> bool {
        self.with(account, |s| !s.cooling(Instant::now()))
    }

    /// The last transitions of `account`, newest first.
    pub fn transitions(&self, account: &AccountId, limit: usize) -> Vec<Transition> {
        let transitions = self.transitions.lock().unwrap_or_else(|e| e.into_inner());
        transitions
            .iter()
            .rev()
            .filter(|t| t.account == *account)
            .take(limit)
            .cloned()
            .collect()
    }

    fn record(&self, account: &AccountId, healthy: bool) {
        let at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut transitions = self.transitions.lock().unwrap_or_else(|e| e.into_inner());
        if transitions.len() >= MAX_TRANSITIONS {
            transitions.pop_front();
        }
        transitions.push_back(Transition {
            at_ms,
            account: *account,
            healthy,
        });
    }

    /// A copy of a provider's stats.
    pub fn stats(&self, account: &AccountId) -> ProviderStats {
        self.with(account, |s| s.clone())
    }

    /// A failure: the cooldown starts, twice as long as the last one.
    pub fn failure(&self, account: &AccountId) {
        let first = self.with(account, |s| {
            s.failures += 1;
            s.consecutive_failures = s.consecutive_failures.saturating_add(1);
            let doublings = s.consecutive_failures.saturating_sub(1).min(16);
            let cooldown = BASE_COOLDOWN
                .saturating_mul(1u32 << doublings)
                .min(MAX_COOLDOWN);
            s.cooldown_until = Some(Instant::now() + cooldown);
            s.consecutive_failures == 1
        });
        if first {
            self.record(account, false);
        }
    }

    /// A success: the cooldown ends and the backoff resets.
    pub fn success(&self, account: &AccountId) {
        let recovered = self.with(account, |s| {
            s.successes += 1;
            let recovered = s.consecutive_failures > 0;
            s.consecutive_failures = 0;
            s.cooldown_until = None;
            recovered
        });
        if recovered {
            self.record(account, true);
        }
    }

    /// A probe answered: a provider in cooldown recovers at once.
    pub fn probe_ok(&self, account: &AccountId) {
        let recovered = self.with(account, |s| {
            let recovered = s.consecutive_failures > 0;
            s.consecutive_failures = 0;
            s.cooldown_until = None;
            recovered
        });
        if recovered {
            tracing::info!(target: "agora::gateway", provider = %account, "provider recovered");
            self.record(account, true);
        }
    }

    /// Records a time to first token.
    pub fn first_token(&self, account: &AccountId, elapsed: Duration) {
        self.with(account, |s| {
            s.ttft_ms = ewma(s.ttft_ms, elapsed.as_secs_f64() * 1000.0)
        });
    }

    /// Records decode speed over one answer.
    pub fn throughput(&self, account: &AccountId, tokens: u32, elapsed: Duration) {
        if tokens < 2 || elapsed.is_zero() {
            return;
        }
        self.with(account, |s| {
            s.tokens_per_s = ewma(s.tokens_per_s, f64::from(tokens) / elapsed.as_secs_f64())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cooldown_backs_off_and_recovers() {
        let book = HealthBook::default();
        let who = agora_types::Keypair::from_seed(b"p").account_id();
        assert!(book.is_healthy(&who));
        book.failure(&who);
        assert!(!book.is_healthy(&who));
        let first = book.stats(&who).cooldown_until.unwrap();
        book.failure(&who);
        let second = book.stats(&who).cooldown_until.unwrap();
        assert!(
            second - first >= BASE_COOLDOWN,
            "the second cooldown is longer"
        );
        book.probe_ok(&who);
        assert!(book.is_healthy(&who));
        assert_eq!(book.stats(&who).consecutive_failures, 0);
        let healthy: Vec<bool> = book
            .transitions(&who, 10)
            .iter()
            .map(|t| t.healthy)
            .collect();
        assert_eq!(
            healthy,
            [true, false],
            "one cooldown, one recovery, newest first"
        );
    }
}
