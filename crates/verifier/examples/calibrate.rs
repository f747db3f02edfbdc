//! Calibrates the verifier's thresholds on honest jobs (issue 5): how close do honest answers
//! come to each threshold when the provider's engine and the verifier's differ in thread count
//! and batch layout? That includes how far the raw logits a provider commits to are from the
//! verifier's own (the commitment test).
//!
//! usage: $CARGO_TARGET_DIR/release/examples/calibrate [JOBS]   (default 1000; built by
//! `cargo test --release --workspace`)
//!
//! Jobs run in waves of 8 on a provider engine with 1 or 2 threads (alternating), either all 8
//! at once (batched) or one after another (alone); a quarter are greedy and the rest sampled
//! under three rules. A separate 2-thread engine checks each answer with every threshold open,
//! and the largest margin seen for each test is printed next to the default threshold. A
//! default below the largest honest margin would flag honest providers.

use agora_engine::{Answer, ChatMessage, Engine, EngineConfig, GenerateRequest, SamplingParams};
use agora_verifier::{check_scores, top_tokens_needed, Margins, Thresholds};
use futures::{executor::block_on, future::join_all};

const PROMPTS: [&str; 12] = [
    "Explain photosynthesis in two sentences.",
    "Write a short poem about the sea.",
    "What should I pack for a hike?",
    "Give me three tips for learning a language.",
    "Describe the water cycle.",
    "Why do cats purr?",
    "Write a limerick about a programmer.",
    "List the planets of the solar system.",
    "How does a bicycle stay upright?",
    "Summarize the plot of Romeo and Juliet.",
    "What is the difference between weather and climate?",
    "Suggest a name for a bakery and explain it.",
];
const WAVE: usize = 8;
const MAX_TOKENS: u32 = 32;

fn engine(threads: u32, slots: u32) -> Engine {
    let path = agora_store::default_model::ensure_shared(&mut |_, _| {}).expect("default model");
    let mut config = EngineConfig::for_model(path);
    config.threads = threads;
    config.max_sequences = slots;
    config.context_per_sequence = 512;
    Engine::load(config).expect("load the default model")
}

fn rule(job: usize) -> SamplingParams {
    let seed = job as u64 * 7919 + 1;
    match job % 4 {
        0 => SamplingParams::greedy(),
        1 => SamplingParams {
            temperature: 0.7,
            top_p: 0.95,
            top_k: 40,
            seed,
        },
        2 => SamplingParams {
            temperature: 1.0,
            top_p: 0.9,
            top_k: 0,
            seed,
        },
        _ => SamplingParams {
            temperature: 1.2,
            top_p: 1.0,
            top_k: 20,
            seed,
        },
    }
}

async fn generate(engine: &Engine, prompt: Vec<u32>, sampling: SamplingParams) -> Answer {
    engine
        .generate_answer(GenerateRequest {
            prompt,
            sampling,
            max_tokens: Some(MAX_TOKENS),
            stop: Vec::new(),
            logprobs: None,
            continuation: Default::default(),
        })
        .await
        .expect("generate")
}

/// The largest margins and |z| seen, and how many jobs the default thresholds would flag.
#[derive(Default)]
struct Worst {
    margins: Margins,
    z: f64,
    logit_drift: f32,
    flagged: usize,
    forgiven: usize,
    greedy: usize,
    sampled: usize,
}

