//! Cheating providers against verifiers: real provider processes, each cheating one way, serve
//! paid requests through a real gateway. The first test checks every transcript the gateway
//! kept with the verifier's library; the second runs three `agora verifier` processes that the
//! gateway sends transcripts to, and follows each cheat through challenge, committee vote,
//! slash and jail on the ledger.

use std::{
    collections::BTreeMap,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use agora_api::ReceiptJson;
use agora_engine::{quantize, Engine, EngineConfig};
use agora_types::{Amount, Transcript};
use agora_verifier::{check_transcript, Thresholds};
use serde_json::{json, Value};

use crate::{
    gateway::serving,
    network::{default_model, get_json, Network},
};

/// The tests that run many providers on two cores take turns.
pub(crate) static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

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

/// Job `i` answered by `account` through the gateway (200 asserted): the response body.
async fn answer(
    network: &Network,
    http: &reqwest::Client,
    i: usize,
    account: &str,
    label: &str,
) -> Value {
    let res = network
        .chat(http, job(i, account))
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{label}");
    res.json().await.unwrap()
}

/// The transcript the gateway kept for receipt `id`.
async fn transcript(http: &reqwest::Client, gateway: &str, id: &str) -> Transcript {
    let stored = get_json(http, format!("{gateway}/v1/receipts/{id}")).await;
    let receipt: ReceiptJson = serde_json::from_value(stored["receipt"].clone()).unwrap();
    let t = &stored["transcript"];
    Transcript {
        receipt: receipt.to_verified().unwrap(),
        request: t["request"].as_str().unwrap().as_bytes().to_vec(),
        output_tokens: serde_json::from_value(t["output_tokens"].clone()).unwrap(),
        output_logits: serde_json::from_value(t["output_logits"].clone()).unwrap(),
        output_text: t["output_text"].as_str().unwrap().to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_cheater_is_caught_and_no_honest_answer_is_flagged() {
    // CI runs 8 jobs a provider; bench/verification.sh runs the large table through these.
    let jobs_from = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(8)
    };
    let (cheat_jobs, honest_jobs) = (
        jobs_from("AGORA_DETECTION_JOBS"),
        jobs_from("AGORA_DETECTION_HONEST_JOBS"),
    );
    let _turn = HEAVY.lock().await;
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
    let mut table = vec![format!(
        "{:<28} {:>5} {:>8} {:>10} {:>13}",
        "provider", "jobs", "flagged", "by logits", "logit drift"
    )];
    for ((label, _), provider) in behaviours.iter().zip(&network.providers) {
        let (mut flagged, mut by_logits) = (0, 0);
        let (mut least, mut most) = (f32::INFINITY, 0f32);
        let jobs = if *label == "honest" {
            honest_jobs
        } else {
            cheat_jobs
        };
        for i in 0..jobs {
            let body = answer(&network, &http, i, &provider.account, label).await;
            let id = body["agora"]["receipt"]["id"].as_str().unwrap().to_owned();
            let transcript = transcript(&http, &network.gateway_url, &id).await;
            let check = check_transcript(&engine, cid, &transcript, &thresholds)
                .await
                .unwrap();
            // The commitment test alone: the committed logits against the verifier's.
            if let Some(drift) = check.verdict.logit_drift {
                (least, most) = (least.min(drift), most.max(drift));
            }
            if check
                .verdict
                .logit_drift
                .is_some_and(|d| d > check.verdict.max_logit_drift)
            {
                by_logits += 1;
            }
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
        table.push(format!(
            "{label:<28} {jobs:>5} {flagged:>8} {by_logits:>10} {least:>6.2}-{most:<6.2}"
        ));
        let expected = if *label == "honest" { 0 } else { jobs };
        wrong |= flagged != expected;
        // Another model's numbers are caught by the logits they commit to, even where its
        // tokens are the governed model's own.
        let other_model = matches!(*label, "requantized to Q2_K" | "another model");
        wrong |= other_model && by_logits != jobs;
    }
    let table = table.join("\n");
    eprintln!("{table}");
    assert!(
        !wrong,
        "every cheat must be flagged, another model's by its logits, and no honest job:\n{table}"
    );
}

/// An account's balance, its nonce and the total deposited into the open channels it pays
/// from, read so that no transaction landed between the reads.
async fn books(rpc: &agora_rpc::Client, account: &str) -> (Amount, u64, Amount) {
    let id: agora_types::AccountId = account.parse().unwrap();
    let deposits = || async {
        let channels = rpc.channels(Some(&id), None).await.unwrap();
        channels.iter().map(|c| amount(&c.deposit)).sum::<Amount>()
    };
    loop {
        let before = deposits().await;
        let state = rpc.account(&id).await.unwrap();
        let after = deposits().await;
        let again = rpc.account(&id).await.unwrap();
        if before == after && state.nonce == again.nonce {
            return (amount(&state.balance), state.nonce, after);
        }
    }
}

fn amount(text: &str) -> Amount {
    text.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cheaters_are_challenged_voted_slashed_jailed_and_dropped_on_chain() {
    let _turn = HEAVY.lock().await;
    let models = tempfile::tempdir().unwrap();
    let behaviours = behaviours(models.path());
    let network = Network::start_full(
        behaviours.iter().map(|(_, args)| args.clone()).collect(),
        3,
        vec!["--verify-rate".into(), "1".into()],
        "100",
    )
    .await;
    let rpc = network.rpc();
    let http = reqwest::Client::new();
    let params = rpc.params().await.unwrap();
    let min_fee = amount(&params["min_fee"]);
    let slash_bps = amount(&params["slash_fraction_fraud_bps"]);
    let payer = agora_rpc::keyfile::load(&network.dir.path().join("chain/keys/dev-0.key"))
        .unwrap()
        .account_id()
        .to_string();
    let payer_before = books(&rpc, &payer).await;
    let mut verifiers_before = BTreeMap::new();
    for v in &network.verifiers {
        verifiers_before.insert(v.account.clone(), books(&rpc, &v.account).await);
    }
    let mut stakes_before = Vec::new();
    for p in &network.providers {
        let record = rpc
            .provider(&p.account.parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        stakes_before.push(amount(&record.stake));
    }

    // Greedy and top-k jobs (the top-p boundary's rare honest flag is the calibration's open
    // question, measured by the test above and bench/verification.sh).
    let mut receipts: Vec<(usize, String, Amount)> = Vec::new();
    for (index, (label, _)) in behaviours.iter().enumerate() {
        let jobs: &[usize] = if *label == "honest" {
            &[0, 3, 4, 7]
        } else {
            &[0]
        };
        for &i in jobs {
            let body = answer(&network, &http, i, &network.providers[index].account, label).await;
            let receipt = &body["agora"]["receipt"];
            receipts.push((
                index,
                receipt["id"].as_str().unwrap().to_owned(),
                amount(receipt["charge"].as_str().unwrap()),
            ));
        }
    }

    // Every transcript reaches a verifier and is checked: honest ones pass, cheats fail.
    let deadline = Instant::now() + Duration::from_secs(120);
    let checks = loop {
        let mut checks: BTreeMap<String, Value> = BTreeMap::new();
        for v in &network.verifiers {
            let listed = get_json(&http, format!("{}/v1/checks?limit=256", v.url)).await;
            for check in listed["checks"].as_array().unwrap() {
                checks.insert(check["receipt"].as_str().unwrap().to_owned(), check.clone());
            }
        }
        if receipts.iter().all(|(_, id, _)| checks.contains_key(id)) {
            break checks;
        }
        assert!(
            Instant::now() < deadline,
            "not every transcript was checked: {checks:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    for (index, id, _) in &receipts {
        let (label, _) = &behaviours[*index];
        let expected = if *label == "honest" {
            "passed"
        } else {
            "failed"
        };
        assert_eq!(checks[id]["result"], expected, "{label}: {}", checks[id]);
        assert_eq!(checks[id]["challenged"], *label != "honest", "{label}");
    }

    // Bad transcripts are refused with a reason and change nothing.
    let verifier = &network.verifiers[0].url;
    let post = |bytes: Vec<u8>| {
        http.post(format!("{verifier}/v1/transcripts"))
            .header("content-type", "application/octet-stream")
            .body(bytes)
            .send()
    };
    let honest_id = &receipts[0].1;
    let good = transcript(&http, &network.gateway_url, honest_id).await;
    let mut forged_answer = good.clone();
    forged_answer.output_text.push_str(" (edited)");
    let mut forged_request = good.clone();
    forged_request.request.push(b' ');
    let cases = [
        (b"not a transcript".to_vec(), "not a transcript"),
        (forged_answer.to_bytes(), "response_hash"),
        (forged_request.to_bytes(), "request_hash"),
    ];
    for (bytes, reason) in cases {
        let res = post(bytes).await.unwrap();
        assert_eq!(res.status(), 400, "{reason}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "bad_transcript");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(reason), "{message}");
    }
    // Taken once (this verifier may or may not be the one the gateway sent it to), then
    // recognized as already taken.
    let first = post(good.to_bytes()).await.unwrap().status();
    assert!(first == 202 || first == 200, "{first}");
    let res = post(good.to_bytes()).await.unwrap();
    assert_eq!(res.status(), 200, "a transcript taken is not checked again");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "duplicate");
    let res = http
        .get(format!("{verifier}/blobs/nonsense"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let unknown = agora_types::Cid::of(b"never published");
    let res = http
        .get(format!("{verifier}/blobs/{unknown}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);

    // Each cheat's dispute: the committee (the two other verifiers) votes fraud, and the
    // settlement slashes the parameter's share of the stake, refunds the charge and pays the
    // challenger.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut refunded_total: Amount = 0;
    let mut by_challenger: BTreeMap<String, (Amount, Amount)> = BTreeMap::new();
    for (index, id, charge) in receipts.iter().filter(|(i, _, _)| *i != 0) {
        let (label, _) = &behaviours[*index];
        let dispute = loop {
            let found = rpc
                .dispute(&agora_types::Hash::from_hex(id).unwrap())
                .await
                .unwrap();
            if let Some(d) = found.filter(|d| d.status == "resolved") {
                break d;
            }
            assert!(
                Instant::now() < deadline,
                "{label}: the dispute did not settle"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        };
        let outcome = dispute.outcome.clone().unwrap();
        assert!(outcome.fraud, "{label}: {dispute:?}");
        let challenger = network
            .verifiers
            .iter()
            .find(|v| v.account == dispute.challenger)
            .unwrap();
        let published = http
            .get(format!("{}/blobs/{}", challenger.url, dispute.transcript))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(
            agora_types::Cid::of(&published).to_string(),
            dispute.transcript
        );
        assert_eq!(dispute.committee.len(), 2, "{label}: {dispute:?}");
        assert!(
            dispute.committee.iter().all(|m| m.vote == Some(true)),
            "{label}: {dispute:?}"
        );
        assert!(!dispute
            .committee
            .iter()
            .any(|m| m.account == dispute.challenger));
        let stake = stakes_before[*index];
        assert_eq!(
            amount(&outcome.slashed),
            stake * slash_bps / 10_000,
            "{label}"
        );
        assert_eq!(amount(&outcome.refunded), *charge, "{label}");
        assert!(
            *charge > 0 && amount(&outcome.reward) > 0,
            "{label}: {outcome:?}"
        );
        assert_eq!(dispute.payer, payer);
        refunded_total += amount(&outcome.refunded);
        let paid = by_challenger.entry(dispute.challenger.clone()).or_default();
        paid.0 += amount(&dispute.bond);
        paid.1 += amount(&outcome.bond_returned) + amount(&outcome.reward);
        let record = rpc
            .provider(&network.providers[*index].account.parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            amount(&record.stake),
            stake - amount(&outcome.slashed),
            "{label}"
        );
        assert_eq!(record.status, "jailed", "{label}");
    }
    let honest = &network.providers[0];
    let honest_disputes = rpc
        .disputes(false, Some(&honest.account.parse().unwrap()))
        .await
        .unwrap();
    assert!(honest_disputes.is_empty(), "{honest_disputes:?}");
    let honest_record = rpc
        .provider(&honest.account.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(honest_record.status, "active");
    assert_eq!(amount(&honest_record.stake), stakes_before[0]);

    // The gateway drops the jailed providers: only the honest one is listed and routed to.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let serving = serving(&http, &network.gateway_url).await;
        if serving == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway still lists {serving} providers"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (index, (label, _)) in behaviours.iter().enumerate().skip(1) {
        let res = network
            .chat(&http, job(0, &network.providers[index].account))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 503, "{label} is jailed");
    }

    // The payer got every charge back; each challenger its bonds and rewards. Balances are
    // exact: whatever else moved is channel deposits and fees, both on the ledger.
    let spent = |before: (Amount, u64, Amount), after: (Amount, u64, Amount)| {
        after.2 - before.2 + Amount::from(after.1 - before.1) * min_fee
    };
    let payer_after = books(&rpc, &payer).await;
    assert_eq!(
        payer_after.0,
        payer_before.0 - spent(payer_before, payer_after) + refunded_total
    );
    for (account, before) in &verifiers_before {
        let after = books(&rpc, account).await;
        let (bonds, paid) = by_challenger.get(account).copied().unwrap_or_default();
        assert_eq!(
            after.0,
            before.0 - spent(*before, after) - bonds + paid,
            "verifier {account}"
        );
    }
    // Scores: every verifier committed and revealed, and the ledger combined them.
    let deadline = Instant::now() + Duration::from_secs(120);
    let honest_score = 'epochs: loop {
        let head = rpc.head().await.unwrap();
        let epoch_blocks: u64 = params["epoch_blocks"].parse().unwrap();
        for epoch in (0..head.height / epoch_blocks).rev() {
            let Some(rewards) = rpc.epoch_rewards(epoch).await.unwrap() else {
                continue;
            };
            if rewards.verifiers.len() == network.verifiers.len() {
                let honest = rewards
                    .providers
                    .iter()
                    .find(|p| p.provider == honest.account);
                break 'epochs honest.map(|p| p.consensus_ppm);
            }
        }
        assert!(
            Instant::now() < deadline,
            "no epoch combined every verifier's scores"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(honest_score.is_some_and(|ppm| ppm > 0), "{honest_score:?}");

    // The explorer shows the same: disputes and verdicts per provider, and the scores.
    let listed = get_json(&http, format!("{}/agora/verification", network.gateway_url)).await;
    let disputes = listed["disputes"].as_array().unwrap();
    assert_eq!(disputes.len(), behaviours.len() - 1, "{listed}");
    assert!(disputes
        .iter()
        .all(|d| d["status"] == "fraud" && d["votes_fraud"] == 2));
    assert_eq!(listed["verifiers"].as_array().unwrap().len(), 3);
    let providers = get_json(&http, format!("{}/agora/providers", network.gateway_url)).await;
    for p in providers["providers"].as_array().unwrap() {
        let honest = p["account"] == network.providers[0].account.as_str();
        assert_eq!(p["checks"]["disputes_fraud"], u64::from(!honest), "{p}");
        assert!(
            p["checks"]["transcripts_sent"].as_u64().unwrap() >= 1,
            "{p}"
        );
        if honest {
            assert!(p["quality"]["score_ppm"].as_u64().unwrap() > 0, "{p}");
        }
    }
    eprintln!(
        "challengers: {:?}; refunded {refunded_total}",
        by_challenger.keys().collect::<Vec<_>>()
    );
}
