//! In-process engine benchmark on the default model: decode and prefill tok/s for one stream,
//! and the verification cost, `score()` over a 256-token answer versus generating it.
//!
//! An example rather than a `cargo bench` target so that it is built by the same cargo
//! invocation as the tests (`cargo test --release --workspace`), with no second llama.cpp build.
//! Run: `$CARGO_TARGET_DIR/release/examples/engine_bench` (`AGORA_BENCH_THREADS`, default 2).
//! Prints one JSON object; `bench/provider.sh` compares it with llama.cpp's own tools.

use std::time::Instant;

use agora_engine::{ChatMessage, Engine, EngineConfig, Event, GenerateRequest, SamplingParams};
use futures::{executor::block_on, StreamExt};

fn main() {
    let threads: u32 = std::env::var("AGORA_BENCH_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(2);
    let path = agora_store::default_model::ensure_shared(&mut |_, _| {}).expect("default model");
    let mut config = EngineConfig::for_model(path);
    config.threads = threads;
    config.max_sequences = 1;
    config.context_per_sequence = 2048;
    let engine = Engine::load(config).expect("load");

    // Prefill: a ~512-token prompt, timed to its first token.
    let long_prompt = engine
        .tokenize_chat(&[ChatMessage::new(
            "user",
            "The quick brown fox jumps over the lazy dog. ".repeat(50),
        )])
        .expect("tokenize");
    let _ = generate(&engine, &long_prompt[..64], 4); // warm-up
    let mut prefill = Vec::new();
    for _ in 0..3 {
        let (ttft, _, _) = generate(&engine, &long_prompt, 1);
        prefill.push(long_prompt.len() as f64 / ttft);
    }

    // Decode: 256 tokens after a short prompt (min_tokens not supported: take what comes).
    let short_prompt = engine
        .tokenize_chat(&[ChatMessage::new(
            "user",
            "Write a long story about a lighthouse keeper.",
        )])
        .expect("tokenize");
    let mut decode = Vec::new();
    let mut answer = Vec::new();
    let mut generate_secs = 0.0;
    for _ in 0..3 {
        let (ttft, total, ids) = generate(&engine, &short_prompt, 256);
        decode.push((ids.len() as f64 - 1.0) / (total - ttft));
        generate_secs = total;
        answer = ids;
    }

    // Verification: one prefill over prompt + the answer just generated.
    let mut score_secs = f64::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        let scores = block_on(engine.score(&short_prompt, &answer, 20)).expect("score");
        assert_eq!(scores.len(), answer.len());
        score_secs = score_secs.min(start.elapsed().as_secs_f64());
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "{{\"threads\": {threads}, \"prefill_tok_s\": {:.1}, \"prefill_tokens\": {}, \"decode_tok_s\": {:.1}, \"answer_tokens\": {}, \"generate_s\": {generate_secs:.3}, \"score_s\": {score_secs:.3}, \"score_over_generate\": {:.3}}}",
        median(prefill),
        long_prompt.len(),
        median(decode),
        answer.len(),
        score_secs / generate_secs,
    );
}

/// Runs one greedy generation; returns (seconds to first token, total seconds, token ids).
fn generate(engine: &Engine, prompt: &[u32], max_tokens: u32) -> (f64, f64, Vec<u32>) {
    let start = Instant::now();
    let mut generation = engine
        .generate(GenerateRequest {
            prompt: prompt.to_vec(),
            sampling: SamplingParams::greedy(),
            max_tokens: Some(max_tokens),
            stop: Vec::new(),
            logprobs: None,
            continuation: Default::default(),
        })
        .expect("generate");
    let mut first = None;
    let mut ids = Vec::new();
    block_on(async {
        while let Some(event) = generation.next().await {
            match event {
                Event::Token { id, .. } => {
                    first.get_or_insert_with(|| start.elapsed().as_secs_f64());
                    ids.push(id);
                }
                Event::Done(_) => break,
                Event::Failed(reason) => panic!("{reason}"),
            }
        }
    });
    let total = start.elapsed().as_secs_f64();
    (first.unwrap_or(total), total, ids)
}