fn main() {
    let jobs: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    let providers = [engine(1, WAVE as u32), engine(2, WAVE as u32)];
    let verifier = engine(2, 1);
    let open = Thresholds {
        logit_epsilon: f32::INFINITY,
        pick_slack: f64::INFINITY,
        max_z: f64::INFINITY,
        max_logit_drift: f32::INFINITY,
        near_misses: 0,
        ..Thresholds::default()
    };
    let defaults = Thresholds::default();
    let mut worst = Worst::default();
    let started = std::time::Instant::now();
    for wave in 0..jobs.div_ceil(WAVE) {
        let provider = &providers[wave % 2];
        let batched = (wave / 2) % 2 == 0;
        let batch: Vec<(usize, Vec<u32>, SamplingParams)> = (wave * WAVE
            ..jobs.min((wave + 1) * WAVE))
            .map(|job| {
                let text = format!("{} (request {job})", PROMPTS[job % PROMPTS.len()]);
                let prompt = provider
                    .tokenize_chat(&[ChatMessage::new("user", text)])
                    .expect("tokenize");
                (job, prompt, rule(job))
            })
            .collect();
        let outputs: Vec<Answer> = if batched {
            block_on(join_all(
                batch
                    .iter()
                    .map(|(_, p, s)| generate(provider, p.clone(), *s)),
            ))
        } else {
            batch
                .iter()
                .map(|(_, p, s)| block_on(generate(provider, p.clone(), *s)))
                .collect()
        };
        for ((job, prompt, sampling), answer) in batch.iter().zip(outputs) {
            if answer.tokens.is_empty() {
                continue;
            }
            let scores =
                block_on(verifier.score(prompt, &answer.tokens, top_tokens_needed(sampling)))
                    .expect("score the answer");
            // The raw margins with every threshold open, then the verdict the defaults give
            // (near misses forgiven as the defaults allow).
            let verdict = check_scores(&scores, sampling, 0, &open).with_claimed_logits(
                &scores,
                &answer.logits,
                &open,
            );
            let judged = check_scores(&scores, sampling, 0, &defaults).with_claimed_logits(
                &scores,
                &answer.logits,
                &defaults,
            );
            let m = verdict.margins;
            worst.margins.greedy_gap = worst.margins.greedy_gap.max(m.greedy_gap);
            worst.margins.set_gap = worst.margins.set_gap.max(m.set_gap);
            worst.margins.pick_gap = worst.margins.pick_gap.max(m.pick_gap);
            worst.margins.nucleus_gap = worst.margins.nucleus_gap.max(m.nucleus_gap);
            worst.z = worst.z.max(verdict.z.unwrap_or(0.0).abs());
            worst.logit_drift = worst.logit_drift.max(verdict.logit_drift.unwrap_or(0.0));
            let flagged = !judged.passed();
            worst.flagged += usize::from(flagged);
            worst.forgiven += usize::from(judged.margins.near_misses > 0);
            if flagged {
                println!(
                    "flagged: job {job} {sampling:?} {m:?} z {:?} logit drift {:?}",
                    verdict.z, verdict.logit_drift
                );
            } else if judged.margins.near_misses > 0 {
                println!("near miss forgiven: job {job} {sampling:?} {m:?}");
            }
            if sampling.is_greedy() {
                worst.greedy += 1;
            } else {
                worst.sampled += 1;
            }
        }
        eprintln!(
            "{} of {jobs} jobs, {:.0} s",
            ((wave + 1) * WAVE).min(jobs),
            started.elapsed().as_secs_f64()
        );
    }
    println!(
        "{} honest jobs ({} greedy, {} sampled; provider 1 and 2 threads, alone and batched by {WAVE}; verifier 2 threads)",
        worst.greedy + worst.sampled,
        worst.greedy,
        worst.sampled
    );
    println!("test                       worst honest   default threshold   margin");
    let row = |name: &str, seen: f64, threshold: f64| {
        println!(
            "{name:<26} {seen:>12.4}   {threshold:>17.4}   {:>6.2}x",
            threshold / seen.max(f64::MIN_POSITIVE)
        );
    };
    row(
        "greedy gap (logits)",
        f64::from(worst.margins.greedy_gap),
        f64::from(defaults.logit_epsilon),
    );
    row(
        "outside the set (logits)",
        f64::from(worst.margins.set_gap),
        f64::from(defaults.logit_epsilon),
    );
    row(
        "outside top-p (prob)",
        worst.margins.nucleus_gap,
        defaults.mass_slack,
    );
    row(
        &format!("seeded pick (prob, ties {})", defaults.tie_epsilon),
        worst.margins.pick_gap,
        defaults.pick_slack,
    );
    row("likelihood |z|", worst.z, defaults.max_z);
    row(
        "committed logits (mean)",
        f64::from(worst.logit_drift),
        f64::from(defaults.max_logit_drift),
    );
    row(
        "near miss: pick (prob)",
        worst.margins.pick_gap,
        defaults.near_miss_pick_slack,
    );
    row(
        "near miss: top-p (prob)",
        worst.margins.nucleus_gap,
        defaults.near_miss_mass_slack,
    );
    println!(
        "honest jobs the default thresholds would flag: {} ({} passed with a near miss forgiven; at most {} per answer, pick gap <= {}, top-p boundary <= {})",
        worst.flagged,
        worst.forgiven,
        defaults.near_misses,
        defaults.near_miss_pick_slack,
        defaults.near_miss_mass_slack
    );
}
