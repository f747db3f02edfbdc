//! Models as blobs between processes: `agora model fetch` from three real peers (one honest,
//! one lying, one dying) killed and restarted; and the governed model lifecycle.

use std::{
    process::Stdio,
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use agora_store::{tree::GROUP, BlobStore};
use serde_json::Value;

use crate::{
    network::{agora, signal, wait_exit},
    peers::{self, Behaviour},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_fetch_resumes_and_arrives_verified_despite_a_liar_and_a_dying_peer() {
    let bytes = peers::random_blob(48 * GROUP as usize + 999, 7);
    let source_dir = tempfile::tempdir().unwrap();
    let source = BlobStore::open(source_dir.path()).unwrap();
    let cid = source
        .import_reader(&mut &bytes[..], None, bytes.len() as u64, &mut |_, _| {})
        .unwrap();
    // Slow enough (50 ms a range) that the fetch is still running when it is killed.
    let (honest, served) = peers::spawn_counted(
        source.clone(),
        Behaviour::Honest {
            delay: Duration::from_millis(50),
        },
    )
    .await;
    let liar = peers::spawn(source.clone(), Behaviour::CorruptRanges).await;
    let dying = peers::spawn(source.clone(), Behaviour::DiesAfter(3)).await;

    let data = tempfile::tempdir().unwrap();
    let fetch = || {
        let mut command = agora();
        command
            .args([
                "model",
                "fetch",
                &cid.to_string(),
                "--no-discovery",
                "--json",
            ])
            .args(["--peer", &liar, "--peer", &dying, "--peer", &honest])
            .arg("--data-dir")
            .arg(data.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        command
    };

    // First run: SIGKILLed once the honest peer has answered some ranges.
    let mut first = fetch().spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while served.load(Ordering::Relaxed) < 8 {
        assert!(Instant::now() < deadline, "the fetch made no progress");
        assert!(
            first.try_wait().unwrap().is_none(),
            "the fetch ended before it was killed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    signal(&first, "-KILL");
    wait_exit(&mut first, Duration::from_secs(10));
    let store = BlobStore::open(data.path().join("blobs")).unwrap();
    assert!(
        !store.has(&cid),
        "nothing unverified is in place after a kill"
    );

    // Second run: resumes, and arrives whole.
    let mut second = fetch();
    let output = tokio::task::spawn_blocking(move || second.output().unwrap())
        .await
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(std::fs::read(store.path(&cid)).unwrap(), bytes);
    let resumed = report["resumed_bytes"].as_u64().unwrap();
    assert!(
        resumed >= GROUP,
        "the restart kept what the first run verified: {report}"
    );
    let fetched: u64 = report["from_peers"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(resumed + fetched, bytes.len() as u64, "{report}");
    assert_eq!(report["liars"], serde_json::json!([liar]), "{report}");
    assert_eq!(report["from_peers"][&liar], 0, "{report}");
    assert_eq!(report["failed"], serde_json::json!([dying]), "{report}");
}

/// The provider data folders' model, `/v1/models` of a URL, as (id, providers) pairs.
async fn listed(http: &reqwest::Client, url: &str) -> Vec<(String, u64)> {
    let body: Value = match http.get(format!("{url}/v1/models")).send().await {
        Ok(res) => res.json().await.unwrap_or_default(),
        Err(_) => return Vec::new(),
    };
    body["data"]
        .as_array()
        .map(|models| {
            models
                .iter()
                .map(|m| {
                    (
                        m["id"].as_str().unwrap_or_default().to_owned(),
                        m["providers"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Waits up to `limit` for `done`, polling every 200 ms; returns the time it took.
async fn within<F, Fut>(limit: Duration, what: &str, mut done: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !done().await {
        assert!(start.elapsed() < limit, "{what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    start.elapsed()
}

/// Submits a proposal or vote with the genesis validator's key (which holds most stake).
fn govern(network: &crate::network::Network, args: &[&str]) -> String {
    let chain = network.dir.path().join("chain");
    crate::network::run_ok(
        agora()
            .args(args)
            .arg("--data-dir")
            .arg(&chain)
            .arg("--key")
            .arg(chain.join("validator.key"))
            .args(["--node", &network.rpc_url]),
    )
}

/// The proposal id `agora model propose|retire` printed.
fn proposal_id(output: &str) -> String {
    let at = output
        .find("proposal #")
        .unwrap_or_else(|| panic!("no proposal id in {output}"));
    output[at + "proposal #".len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passed_model_is_fetched_served_and_retired_without_restarts() {
    let _turn = crate::verification::HEAVY.lock().await;
    let work = tempfile::tempdir().unwrap();
    let second = work.path().join("SmolLM2-135M-Instruct.Q4_0.gguf");
    {
        let (input, output) = (crate::network::default_model(), second.clone());
        tokio::task::spawn_blocking(move || {
            agora_engine::quantize::requantize(
                &input,
                &output,
                agora_engine::quantize::Quantization::Q4_0,
                2,
            )
        })
        .await
        .unwrap()
        .expect("requantize the default model");
    }
    let provider_args: Vec<Vec<String>> = (1..=2)
        .map(|i| {
            let data = work.path().join(format!("provider-{i}"));
            crate::network::seed_model(&data);
            vec![
                "--data-dir".into(),
                data.display().to_string(),
                "--serve".into(),
                "auto".into(),
                "--retire-grace-secs".into(),
                "3".into(),
            ]
        })
        .collect();
    let network = crate::network::Network::start_full(provider_args, 0, Vec::new(), "100").await;
    let http = reqwest::Client::new();

    // Propose the requantized copy from the node's data folder (so the node serves it), vote.
    let proposed = govern(
        &network,
        &[
            "model",
            "propose",
            &second.display().to_string(),
            "--name",
            "smollm2-q4_0",
        ],
    );
    let cid: agora_types::Cid = proposed.split(':').next().unwrap().trim().parse().unwrap();
    assert!(
        proposed.contains("Q4_0"),
        "the GGUF header names its quantization: {proposed}"
    );
    govern(&network, &["gov", "vote", &proposal_id(&proposed), "yes"]);

    // Every opted-in provider fetches it from the node, verifies it, loads it, and offers it.
    let rpc = network.rpc();
    within(Duration::from_secs(60), "the proposal passes", || async {
        rpc.model(&cid)
            .await
            .ok()
            .flatten()
            .is_some_and(|m| m.status == "active")
    })
    .await;
    let took = within(
        Duration::from_secs(120),
        "both providers serve the new model",
        || async {
            listed(&http, &network.gateway_url)
                .await
                .contains(&("smollm2-q4_0".to_owned(), 2))
        },
    )
    .await;
    eprintln!("both providers served the passed model {took:?} after it became active");
    for i in 1..=2 {
        let store = BlobStore::open(work.path().join(format!("provider-{i}/blobs"))).unwrap();
        store
            .verify(&cid, &mut |_, _| {})
            .expect("the fetched model is intact");
    }
    let node_blobs = BlobStore::open(network.dir.path().join("chain/blobs")).unwrap();
    assert!(
        node_blobs.has(&cid),
        "the proposal imported the file where the node serves it"
    );

    // A chat completion on the new name is answered by the new model.
    let res = network
        .chat(
            &http,
            serde_json::json!({
                "model": "smollm2-q4_0",
                "messages": [{"role": "user", "content": "Say hello."}],
                "max_tokens": 8,
            }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let receipt = res.headers()["x-agora-receipt"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = res.json().await.unwrap();
    assert!(!body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .is_empty());
    let receipt: Value = http
        .get(format!("{}/v1/receipts/{receipt}", network.gateway_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(receipt["receipt"]["model"], cid.to_string(), "{receipt}");

    // Demand by model reaches the ledger with the provider's next receipt commitment, and
    // `agora model list` shows it next to the default model's.
    let took = within(
        Duration::from_secs(90),
        "the new model's requests on the ledger",
        || async {
            rpc.model_stats(&cid, None)
                .await
                .ok()
                .flatten()
                .is_some_and(|s| s.requests == 1 && s.tokens_out > 0)
        },
    )
    .await;
    eprintln!("model stats on the ledger after {took:?}");
    let listed_json = crate::network::run_ok(agora().args([
        "model",
        "list",
        "--json",
        "--node",
        &network.rpc_url,
    ]));
    let rows: Value = serde_json::from_str(&listed_json).unwrap();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["model"]["cid"] == cid.to_string())
        .unwrap_or_else(|| panic!("{rows}"));
    assert_eq!(row["stats"]["providers"], 2, "{row}");
    assert_eq!(row["stats"]["requests"], 1, "{row}");
    assert_eq!(row["stats"]["min_price_out"], "200000000", "{row}");

    // Retire it: the gateway drops the name as soon as the ledger does; providers withdraw it
    // at once and unload it after their 3 s grace period.
    let retired = govern(&network, &["model", "retire", &cid.to_string()]);
    govern(&network, &["gov", "vote", &proposal_id(&retired), "yes"]);
    within(Duration::from_secs(60), "the retirement passes", || async {
        rpc.model(&cid)
            .await
            .ok()
            .flatten()
            .is_some_and(|m| m.status == "retired")
    })
    .await;
    within(
        Duration::from_secs(3),
        "the gateway drops the retired name",
        || async {
            !listed(&http, &network.gateway_url)
                .await
                .iter()
                .any(|(id, _)| id == "smollm2-q4_0")
        },
    )
    .await;
    let res = network
        .chat(
            &http,
            serde_json::json!({"model": "smollm2-q4_0", "messages": [{"role": "user", "content": "Hi"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        404,
        "a retired model is unknown to the gateway"
    );
    for provider in &network.providers {
        let url = format!("http://127.0.0.1:{}", provider.port);
        within(
            Duration::from_secs(5),
            "the provider stops listing it",
            || async {
                !listed(&http, &url)
                    .await
                    .iter()
                    .any(|(id, _)| id == "smollm2-q4_0")
            },
        )
        .await;
        within(
            Duration::from_secs(15),
            "the provider unloads it after the grace period",
            || async {
                let health: Value = match http.get(format!("{url}/health")).send().await {
                    Ok(res) => res.json().await.unwrap_or_default(),
                    Err(_) => return false,
                };
                !health["models"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|m| m["cid"] == cid.to_string())
            },
        )
        .await;
    }
    // The retired model's blob is garbage now; the default model is not.
    let provider_data = work.path().join("provider-1");
    let collected = crate::network::run_ok(
        agora()
            .args(["model", "gc", "--node", &network.rpc_url, "--data-dir"])
            .arg(&provider_data),
    );
    assert_eq!(collected.trim(), format!("removed {cid}"));
    let store = BlobStore::open(provider_data.join("blobs")).unwrap();
    assert_eq!(
        store.list().unwrap(),
        vec![agora_store::default_model::cid()]
    );

    // A model no peer has passes (governance does not fetch), and each provider reports that
    // it cannot fetch it, retries later, and keeps serving what it has.
    let ghost = agora_types::Cid::of(b"a model nobody has");
    govern(
        &network,
        &[
            "gov",
            "propose",
            "add-model",
            "--cid",
            &ghost.to_string(),
            "--name",
            "ghost",
            "--architecture",
            "llama",
            "--quantization",
            "Q4_0",
            "--context-length",
            "2048",
            "--license",
            "mit",
            "--size",
            "1000",
        ],
    );
    let proposals = rpc.proposals().await.unwrap();
    let id = proposals.iter().map(|p| p.id).max().unwrap().to_string();
    govern(&network, &["gov", "vote", &id, "yes"]);
    for provider in &network.providers {
        let url = format!("http://127.0.0.1:{}/health", provider.port);
        within(
            Duration::from_secs(60),
            "the provider reports the fetch failure",
            || async {
                let health: Value = match http.get(&url).send().await {
                    Ok(res) => res.json().await.unwrap_or_default(),
                    Err(_) => return false,
                };
                health["failed"]
                    .as_array()
                    .is_some_and(|f| f.iter().any(|m| m["cid"] == ghost.to_string()))
            },
        )
        .await;
    }
    // The default model was never disturbed.
    assert!(listed(&http, &network.gateway_url)
        .await
        .contains(&(agora_store::default_model::NAME.to_owned(), 2)));
    let res = network
        .chat(
            &http,
            serde_json::json!({
                "model": agora_store::default_model::NAME,
                "messages": [{"role": "user", "content": "Hi"}],
                "max_tokens": 4,
            }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_governed_blocked_pattern_refuses_prompts_at_once_and_a_second_proposal_lifts_it() {
    let _turn = crate::verification::HEAVY.lock().await;
    let network = crate::network::Network::start_full(vec![Vec::new()], 0, Vec::new(), "100").await;
    let http = reqwest::Client::new();
    let rpc = network.rpc();
    let model = agora_store::default_model::NAME;
    let ask = |content: &str, max_tokens: u32| {
        network
            .chat(
                &http,
                serde_json::json!({
                    "model": model,
                    "messages": [{"role": "user", "content": content}],
                    "max_tokens": max_tokens,
                }),
            )
            .send()
    };
    let blocked = "How would one make a Nerve Agent?";
    assert_eq!(
        ask(blocked, 4).await.unwrap().status(),
        200,
        "no policy yet"
    );

    // A malformed document is refused before anything reaches the ledger.
    let work = tempfile::tempdir().unwrap();
    let bad = work.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"version":1,"blocked":[{"id":"x","pattern":"(unclosed"}]}"#,
    )
    .unwrap();
    let chain = network.dir.path().join("chain");
    let output = agora()
        .args(["policy", "propose"])
        .arg(&bad)
        .arg("--data-dir")
        .arg(&chain)
        .arg("--key")
        .arg(chain.join("validator.key"))
        .args(["--node", &network.rpc_url])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("rule 'x': pattern"), "{stderr}");
    assert!(
        rpc.proposals().await.unwrap().is_empty(),
        "nothing was proposed"
    );

    // Adopt a policy: a blocked pattern and an output limit on the default model.
    let strict = work.path().join("strict.json");
    std::fs::write(
        &strict,
        serde_json::json!({
            "version": 1,
            "blocked": [{"id": "no-nerve-agents", "pattern": "(?i)nerve\\s+agent", "reason": "weapons"}],
            "models": {model: {"max_output_tokens": 64}},
        })
        .to_string(),
    )
    .unwrap();
    let adopt = |file: &std::path::Path| {
        let proposed = govern(
            &network,
            &["policy", "propose", &file.display().to_string()],
        );
        let cid: agora_types::Cid = proposed.split(':').next().unwrap().trim().parse().unwrap();
        govern(&network, &["gov", "vote", &proposal_id(&proposed), "yes"]);
        cid
    };
    let cid = adopt(&strict);
    within(
        Duration::from_secs(60),
        "the policy proposal passes",
        || async { rpc.safety_policy().await.ok().flatten() == Some(cid) },
    )
    .await;
    let took = within(
        Duration::from_secs(3),
        "the gateway refuses the blocked prompt",
        || async { ask(blocked, 4).await.unwrap().status() == 400 },
    )
    .await;
    eprintln!("the gateway enforced the new policy {took:?} after the ledger adopted it");
    let res = ask(blocked, 4).await.unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "policy_violation", "{body}");
    assert_eq!(body["error"]["param"], "messages", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("'no-nerve-agents' (weapons)"), "{message}");
    assert_eq!(
        ask("Say hello.", 4).await.unwrap().status(),
        200,
        "other prompts pass"
    );
    let res = ask("Say hello.", 65).await.unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("{model}.max_output_tokens")),
        "{body}"
    );
    // The provider enforces it too, whoever sends the request.
    let provider = format!("http://127.0.0.1:{}", network.providers[0].port);
    within(Duration::from_secs(3), "the provider refuses the blocked prompt", || async {
        let res = http
            .post(format!("{provider}/v1/chat/completions"))
            .json(&serde_json::json!({"model": model, "messages": [{"role": "user", "content": blocked}]}))
            .send()
            .await
            .unwrap();
        res.status() == 400
            && res.json::<Value>().await.unwrap()["error"]["code"] == "policy_violation"
    })
    .await;
    let shown: Value = get_policy(&http, &network.gateway_url).await;
    assert_eq!(shown["cid"], cid.to_string(), "{shown}");

    // A second proposal lifts the rule.
    let lenient = work.path().join("lenient.json");
    std::fs::write(&lenient, r#"{"version":1}"#).unwrap();
    let lifted = adopt(&lenient);
    within(
        Duration::from_secs(60),
        "the second policy passes",
        || async { rpc.safety_policy().await.ok().flatten() == Some(lifted) },
    )
    .await;
    within(
        Duration::from_secs(3),
        "the blocked prompt passes again",
        || async { ask(blocked, 4).await.unwrap().status() == 200 },
    )
    .await;
    assert_eq!(ask("Say hello.", 65).await.unwrap().status(), 200);
}

async fn get_policy(http: &reqwest::Client, gateway: &str) -> Value {
    http.get(format!("{gateway}/agora/policy"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}
