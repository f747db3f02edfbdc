//! Agora's sampler: deterministic, documented, and re-runnable by a verifier.
//!
//! # The rule
//! - `temperature == 0`: greedy. The token with the highest logit wins; ties go to the lowest id.
//! - otherwise: divide the logits by `temperature`, keep the `top_k` highest (all when `top_k == 0`),
//!   take the softmax over those, keep the smallest prefix (by probability, ties by id) whose mass
//!   reaches `top_p`, renormalize, and draw one token with a uniform number from ChaCha20.
//!
//! # Randomness
//! Output position `i` draws from `ChaCha20Rng::seed_from_u64(seed)` on stream `i`, so each
//! position's draw depends only on the seed and the position, never on what ran before. That
//! makes a stream continued on another machine from position `i` draw exactly what the first
//! would have drawn, and lets a verifier recheck any position on its own.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// The default number of candidates kept by top-k when sampling.
pub const DEFAULT_TOP_K: u32 = 40;

/// How the next token is chosen from the logits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplingParams {
    /// Softmax temperature; `0` means greedy.
    pub temperature: f32,
    /// Nucleus mass in `(0, 1]`; `1` keeps every candidate.
    pub top_p: f32,
    /// Candidates kept before top-p; `0` keeps all.
    pub top_k: u32,
    /// Seed of the per-position ChaCha20 streams.
    pub seed: u64,
}

impl SamplingParams {
    /// Greedy decoding.
    pub fn greedy() -> Self {
        SamplingParams {
            temperature: 0.0,
            top_p: 1.0,
            top_k: 0,
            seed: 0,
        }
    }

    /// Whether these parameters select greedy decoding.
    pub fn is_greedy(&self) -> bool {
        self.temperature <= 0.0
    }

    /// The rule as a receipt declares it: integers in thousandths, no floats in signed state.
    pub fn declared(&self) -> agora_types::SamplingParams {
        agora_types::SamplingParams {
            temperature_milli: (self.temperature * 1000.0).round() as u32,
            top_p_milli: (self.top_p * 1000.0).round() as u32,
            top_k: self.top_k,
            seed: self.seed,
        }
    }
}

/// One candidate that survived the sampling filters, with its final probability.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    /// Token id.
    pub token: u32,
    /// Probability after temperature, top-k, top-p and renormalization.
    pub probability: f64,
}

/// The index of the largest logit, ties to the lowest id. `None` for an empty slice.
pub fn argmax(logits: &[f32]) -> Option<u32> {
    let mut best: Option<(usize, f32)> = None;
    for (idx, &logit) in logits.iter().enumerate() {
        match best {
            Some((_, top)) if logit <= top => {}
            _ if logit.is_nan() => {}
            _ => best = Some((idx, logit)),
        }
    }
    best.map(|(idx, _)| idx as u32)
}

/// The candidate set the sampling rule allows at one position, most probable first.
///
/// For greedy parameters this is the single argmax token with probability 1.
pub fn candidates(logits: &[f32], params: &SamplingParams) -> Vec<Candidate> {
    if params.is_greedy() {
        return argmax(logits)
            .map(|token| {
                vec![Candidate {
                    token,
                    probability: 1.0,
                }]
            })
            .unwrap_or_default();
    }
    ranked_candidates(
        logits.iter().enumerate().map(|(idx, &l)| (idx as u32, l)),
        params,
    )
}

/// [`candidates`] over a subset of the vocabulary, as `(token, raw logit)` pairs: the rule's
/// set when the subset holds every token it keeps (for example the top `top_k` tokens). For
/// greedy parameters, the best of the subset.
pub fn candidates_among(tokens: &[(u32, f32)], params: &SamplingParams) -> Vec<Candidate> {
    if params.is_greedy() {
        let best = tokens
            .iter()
            .filter(|(_, l)| !l.is_nan())
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)));
        return best
            .map(|&(token, _)| {
                vec![Candidate {
                    token,
                    probability: 1.0,
                }]
            })
            .unwrap_or_default();
    }
    ranked_candidates(tokens.iter().copied(), params)
}

