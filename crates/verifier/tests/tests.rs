//! The check against the default model: honest answers pass, altered ones are caught.

use agora_engine::{Answer, ChatMessage, Engine, EngineConfig, GenerateRequest, SamplingParams};
use agora_verifier::{check, Finding, Thresholds};
use futures::executor::block_on;

fn engine() -> Engine {
    let path = agora_store::default_model::ensure_shared(&mut |_, _| {}).expect("default model");
    let mut config = EngineConfig::for_model(path);
    config.max_sequences = 4;
    config.threads = 2;
    config.context_per_sequence = 512;
    Engine::load(config).expect("load the default model")
}

/// The prompt for `text` and the engine's answer under `sampling`.
fn answer(engine: &Engine, text: &str, sampling: SamplingParams) -> (Vec<u32>, Answer) {
    let prompt = engine
        .tokenize_chat(&[ChatMessage::new("user", text)])
        .unwrap();
    let output = block_on(engine.generate_answer(GenerateRequest {
        prompt: prompt.clone(),
        sampling,
        max_tokens: Some(32),
        stop: Vec::new(),
        logprobs: None,
        continuation: Default::default(),
    }))
    .unwrap();
    (prompt, output)
}

fn sampled(seed: u64) -> SamplingParams {
    SamplingParams {
        temperature: 0.8,
        top_p: 0.95,
        top_k: 40,
        seed,
    }
}

const PROMPTS: [&str; 3] = [
    "Explain photosynthesis in two sentences.",
    "Write a short poem about the sea.",
    "What should I pack for a hike?",
];

#[test]
fn honest_answers_pass_and_altered_ones_are_caught() {
    let engine = engine();
    let thresholds = Thresholds::default();
    let verify = |prompt: &[u32], output: &[u32], sampling: &SamplingParams| {
        block_on(check(
            &engine,
            prompt,
            output,
            None,
            sampling,
            0,
            &thresholds,
        ))
        .unwrap()
    };
    let verify_committed = |prompt: &[u32], output: &Answer, sampling: &SamplingParams| {
        let claimed = Some(&output.logits[..]);
        block_on(check(
            &engine,
            prompt,
            &output.tokens,
            claimed,
            sampling,
            0,
            &thresholds,
        ))
        .unwrap()
    };
    for text in PROMPTS {
        // Greedy: the honest answer passes; one token swapped for an unlikely one is found.
        let greedy = SamplingParams::greedy();
        let (prompt, committed) = answer(&engine, text, greedy);
        let verdict = verify_committed(&prompt, &committed, &greedy);
        assert!(verdict.passed(), "honest greedy answer: {verdict:?}");
        assert!(verdict.logit_drift.is_some(), "{verdict:?}");
        // The same tokens with other logits (another model's numbers): only the commitment
        // test can tell, and it does.
        let mut shifted = committed.clone();
        for (i, logit) in shifted.logits.iter_mut().enumerate() {
            *logit += if i % 2 == 0 { 1.0 } else { -1.0 };
        }
        let verdict = verify_committed(&prompt, &shifted, &greedy);
        assert!(verdict.findings.is_empty(), "{verdict:?}");
        assert!(!verdict.passed(), "other logits: {verdict:?}");
        let output = committed.tokens;
        let mut altered = output.clone();
        altered[5] = engine.tokenize(" zebra")[0];
        let verdict = verify(&prompt, &altered, &greedy);
        assert!(!verdict.passed());
        assert_eq!(verdict.findings[0].position(), 5, "{verdict:?}");

        // Sampled: the honest answer passes; claimed under another seed, it does not.
        let rule = sampled(7);
        let (prompt, committed) = answer(&engine, text, rule);
        let verdict = verify_committed(&prompt, &committed, &rule);
        println!(
            "{text}: sampled z = {:?}, logit drift {:?}",
            verdict.z, verdict.logit_drift
        );
        assert!(verdict.passed(), "honest sampled answer: {verdict:?}");
        let output = committed.tokens;
        let verdict = verify(&prompt, &output, &sampled(8));
        assert!(
            verdict
                .findings
                .iter()
                .any(|f| matches!(f, Finding::NotSeededPick { .. })),
            "another seed's answer: {verdict:?}"
        );

        // A canned answer with plausible tokens, prefilled under the declared rule.
        let canned = engine.tokenize(" The quick brown fox jumps over the lazy dog and runs away.");
        let verdict = verify(&prompt, &canned, &rule);
        assert!(!verdict.passed(), "canned answer: {verdict:?}");
    }
}

