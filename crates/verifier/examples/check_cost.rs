//! What a check costs against generating the answer it checks (issue 5's headline ratio), and
//! what verification adds to the network at the gateway's default sampling rate.
//!
//! usage: $CARGO_TARGET_DIR/release/examples/check_cost [TOKENS] [ROUNDS]   (default 256, 3)
//!
//! One engine with every core generates a `TOKENS`-token answer under each rule (greedy, top-k,
//! top-p), then checks it with [`agora_verifier::check`] (one prefill pass, then the rule's and
//! the committed logits' tests); the best of `ROUNDS` of each is kept. Prints one JSON line per rule with both times
//! and `check / generate`, then the overhead at `agora_gateway::DEFAULT_VERIFY_RATE`:
//! `rate × check / generate`, the share of serving work the network spends on checking.

use std::time::Instant;

use agora_engine::{Answer, ChatMessage, Engine, EngineConfig, GenerateRequest, SamplingParams};
use agora_verifier::{check, Thresholds};
use futures::executor::block_on;

fn generate(engine: &Engine, prompt: &[u32], sampling: SamplingParams, tokens: u32) -> Answer {
    block_on(engine.generate_answer(GenerateRequest {
        prompt: prompt.to_vec(),
        sampling,
        max_tokens: Some(tokens),
        stop: Vec::new(),
        logprobs: None,
        continuation: Default::default(),
    }))
    .expect("generate")
}

fn main() {
    let mut args = std::env::args().skip(1);
    let tokens: u32 = args.next().map_or(256, |a| a.parse().expect("TOKENS"));
    let rounds: usize = args.next().map_or(3, |a| a.parse().expect("ROUNDS"));
    let path = agora_store::default_model::ensure_shared(&mut |_, _| {}).expect("default model");
    let mut config = EngineConfig::for_model(path);
    config.max_sequences = 1;
    config.context_per_sequence = 1024;
    let threads = config.threads;
    let engine = Engine::load(config).expect("load the default model");
    let prompt = engine
        .tokenize_chat(&[ChatMessage::new(
            "user",
            "Write a long story about a lighthouse keeper and a storm.",
        )])
        .expect("tokenize");
    let rules = [
        ("greedy", SamplingParams::greedy()),
        (
            "top_k=40",
            SamplingParams {
                temperature: 0.8,
                top_p: 1.0,
                top_k: 40,
                seed: 7,
            },
        ),
        (
            "top_p=0.9",
            SamplingParams {
                temperature: 1.0,
                top_p: 0.9,
                top_k: 0,
                seed: 7,
            },
        ),
    ];
    let thresholds = Thresholds::default();
    let mut worst: f64 = 0.0;
    for (name, sampling) in rules {
        let (mut generate_s, mut check_s, mut answer) = (f64::MAX, f64::MAX, Answer::default());
        let mut drift: f32 = 0.0;
        for _ in 0..rounds {
            let start = Instant::now();
            answer = generate(&engine, &prompt, sampling, tokens);
            generate_s = generate_s.min(start.elapsed().as_secs_f64());
            let start = Instant::now();
            let verdict = block_on(check(
                &engine,
                &prompt,
                &answer.tokens,
                Some(&answer.logits),
                &sampling,
                0,
                &thresholds,
            ))
            .expect("check");
            check_s = check_s.min(start.elapsed().as_secs_f64());
            drift = drift.max(verdict.logit_drift.unwrap_or(0.0));
            assert!(
                verdict.passed(),
                "{name}: an honest answer failed: {verdict:?}"
            );
        }
        let ratio = check_s / generate_s;
        worst = worst.max(ratio);
        println!(
            "{{\"rule\": \"{name}\", \"threads\": {threads}, \"answer_tokens\": {}, \"generate_s\": {generate_s:.3}, \"check_s\": {check_s:.3}, \"check_over_generate\": {ratio:.3}, \"target\": 0.5, \"logit_drift\": {drift:.3}}}",
            answer.tokens.len()
        );
    }
    let rate = agora_gateway::DEFAULT_VERIFY_RATE;
    println!(
        "{{\"verify_rate\": {rate}, \"worst_check_over_generate\": {worst:.3}, \"network_overhead\": {:.4}, \"target\": 0.05}}",
        rate * worst
    );
}
