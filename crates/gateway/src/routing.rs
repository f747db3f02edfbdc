//! Choosing providers: candidates from the ledger, OpenRouter's `provider` preferences, health.

use agora_types::{Amount, UNITS_PER_AGR};
use rand::Rng;
use serde::Deserialize;

use crate::{directory::Candidate, health::HealthBook};

/// OpenRouter's `provider` object: routing preferences for one request.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Preferences {
    /// `price`, `latency` (time to first token) or `throughput` (tokens per second).
    #[serde(default)]
    pub sort: Option<Sort>,
    /// Providers to try first, in this order (accounts or endpoints).
    #[serde(default)]
    pub order: Vec<String>,
    /// Only these providers.
    #[serde(default)]
    pub only: Vec<String>,
    /// Never these providers.
    #[serde(default)]
    pub ignore: Vec<String>,
    /// Try other providers when the chosen ones fail (default true).
    #[serde(default)]
    pub allow_fallbacks: Option<bool>,
    /// Highest acceptable price, in AGR per million tokens.
    #[serde(default)]
    pub max_price: Option<MaxPrice>,
}

/// How to rank candidates.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Sort {
    /// Cheapest first.
    Price,
    /// Lowest time to first token first.
    Latency,
    /// Highest tokens per second first.
    Throughput,
}

/// Price ceilings in AGR per million tokens.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
pub struct MaxPrice {
    /// Prompt tokens.
    #[serde(default)]
    pub prompt: Option<f64>,
    /// Completion tokens.
    #[serde(default)]
    pub completion: Option<f64>,
}

/// Why no provider can take a request (503).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoRoute {
    /// Nobody active serves the model.
    #[error("no active provider serves model {0}")]
    NoProvider(String),
    /// `only` / `ignore`, or `order` without fallbacks, left nobody.
    #[error("no provider serving {0} is allowed by the request's only/ignore/order preferences")]
    Excluded(String),
    /// Every candidate costs more than `max_price`.
    #[error("every provider serving {0} is above the request's max_price")]
    AboveMaxPrice(String),
    /// Every candidate is cooling down after failures.
    #[error(
        "every provider serving {0} is unhealthy (cooling down after failures); retry shortly"
    )]
    AllUnhealthy(String),
}

impl Preferences {
    /// Whether to try more than the first choice.
    pub fn allow_fallbacks(&self) -> bool {
        self.allow_fallbacks.unwrap_or(true)
    }
}

fn names(candidate: &Candidate, list: &[String]) -> bool {
    let account = candidate.account.to_string();
    list.iter()
        .any(|p| *p == account || p.trim_end_matches('/') == candidate.endpoint)
}

fn agr_to_units(agr: f64) -> Amount {
    if !agr.is_finite() || agr <= 0.0 {
        return 0;
    }
    (agr * UNITS_PER_AGR as f64).floor() as Amount
}

/// Orders the candidates to try for one request: healthy providers allowed by `prefs`,
/// first by `order`, then by `sort` (or at random weighted by 1/price²), fallbacks after.
pub fn plan(
    model: &str,
    candidates: &[Candidate],
    prefs: &Preferences,
    health: &HealthBook,
    rng: &mut impl Rng,
) -> Result<Vec<Candidate>, NoRoute> {
    if candidates.is_empty() {
        return Err(NoRoute::NoProvider(model.into()));
    }
    let allowed: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| prefs.only.is_empty() || names(c, &prefs.only))
        .filter(|c| !names(c, &prefs.ignore))
        .collect();
    if allowed.is_empty() {
        return Err(NoRoute::Excluded(model.into()));
    }
    let affordable: Vec<&Candidate> = allowed
        .into_iter()
        .filter(|c| match prefs.max_price {
            None => true,
            Some(max) => {
                max.prompt.is_none_or(|p| c.price_in <= agr_to_units(p))
                    && max
                        .completion
                        .is_none_or(|p| c.price_out <= agr_to_units(p))
            }
        })
        .collect();
    if affordable.is_empty() {
        return Err(NoRoute::AboveMaxPrice(model.into()));
    }
    let mut healthy: Vec<Candidate> = affordable
        .into_iter()
        .filter(|c| health.is_healthy(&c.account))
        .cloned()
        .collect();
    if healthy.is_empty() {
        return Err(NoRoute::AllUnhealthy(model.into()));
    }
    match prefs.sort {
        Some(Sort::Price) => healthy.sort_by_key(|c| (c.price_total(), c.account)),
        Some(Sort::Latency) => healthy.sort_by(|a, b| {
            let ttft = |c: &Candidate| health.stats(&c.account).ttft_ms.unwrap_or(f64::MAX);
            ttft(a).total_cmp(&ttft(b))
        }),
        Some(Sort::Throughput) => healthy.sort_by(|a, b| {
            let tps = |c: &Candidate| health.stats(&c.account).tokens_per_s.unwrap_or(0.0);
            tps(b).total_cmp(&tps(a))
        }),
        None => weighted_shuffle(&mut healthy, rng),
    }
    // `order` puts the named providers first, in the order given.
    let rank = |c: &Candidate| {
        prefs
            .order
            .iter()
            .position(|p| names(c, std::slice::from_ref(p)))
            .unwrap_or(usize::MAX)
    };
    if !prefs.order.is_empty() {
        healthy.sort_by_key(rank);
    }
    if !prefs.allow_fallbacks() {
        // Without fallbacks only the named providers may serve, or the first choice when
        // none are named: never another provider in their place.
        if prefs.order.is_empty() {
            healthy.truncate(1);
        } else {
            healthy.retain(|c| rank(c) != usize::MAX);
            if healthy.is_empty() {
                return Err(if candidates.iter().any(|c| rank(c) != usize::MAX) {
                    NoRoute::AllUnhealthy(model.into())
                } else {
                    NoRoute::Excluded(model.into())
                });
            }
        }
    }
    Ok(healthy)
}

/// Random order where each draw picks a remaining provider with probability ∝ 1/price².
fn weighted_shuffle(list: &mut Vec<Candidate>, rng: &mut impl Rng) {
    let mut out = Vec::with_capacity(list.len());
    while !list.is_empty() {
        let weights: Vec<f64> = list
            .iter()
            .map(|c| {
                let price = (c.price_total().max(1)) as f64;
                1.0 / (price * price)
            })
            .collect();
        let total: f64 = weights.iter().sum();
        let mut pick = rng.gen::<f64>() * total;
        let mut index = list.len() - 1;
        for (i, w) in weights.iter().enumerate() {
            if pick < *w {
                index = i;
                break;
            }
            pick -= w;
        }
        out.push(list.remove(index));
    }
    *list = out;
}