/// A transcript for `body`, answered honestly by `engine`, whose receipt commits to `logits`
/// (the honest ones, transformed by `commit`) and is signed by a test provider.
fn transcript(
    engine: &Engine,
    body: &str,
    commit: impl Fn(Vec<i32>) -> Vec<i32>,
) -> agora_types::Transcript {
    use agora_types::{receipt, ChainId, Hash, Keypair};
    let plan = agora_api::plan::plan_body(body.as_bytes()).unwrap();
    let request = engine.request_for(&plan).unwrap();
    let prompt_tokens = request.prompt.len() as u32;
    let sampling = request.sampling.declared();
    let answer = block_on(engine.generate_answer(request)).unwrap();
    let text = engine.detokenize(&answer.tokens);
    let logits = commit(
        answer
            .logits
            .iter()
            .map(|&l| receipt::logit_milli(l))
            .collect(),
    );
    let provider = Keypair::from_seed(b"provider");
    let signed = receipt::Receipt {
        chain_id: ChainId::new("agora-test").unwrap(),
        provider: provider.account_id(),
        request_hash: Hash::of(body.as_bytes()),
        response_hash: receipt::response_hash(&answer.tokens, &logits, &text),
        model: agora_store::default_model::cid(),
        prompt_tokens,
        completion_tokens: answer.tokens.len() as u32,
        sampling,
        price_in: 1,
        price_out: 1,
        payer: Keypair::from_seed(b"payer").account_id(),
        voucher_amount: 100,
        timestamp_ms: 0,
    }
    .sign(&provider);
    agora_types::Transcript {
        receipt: signed,
        request: body.as_bytes().to_vec(),
        output_tokens: answer.tokens,
        output_logits: logits,
        output_text: text,
    }
}

#[test]
fn a_receipt_is_held_to_the_logits_it_commits_to() {
    use agora_verifier::{check_transcript, Fault};
    let engine = engine();
    let cid = agora_store::default_model::cid();
    let thresholds = Thresholds::default();
    let body = r#"{"model":"SmolLM2-135M-Instruct","messages":[{"role":"user","content":"Name three colours."}],"temperature":0,"max_tokens":12}"#;
    let judge = |t: &agora_types::Transcript| {
        assert_eq!(
            t.check(),
            Ok(()),
            "the test transcript must stand for its receipt"
        );
        block_on(check_transcript(&engine, cid, t, &thresholds)).unwrap()
    };

    let honest = judge(&transcript(&engine, body, |logits| logits));
    assert!(!honest.fraud(), "honest: {}", honest.reason());
    assert!(honest.verdict.logit_drift.is_some_and(|d| d < 0.6));

    // The same tokens, committed with logits a point off: fraud, on the logits alone.
    let off = judge(&transcript(&engine, body, |logits| {
        logits.into_iter().map(|l| l + 1000).collect()
    }));
    assert!(off.fraud() && off.faults.is_empty() && off.verdict.findings.is_empty());
    assert!(
        off.reason().contains("committed logits"),
        "{}",
        off.reason()
    );

    // One logit fewer than tokens: the commitment itself is malformed.
    let short = judge(&transcript(&engine, body, |mut logits| {
        logits.pop();
        logits
    }));
    assert!(short.fraud());
    assert!(
        matches!(short.faults[..], [Fault::Logits { logits, tokens }] if logits + 1 == tokens),
        "{:?}",
        short.faults
    );
}