/// The sampled rule's set over `(token, raw logit)` pairs (no intermediate copy of the
/// vocabulary on the sampler's hot path).
fn ranked_candidates(
    tokens: impl Iterator<Item = (u32, f32)>,
    params: &SamplingParams,
) -> Vec<Candidate> {
    let temperature = f64::from(params.temperature);
    let mut ranked: Vec<(u32, f64)> = tokens
        .filter(|(_, l)| l.is_finite())
        .map(|(token, l)| (token, f64::from(l) / temperature))
        .collect();
    // Highest first; equal logits keep id order so the ranking is total and reproducible.
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    if params.top_k > 0 {
        ranked.truncate(params.top_k as usize);
    }
    let Some(&(_, max)) = ranked.first() else {
        return Vec::new();
    };
    let weights: Vec<f64> = ranked.iter().map(|(_, l)| (l - max).exp()).collect();
    let total: f64 = weights.iter().sum();
    let top_p = f64::from(params.top_p.clamp(f32::MIN_POSITIVE, 1.0));
    let mut kept = Vec::new();
    let mut mass = 0.0;
    for ((token, _), weight) in ranked.iter().zip(&weights) {
        let probability = weight / total;
        kept.push(Candidate {
            token: *token,
            probability,
        });
        mass += probability;
        if mass >= top_p {
            break;
        }
    }
    let kept_mass: f64 = kept.iter().map(|c| c.probability).sum();
    for candidate in &mut kept {
        candidate.probability /= kept_mass;
    }
    kept
}

/// The uniform number in `[0, 1)` that output position `position` draws under `seed`.
pub fn uniform_at(seed: u64, position: u64) -> f64 {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    rng.set_stream(position);
    rng.gen::<f64>()
}

/// Picks the token for output position `position` from `logits` under `params`.
pub fn sample(logits: &[f32], params: &SamplingParams, position: u64) -> Option<u32> {
    let kept = candidates(logits, params);
    if params.is_greedy() {
        return kept.first().map(|c| c.token);
    }
    let draw = uniform_at(params.seed, position);
    let mut cumulative = 0.0;
    for candidate in &kept {
        cumulative += candidate.probability;
        if draw < cumulative {
            return Some(candidate.token);
        }
    }
    // Rounding can leave the cumulative sum a hair below 1: the last candidate takes the rest.
    kept.last().map(|c| c.token)
}

/// The log of the softmax's normalizer (`log Σ exp(l)`) and the entropy in nats of the
/// distribution, in one pass with no copy of the vocabulary: the log-probability of token `t`
/// is `logits[t] - log_z`.
pub fn log_z_and_entropy(logits: &[f32]) -> (f32, f32) {
    let max = logits
        .iter()
        .copied()
        .filter(|l| l.is_finite())
        .fold(f32::NEG_INFINITY, f32::max);
    // Eight independent lanes, so the loop vectorizes: Σ e and Σ e·(l − max), e = exp(l − max).
    const LANES: usize = 8;
    let (mut z, mut s) = ([0f32; LANES], [0f32; LANES]);
    let chunks = logits.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for lane in 0..LANES {
            let d = chunk[lane] - max;
            let e = d.exp();
            z[lane] += e;
            s[lane] += e * d;
        }
    }
    for &l in rest {
        let d = l - max;
        let e = d.exp();
        z[0] += e;
        s[0] += e * d;
    }
    let (z, s): (f32, f32) = (z.iter().sum(), s.iter().sum());
    (max + z.ln(), z.ln() - s / z)
}

