//! Continuous batching: a greedy request gives the same answer alone and among others.

use agora_engine::{Engine, SamplingParams};
use futures::executor::block_on;

use crate::support::{collect_async, engine, prompt, request, run};

const TARGETS: [&str; 3] = [
    "Explain why the sky is blue.",
    "Write a haiku about autumn leaves.",
    "Give me a recipe for pancakes.",
];

const OTHERS: [&str; 7] = [
    "What is 17 times 23?",
    "Describe a cat in one paragraph.",
    "List the planets of the solar system in order from the sun, with one fact about each.",
    "Translate 'good morning' into Spanish.",
    "Why do we dream?",
    "Tell me a joke about computers.",
    "Summarize the plot of Romeo and Juliet.",
];

/// Runs `target` at `slot` among the seven other prompts, all submitted at once.
fn among_others(engine: &Engine, target: &[u32], slot: usize, max_tokens: u32) -> Vec<u32> {
    let mut prompts: Vec<Vec<u32>> = OTHERS.iter().map(|other| prompt(engine, other)).collect();
    // `slot == OTHERS.len()` puts the target last.
    prompts.insert(slot, target.to_vec());
    let generations: Vec<_> = prompts
        .into_iter()
        .map(|p| {
            engine
                .generate(request(p, SamplingParams::greedy(), max_tokens))
                .unwrap()
        })
        .collect();
    let outputs = block_on(futures::future::join_all(
        generations.into_iter().map(collect_async),
    ));
    outputs[slot].ids.clone()
}

#[test]
fn greedy_output_is_the_same_alone_and_among_seven_others() {
    // A private engine, so that no other test's requests share its batches.
    let engine = engine(8, 2);
    let max_tokens = 48;
    let mut runs = 0;
    let mut diverged = Vec::new();
    for target in TARGETS {
        let p = prompt(&engine, target);
        let alone = run(
            &engine,
            request(p.clone(), SamplingParams::greedy(), max_tokens),
        )
        .ids;
        for slot in [0, 3, 7] {
            let batched = among_others(&engine, &p, slot, max_tokens);
            runs += 1;
            if batched != alone {
                let at = alone
                    .iter()
                    .zip(&batched)
                    .position(|(a, b)| a != b)
                    .unwrap_or(alone.len().min(batched.len()));
                diverged.push((target, slot, at));
            }
        }
    }
    println!(
        "batch invariance: {} of {runs} batched runs diverged from the solo run: {diverged:?}",
        diverged.len()
    );
    assert!(diverged.is_empty(), "{diverged:?}");
}
