//! Cheating providers against the verifier's check: real provider processes, each cheating one
//! way, serve paid requests through a real gateway; every transcript the gateway kept is checked
//! with the verifier's library on the governed model.

use std::{path::Path, process::Command, time::Duration};

use agora_api::ReceiptJson;
use agora_engine::{quantize, Engine, EngineConfig};
use agora_types::Transcript;
use agora_verifier::{check_transcript, Thresholds};
use serde_json::{json, Value};

use crate::network::{default_model, Network};

/// How each provider in the detection test behaves: a label and its extra flags.
fn behaviours(dir: &Path) -> Vec<(&'static str, Vec<String>)> {
    let cid = agora_store::default_model::cid().to_string();
    let q2k = dir.join("q2_k.gguf");
    quantize::requantize(&default_model(), &q2k, quantize::Quantization::Q2K, 2)
        .expect("requantize the default model");
    let tiny = dir.join("tiny.gguf");
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/tiny-model.py");
    let status = Command::new(&python)
        .arg(&script)
        .arg(default_model())
        .arg(&tiny)
        .status()
        .unwrap_or_else(|err| panic!("{}: {err} (run scripts/setup --python)", python.display()));
    assert!(status.success(), "tiny-model.py failed");
    let flags = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let serve = |file: &Path| {
        vec![
            "--model".to_string(),
            file.display().to_string(),
            "--cheat-claim".to_string(),
            cid.clone(),
        ]
    };
    vec![
        ("honest", Vec::new()),
        ("canned answer", flags(&["--cheat", "canned"])),
        ("truncated, billed in full", flags(&["--cheat", "truncate"])),
        ("forged, prefilled", flags(&["--cheat", "forged-prefill"])),
        ("requantized to Q2_K", serve(&q2k)),
        ("another model", serve(&tiny)),
    ]
}

/// The `i`th job: greedy on even `i`, sampled under one of two rules on odd `i`.
fn job(i: usize, account: &str) -> Value {
    let prompts = [
        "Name three colours of the rainbow.",
        "Write one sentence about the sea.",
        "What is the capital of France?",
        "Give me a tip for learning to cook.",
        "Describe a cat in a few words.",
    ];
    let mut body = json!({
        "model": "SmolLM2-135M-Instruct",
        "messages": [{"role": "user", "content": prompts[i % prompts.len()]}],
        "max_tokens": 24,
        "seed": 1000 + i,
        "provider": {"only": [account], "allow_fallbacks": false},
    });
    match i % 4 {
        0 | 2 => body["temperature"] = json!(0),
        1 => {
            body["temperature"] = json!(0.8);
            body["top_p"] = json!(0.95);
        }
        _ => {
            body["temperature"] = json!(1.0);
            body["top_k"] = json!(20);
        }
    }
    body
}

/// The transcript the gateway kept for receipt `id`.
async fn transcript(http: &reqwest::Client, gateway: &str, id: &str) -> Transcript {
    let stored: Value = http
        .get(format!("{gateway}/v1/receipts/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let receipt: ReceiptJson = serde_json::from_value(stored["receipt"].clone()).unwrap();
    let t = &stored["transcript"];
    Transcript {
        receipt: receipt.to_verified().unwrap(),
        request: t["request"].as_str().unwrap().as_bytes().to_vec(),
        output_tokens: serde_json::from_value(t["output_tokens"].clone()).unwrap(),
        output_text: t["output_text"].as_str().unwrap().to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_cheater_is_caught_and_no_honest_answer_is_flagged() {
    const JOBS: usize = 8;
    let models = tempfile::tempdir().unwrap();
    let behaviours = behaviours(models.path());
    let network = Network::start_with(
        behaviours.iter().map(|(_, args)| args.clone()).collect(),
        "100",
    )
    .await;
    let mut config = EngineConfig::for_model(default_model());
    config.threads = 2;
    config.context_per_sequence = 1024;
    let engine = Engine::load(config).unwrap();
    let cid = agora_store::default_model::cid();
    let http = reqwest::Client::new();
    let thresholds = Thresholds::default();
    let mut wrong = false;
    let mut table = vec![format!("{:<28} {:>5} {:>8}", "provider", "jobs", "flagged")];
    for ((label, _), provider) in behaviours.iter().zip(&network.providers) {
        let mut flagged = 0;
        for i in 0..JOBS {
            let res = network
                .chat(&http, job(i, &provider.account))
                .timeout(Duration::from_secs(120))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200, "{label}");
            let body: Value = res.json().await.unwrap();
            let id = body["agora"]["receipt"]["id"].as_str().unwrap().to_owned();
            let transcript = transcript(&http, &network.gateway_url, &id).await;
            let check = check_transcript(&engine, cid, &transcript, &thresholds)
                .await
                .unwrap();
            if check.fraud() {
                flagged += 1;
                eprintln!("{label} job {i}: {}", check.reason());
            } else if *label != "honest" {
                eprintln!(
                    "{label} job {i} passed: {} tokens, margins {:?}",
                    check.verdict.positions, check.verdict.margins
                );
            }
        }
        table.push(format!("{label:<28} {JOBS:>5} {flagged:>8}"));
        let expected = if *label == "honest" { 0 } else { JOBS };
        wrong |= flagged != expected;
    }
    let table = table.join("\n");
    eprintln!("{table}");
    assert!(
        !wrong,
        "every cheat must be flagged and no honest job:\n{table}"
    );
}