/// The `n` highest-logit token ids, highest first, ties by id.
pub fn top_n(logits: &[f32], n: usize) -> Vec<u32> {
    let mut ids: Vec<u32> = (0..logits.len() as u32).collect();
    let n = n.min(ids.len());
    if n == 0 {
        return Vec::new();
    }
    let cmp = |a: &u32, b: &u32| {
        logits[*b as usize]
            .total_cmp(&logits[*a as usize])
            .then(a.cmp(b))
    };
    ids.select_nth_unstable_by(n - 1, cmp);
    ids.truncate(n);
    ids.sort_by(cmp);
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampled(temperature: f32, top_p: f32, top_k: u32, seed: u64) -> SamplingParams {
        SamplingParams {
            temperature,
            top_p,
            top_k,
            seed,
        }
    }

    #[test]
    fn greedy_picks_highest_logit_and_breaks_ties_by_lowest_id() {
        assert_eq!(argmax(&[0.1, 2.0, 2.0, -1.0]), Some(1));
        assert_eq!(
            sample(&[0.1, 2.0, 3.0], &SamplingParams::greedy(), 7),
            Some(2)
        );
        assert_eq!(argmax(&[]), None);
    }

    #[test]
    fn same_seed_and_position_draw_the_same_token() {
        let logits: Vec<f32> = (0..100).map(|i| (i % 7) as f32 * 0.3).collect();
        let params = sampled(0.9, 0.95, 40, 42);
        for position in 0..50 {
            assert_eq!(
                sample(&logits, &params, position),
                sample(&logits, &params, position)
            );
        }
        let picks: Vec<_> = (0..50).map(|p| sample(&logits, &params, p)).collect();
        let other: Vec<_> = (0..50)
            .map(|p| sample(&logits, &sampled(0.9, 0.95, 40, 43), p))
            .collect();
        assert_ne!(picks, other, "a different seed must change some draws");
    }

    #[test]
    fn top_k_and_top_p_restrict_the_candidates() {
        let logits = [5.0, 4.0, 3.0, 2.0, 1.0, 0.0];
        let kept = candidates(&logits, &sampled(1.0, 1.0, 3, 0));
        assert_eq!(kept.iter().map(|c| c.token).collect::<Vec<_>>(), [0, 1, 2]);
        let sum: f64 = kept.iter().map(|c| c.probability).sum();
        assert!((sum - 1.0).abs() < 1e-12);
        // The first token alone has about 64% of the mass: top_p 0.5 keeps only it.
        let kept = candidates(&logits, &sampled(1.0, 0.5, 0, 0));
        assert_eq!(kept.len(), 1);
        for position in 0..20 {
            assert_eq!(sample(&logits, &sampled(1.0, 0.5, 0, 9), position), Some(0));
        }
    }

    #[test]
    fn sampled_frequencies_follow_the_distribution() {
        let logits = [0.0f32, (3.0f32).ln()];
        let params = sampled(1.0, 1.0, 0, 5);
        let ones = (0..4000)
            .filter(|&p| sample(&logits, &params, p) == Some(1))
            .count();
        // Expected 3000 of 4000; 5 standard deviations is about 137.
        assert!((2863..=3137).contains(&ones), "{ones}");
    }

    #[test]
    fn one_pass_entropy_matches_the_definition() {
        let logits: Vec<f32> = (0..1000)
            .map(|i| ((i * 37) % 101) as f32 / 7.0 - 5.0)
            .collect();
        // The definitions, in f64 and in separate passes.
        let reference_log_z = logits.iter().map(|&l| f64::from(l).exp()).sum::<f64>().ln();
        let lp: Vec<f64> = logits
            .iter()
            .map(|&l| f64::from(l) - reference_log_z)
            .collect();
        let entropy: f64 = -lp.iter().map(|&l| l.exp() * l).sum::<f64>();
        let (log_z, one_pass) = log_z_and_entropy(&logits);
        assert!(
            (f64::from(one_pass) - entropy).abs() < 1e-3,
            "{one_pass} vs {entropy}"
        );
        assert!((f64::from(logits[3] - log_z) - lp[3]).abs() < 1e-5);
        // A certain token: entropy 0, log-probability 0.
        let (log_z, entropy) = log_z_and_entropy(&[0.0, 200.0, -50.0]);
        assert!((200.0 - log_z).abs() < 1e-5 && entropy.abs() < 1e-5);
    }

    #[test]
    fn the_normalizer_normalizes_and_top_n_ranks() {
        let logits = [1.0, 2.0, 3.0];
        let (log_z, _) = log_z_and_entropy(&logits);
        let total: f32 = logits.iter().map(|l| (l - log_z).exp()).sum();
        assert!((total - 1.0).abs() < 1e-5);
        assert_eq!(top_n(&[1.0, 3.0, 2.0, 3.0], 3), [1, 3, 2]);
        assert!(top_n(&[], 3).is_empty());
    }
}
