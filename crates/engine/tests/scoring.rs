//! The verifier's scorer: one prefill pass agrees with what generation saw.

use agora_engine::SamplingParams;
use futures::executor::block_on;

use crate::support::{prompt, request, run, shared};

/// Largest difference between a logit seen while decoding token by token and the same logit
/// from one prefill pass. Measured on the default model at 1–2 threads: see the note in
/// `ARCHITECTURE.md` ("Floating point"); the bound keeps a margin over the worst seen.
const LOGIT_TOLERANCE: f32 = 1.5;

#[test]
fn score_agrees_with_generation_within_tolerance() {
    let engine = shared();
    let mut worst = 0.0f32;
    let mut positions = 0;
    for text in [
        "Explain photosynthesis in two sentences.",
        "List five prime numbers.",
        "What is the capital of France?",
    ] {
        let p = prompt(engine, text);
        let out = run(engine, request(p.clone(), SamplingParams::greedy(), 48));
        let scores = block_on(engine.score(&p, &out.ids, 20)).unwrap();
        assert_eq!(scores.len(), out.ids.len());
        for (i, (score, &(logit, best))) in scores.iter().zip(&out.logits).enumerate() {
            assert_eq!(score.token, out.ids[i]);
            worst = worst
                .max((score.logit - logit).abs())
                .max((score.max_logit - best).abs());
            // Greedy picks stay top choices in the prefill up to a near-tie.
            assert!(
                score.max_logit - score.logit <= LOGIT_TOLERANCE,
                "position {i}"
            );
            assert!(score.top.len() == 20 && score.top[0].logit == score.max_logit);
            assert!(score.logprob <= 0.0 && score.entropy >= 0.0);
            positions += 1;
        }
    }
    println!("scorer vs generation: worst logit difference {worst:.4} over {positions} positions");
    assert!(worst <= LOGIT_TOLERANCE, "worst difference {worst}");
}

#[test]
fn score_rejects_empty_or_out_of_vocabulary_input() {
    let engine = shared();
    assert!(block_on(engine.score(&[], &[1], 5)).is_err());
    assert!(block_on(engine.score(&[1], &[], 5)).is_err());
    assert!(block_on(engine.score(&[1], &[u32::MAX], 5)).is_err());
}
