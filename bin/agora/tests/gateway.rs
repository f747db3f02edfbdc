//! The gateway with real processes: routing preferences, payments, bad input, failover.

use std::time::{Duration, Instant};

use agora_types::{Amount, SignedTx, TxBody, Voucher};
use serde_json::{json, Value};

use crate::network::{get_json, Network};

const MODEL: &str = "SmolLM2-135M-Instruct";

fn ask(content: &str, max_tokens: u32) -> Value {
    json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
        "temperature": 0,
    })
}

async fn served_by(network: &Network, http: &reqwest::Client, body: Value) -> (u16, String) {
    let res = network.chat(http, body).send().await.unwrap();
    let status = res.status().as_u16();
    let provider = res
        .headers()
        .get(agora_api::PROVIDER_HEADER)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, provider)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn routing_preferences_are_honoured() {
    let network = Network::start(3, "100").await;
    let http = reqwest::Client::new();
    let [p1, p2, p3] = [0, 1, 2].map(|i| network.providers[i].account.clone());

    // p2 and p3 charge 0.4 and 0.6 AGR per million completion tokens.
    let cases = [
        ("cheapest", json!({"sort": "price"}), &p1),
        ("only", json!({"only": [p3]}), &p3),
        ("ignore", json!({"ignore": [p1, p2], "sort": "price"}), &p3),
        ("order", json!({"order": [p2, p1]}), &p2),
        ("max_price", json!({"max_price": {"completion": 0.3}}), &p1),
    ];
    for (what, preferences, expected) in cases {
        let mut body = ask("Hi.", 2);
        body["provider"] = preferences;
        let served = served_by(&network, &http, body).await;
        assert_eq!(served, (200, expected.clone()), "{what}");
    }

    let mut body;
    body = ask("Hi.", 2);
    body["provider"] = json!({"max_price": {"completion": 0.1}});
    let res = network.chat(&http, body).send().await.unwrap();
    assert_eq!(res.status(), 503);
    let text = res.text().await.unwrap();
    assert!(text.contains("max_price"), "{text}");

    body = ask("Hi.", 2);
    body["provider"] = json!({"only": ["agora1nobody"]});
    let res = network.chat(&http, body).send().await.unwrap();
    assert_eq!(res.status(), 503);

    // Default: weighted by 1/price², so the cheapest serves most of the time.
    let mut counts = std::collections::HashMap::new();
    for _ in 0..24 {
        let (status, provider) = served_by(&network, &http, ask("Hi.", 1)).await;
        assert_eq!(status, 200);
        *counts.entry(provider).or_insert(0) += 1;
    }
    assert!(
        counts.get(&p1).copied().unwrap_or(0) > counts.get(&p3).copied().unwrap_or(0),
        "{counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_clients_and_bad_providers_are_refused() {
    let network = Network::start(2, "0.00001").await;
    let http = reqwest::Client::new();
    let url = format!("{}/v1/chat/completions", network.gateway_url);

    let res = http
        .post(&url)
        .bearer_auth("sk-unknown")
        .json(&ask("Hi.", 2))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    // No key: 402 with a quote to pay a provider directly.
    let res = http.post(&url).json(&ask("Hi.", 2)).send().await.unwrap();
    assert_eq!(res.status(), 402);
    let quote = res.headers()[agora_api::PAYMENT_REQUIRED_HEADER]
        .to_str()
        .unwrap()
        .to_owned();
    let quote: Value =
        serde_json::from_slice(&data_encoding::BASE64.decode(quote.as_bytes()).unwrap()).unwrap();
    assert!(
        quote["payTo"].as_str().unwrap().starts_with("agora1"),
        "{quote}"
    );

    // 10,000 base units of credit cannot cover a long answer's quote.
    let res = network.chat(&http, ask("Hi.", 400)).send().await.unwrap();
    assert_eq!(res.status(), 402);
    assert!(res.text().await.unwrap().contains("credit exhausted"));

    for (body, status) in [
        ("{not json", 400),
        (
            r#"{"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]}"#,
            404,
        ),
        (
            r#"{"model": "SmolLM2-135M-Instruct", "messages": "x"}"#,
            400,
        ),
        (
            r#"{"model": "SmolLM2-135M-Instruct", "messages": [], "provider": {"sort": "cheapest"}}"#,
            400,
        ),
    ] {
        let res = http
            .post(&url)
            .bearer_auth(&network.api_key)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), status, "{body}");
        let error: Value = res.json().await.unwrap();
        assert!(error["error"]["message"].is_string(), "{error}");
    }
    let res = http
        .post(&url)
        .bearer_auth(&network.api_key)
        .body(vec![b'x'; 3 * 1024 * 1024])
        .send()
        .await;
    if let Ok(res) = res {
        assert_eq!(res.status(), 413);
    }
}

/// A provider that answers every chat request with a 200 and garbage.
async fn garbage_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new()
        .route(
            "/v1/chat/completions",
            axum::routing::post(|| async { "data: this is not json\n\ndata: [DONE]\n\n" }),
        )
        .route("/health", axum::routing::get(|| async { "ok" }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_provider_returning_garbage_is_a_failure_not_an_answer() {
    let network = Network::start(1, "100").await;
    let http = reqwest::Client::new();
    let port = garbage_server().await;
    // A funded account registers the garbage endpoint with the real CLI.
    let liar = tempfile::tempdir().unwrap();
    let liar_key = liar.path().join("liar.key");
    let keypair = agora_types::Keypair::from_seed(b"garbage provider");
    agora_rpc::keyfile::save(&liar_key, &keypair).unwrap();
    let rpc = network.rpc();
    network
        .fund(keypair.account_id(), 1_000 * agora_types::UNITS_PER_AGR)
        .await;
    crate::network::run_ok(
        crate::network::agora()
            .args([
                "provider",
                "register",
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .args(["--rpc", &network.rpc_url, "--key"])
            .arg(&liar_key)
            .args(["--price-in", "0.001", "--price-out", "0.001"]),
    );
    let liar_account = keypair.account_id().to_string();
    let registered = rpc
        .provider(&keypair.account_id())
        .await
        .unwrap()
        .expect("registered");
    assert_eq!(registered.endpoint, format!("http://127.0.0.1:{port}"));

    // Wait until the gateway routes to it (`/v1/models` counts the providers it plans over),
    // then ask for it first: the garbage is never forwarded.
    let deadline = Instant::now() + Duration::from_secs(20);
    while serving(&http, &network.gateway_url).await < 2 {
        assert!(
            Instant::now() < deadline,
            "gateway never listed the new provider"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Without fallbacks the request fails fast on the liar.
    let mut body = ask("Say hi.", 4);
    body["provider"] = json!({"order": [liar_account], "allow_fallbacks": false});
    let res = network.chat(&http, body).send().await.unwrap();
    assert_eq!(res.status(), 502);
    let text = res.text().await.unwrap();
    assert!(text.contains("malformed"), "{text}");
    // Give the liar's cooldown time to pass, so that it is tried first again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for stream in [false, true] {
        let mut body = ask("Say hi.", 4);
        body["stream"] = json!(stream);
        body["provider"] = json!({"order": [liar_account]});
        let res = network.chat(&http, body).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let text = res.text().await.unwrap();
        assert!(!text.contains("not json"), "{text}");
        // The answer's `agora` field names the provider that actually served it.
        assert!(text.contains("\"provider\":\"agora1"), "{text}");
        assert!(
            !text.contains(&format!("\"provider\":\"{liar_account}\"")),
            "{text}"
        );
    }
    let liar_health = provider_state(&http, &network.gateway_url, &liar_account)
        .await
        .unwrap();
    assert!(
        liar_health["failures"].as_u64().unwrap() >= 1,
        "{liar_health}"
    );
}

/// Signs a voucher on `channel` for `cumulative` and returns its header value.
fn voucher(
    payer: &agora_types::Keypair,
    chain_id: &agora_types::ChainId,
    channel: agora_types::Hash,
    payee: agora_types::AccountId,
    cumulative: Amount,
) -> String {
    let signed = Voucher {
        chain_id: chain_id.clone(),
        channel_id: channel,
        payer: payer.account_id(),
        payee,
        cumulative,
    }
    .sign(payer);
    hex::encode(agora_types::encode(&signed))
}

/// The value of the first Prometheus sample named `name` in `metrics`.
fn metric(metrics: &str, name: &str) -> Option<u64> {
    metrics
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn tokens_in(metrics: &str) -> u64 {
    metric(metrics, "agora_provider_tokens_in_total").unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn providers_refuse_bad_vouchers_and_claim_only_what_they_served() {
    let network = Network::start(2, "100").await;
    let http = reqwest::Client::new();
    let rpc = network.rpc();
    let head = rpc.head().await.unwrap();
    let chain_id = agora_types::ChainId::new(&head.chain_id).unwrap();
    let provider: agora_types::AccountId = network.providers[0].account.parse().unwrap();
    let other: agora_types::AccountId = network.providers[1].account.parse().unwrap();
    // An agent with its own key and funds (not the gateway's key).
    let agent = agora_types::Keypair::from_seed(b"agent paying directly");
    network
        .fund(agent.account_id(), 10 * agora_types::UNITS_PER_AGR)
        .await;

    // The agent opens its own channel to provider 1 with 0.001 AGR.
    let deposit: Amount = 1_000_000;
    let nonce = rpc.account(&agent.account_id()).await.unwrap().nonce;
    let tx = SignedTx::sign(
        &agent,
        &chain_id,
        nonce,
        1_000,
        TxBody::OpenChannel {
            payee: provider,
            deposit,
            expiry_height: head.height + 10_000,
        },
    );
    let hash = rpc.submit_tx(&tx).await.unwrap();
    let status = rpc
        .wait_for_tx(&hash, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(status.success, Some(true), "{status:?}");
    let channel = rpc
        .channels(Some(&agent.account_id()), Some(&provider))
        .await
        .unwrap()[0]
        .clone();
    let channel_id = agora_types::Hash::from_hex(&channel.id).unwrap();

    let endpoint = format!("http://127.0.0.1:{}", network.providers[0].port);
    let post = |voucher: Option<String>| {
        let mut req = http
            .post(format!("{endpoint}/v1/chat/completions"))
            .json(&ask("Name a colour.", 8));
        if let Some(v) = voucher {
            req = req.header(agora_api::VOUCHER_HEADER, v);
        }
        req.send()
    };
    // Prompt tokens of this request, from a gateway answer (same messages, same template).
    let via_gateway: Value = network
        .chat(&http, ask("Name a colour.", 8))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let prompt_tokens = via_gateway["usage"]["prompt_tokens"].as_u64().unwrap();
    let (price_in, price_out): (Amount, Amount) = (100_000_000, 200_000_000);
    let quote = agora_types::amount::cost_per_million(prompt_tokens, price_in).unwrap()
        + agora_types::amount::cost_per_million(8, price_out).unwrap();

    let metrics = || async {
        http.get(format!("{endpoint}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let before = tokens_in(&metrics().await);
    let stranger = agora_types::Keypair::from_seed(b"stranger");
    let refused = [
        ("no voucher", None),
        ("not hex", Some("zz".to_owned())),
        (
            "forged",
            Some({
                let mut forged: agora_types::SignedVoucher = agora_types::decode(
                    &hex::decode(voucher(&agent, &chain_id, channel_id, provider, quote)).unwrap(),
                )
                .unwrap();
                forged.signature = Voucher {
                    chain_id: chain_id.clone(),
                    channel_id,
                    payer: agent.account_id(),
                    payee: provider,
                    cumulative: quote,
                }
                .sign(&stranger)
                .signature;
                hex::encode(agora_types::encode(&forged))
            }),
        ),
        (
            "wrong payee",
            Some(voucher(&agent, &chain_id, channel_id, other, quote)),
        ),
        (
            "wrong chain",
            Some(voucher(
                &agent,
                &agora_types::ChainId::new("other-chain").unwrap(),
                channel_id,
                provider,
                quote,
            )),
        ),
        (
            "over deposit",
            Some(voucher(
                &agent,
                &chain_id,
                channel_id,
                provider,
                deposit + 1,
            )),
        ),
        (
            "too little",
            Some(voucher(&agent, &chain_id, channel_id, provider, quote - 1)),
        ),
        (
            "unknown channel",
            Some(voucher(
                &agent,
                &chain_id,
                agora_types::Hash::of(b"none"),
                provider,
                quote,
            )),
        ),
    ];
    for (what, header) in refused {
        let res = post(header).await.unwrap();
        assert_eq!(res.status(), 402, "{what}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "payment_required", "{what}: {body}");
    }
    assert_eq!(
        tokens_in(&metrics().await),
        before,
        "no refused request reached the engine"
    );

    // An exact voucher pays for one answer; replaying it is refused (its value is spent).
    let exact = voucher(&agent, &chain_id, channel_id, provider, quote);
    let res = post(Some(exact.clone())).await.unwrap();
    assert_eq!(res.status(), 200);
    let receipt_id = res.headers()[agora_api::RECEIPT_HEADER]
        .to_str()
        .unwrap()
        .to_owned();
    let answer: Value = res.json().await.unwrap();
    let receipt: agora_api::ReceiptJson =
        serde_json::from_value(answer["agora"]["receipt"].clone()).unwrap();
    assert_eq!(receipt.id, receipt_id);
    let signed = receipt.to_verified().unwrap();
    let charge = signed.receipt.charge().unwrap();
    assert!(charge > 0 && charge <= quote);
    assert_eq!(signed.receipt.payer, agent.account_id());
    assert_eq!(signed.receipt.voucher_amount, quote);
    let res = post(Some(exact)).await.unwrap();
    assert_eq!(res.status(), 402, "replayed voucher");

    // On shutdown the provider redeems exactly the charge, not the voucher's full amount.
    let mut network = network;
    network.stop_provider(0);
    let channel = rpc.channel(&channel_id).await.unwrap().unwrap();
    assert_eq!(channel.redeemed, charge.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_provider_killed_before_settling_claims_and_commits_after_restart() {
    let mut network = Network::start(1, "10").await;
    let http = reqwest::Client::new();
    let rpc = network.rpc();
    let provider: agora_types::AccountId = network.providers[0].account.parse().unwrap();
    // Restarted with a settle interval no test outlives: only shutdown redeems and commits.
    network.stop_provider(0);
    network.providers[0].settle_ms = 3_600_000;
    network.start_provider(0);
    network.wait_provider(0).await;

    let mut charged: Amount = 0;
    let mut served = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while served < 3 {
        assert!(
            Instant::now() < deadline,
            "the restarted provider never served"
        );
        let res = network
            .chat(&http, ask("Name a fruit.", 8))
            .send()
            .await
            .unwrap();
        if res.status() != 200 {
            // The gateway probes the restarted provider back to health within a second.
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        let answer: Value = res.json().await.unwrap();
        let receipt: agora_api::ReceiptJson =
            serde_json::from_value(answer["agora"]["receipt"].clone()).unwrap();
        charged += receipt.to_verified().unwrap().receipt.charge().unwrap();
        served += 1;
    }
    let redeemed = || async {
        let channels = rpc.channels(None, Some(&provider)).await.unwrap();
        channels
            .iter()
            .map(|c| c.redeemed.parse::<Amount>().unwrap())
            .sum::<Amount>()
    };
    let before = redeemed().await;

    // Killed: nothing redeemed, nothing committed; the journal on disk is all that is left.
    network.kill_provider(0);
    network.start_provider(0);
    network.wait_provider(0).await;
    network.stop_provider(0);

    assert_eq!(
        redeemed().await - before,
        charged,
        "the restarted provider claims exactly what its receipts charged"
    );
    let head = rpc.head().await.unwrap();
    let epoch_blocks: u64 = rpc.params().await.unwrap()["epoch_blocks"].parse().unwrap();
    let mut committed = 0;
    for epoch in 0..=head.height / epoch_blocks {
        if let Some(c) = rpc.receipt_commitment(&provider, epoch).await.unwrap() {
            committed += c.requests;
        }
    }
    assert_eq!(
        committed, 3,
        "every receipt signed before the kill is committed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_provider_killed_mid_stream_is_replaced_without_a_failed_request() {
    let mut network = Network::start(3, "100").await;
    let http = reqwest::Client::new();
    let prompts: Vec<String> = (0..10)
        .map(|i| format!("Write a long story about lighthouse number {i}."))
        .collect();
    let stream_body = |prompt: &str| {
        json!({
            "model": MODEL,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": 48,
            "temperature": 0,
            "stream": true,
            "stream_options": {"include_usage": true},
        })
    };
    // Undisturbed answers first.
    let mut reference = Vec::new();
    for prompt in &prompts {
        reference.push(
            read_stream(
                network
                    .chat(&http, stream_body(prompt))
                    .send()
                    .await
                    .unwrap(),
            )
            .await
            .0,
        );
    }
    // 50 concurrent streams; the first provider dies once they are under way.
    let mut tasks = Vec::new();
    for i in 0..50 {
        let req = network.chat(&http, stream_body(&prompts[i % prompts.len()]));
        tasks.push(tokio::spawn(async move {
            read_stream(req.send().await.unwrap()).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    network.kill_provider(0);
    let mut equal = 0;
    let mut differing = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        let (text, usage) = task.await.unwrap();
        assert!(usage["completion_tokens"].as_u64().unwrap() >= 1, "{usage}");
        if text == reference[i % prompts.len()] {
            equal += 1;
        } else {
            differing.push((i % prompts.len(), text));
        }
    }
    let metrics = http
        .get(format!("{}/metrics", network.gateway_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let counter = |name: &str| {
        metric(&metrics, name).unwrap_or_else(|| panic!("{name} missing from {metrics}"))
    };
    let mid_stream = counter("agora_gateway_failovers_mid_stream_total");
    let before_first = counter("agora_gateway_retries_before_first_token_total");
    eprintln!("{equal}/50 equal to the undisturbed answer; {mid_stream} mid-stream failovers, {before_first} retries before the first token");
    assert!(
        mid_stream + before_first >= 1,
        "the kill moved no request: {metrics}"
    );
    // Answers that differ must still be greedy under the model, within the measured tolerance.
    if !differing.is_empty() {
        check_greedy(&prompts, &differing).await;
    }

    // The killed provider is cooling down, and is probed back once it restarts.
    let killed = network.providers[0].account.clone();
    let state = provider_state(&http, &network.gateway_url, &killed)
        .await
        .unwrap();
    assert!(state["failures"].as_u64().unwrap() >= 1, "{state}");
    network.start_provider(0);
    network.wait_provider(0).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let state = provider_state(&http, &network.gateway_url, &killed)
            .await
            .unwrap();
        if state["healthy"] == true && state["consecutive_failures"] == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the restarted provider was not probed back: {state}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How many providers the gateway routes the test model to.
pub(crate) async fn serving(http: &reqwest::Client, gateway: &str) -> u64 {
    let models = get_json(http, format!("{gateway}/v1/models")).await;
    models["data"][0]["providers"].as_u64().unwrap_or(0)
}

/// The gateway's view of one provider, if it lists it.
async fn provider_state(http: &reqwest::Client, gateway: &str, account: &str) -> Option<Value> {
    let list = get_json(http, format!("{gateway}/agora/providers")).await;
    list["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["account"] == account)
        .cloned()
}

/// Reads a streamed answer, checking that it is well formed; returns its text and usage.
async fn read_stream(res: reqwest::Response) -> (String, Value) {
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap();
    let events: Vec<&str> = body
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            e.trim()
                .strip_prefix("data: ")
                .expect("every event is data")
        })
        .collect();
    assert_eq!(events.last(), Some(&"[DONE]"), "{body}");
    let mut text = String::new();
    let mut usage = Value::Null;
    let (mut roles, mut finishes) = (0, 0);
    for event in &events[..events.len() - 1] {
        let chunk: Value = serde_json::from_str(event).expect("every chunk is JSON");
        assert!(chunk.get("error").is_none(), "{chunk}");
        if let Some(choice) = chunk["choices"].get(0) {
            roles += usize::from(choice["delta"].get("role").is_some());
            finishes += usize::from(choice["finish_reason"].is_string());
            text.push_str(choice["delta"]["content"].as_str().unwrap_or(""));
        }
        if !chunk["usage"].is_null() {
            usage = chunk["usage"].clone();
        }
    }
    assert_eq!((roles, finishes), (1, 1), "{body}");
    (text, usage)
}

/// Scores each differing answer with the model and checks every token is within the
/// measured greedy tolerance of the best.
async fn check_greedy(prompts: &[String], differing: &[(usize, String)]) {
    let mut config = agora_engine::EngineConfig::for_model(crate::network::default_model());
    config.context_per_sequence = 512;
    config.max_sequences = 1;
    let engine = agora_engine::Engine::load(config).unwrap();
    for (index, text) in differing {
        let prompt = engine
            .tokenize_chat(&[agora_engine::ChatMessage::new("user", &prompts[*index])])
            .unwrap();
        let output = engine.tokenize(text);
        let scores = engine.score(&prompt, &output, 1).await.unwrap();
        for (pos, s) in scores.iter().enumerate() {
            assert!(
                s.max_logit - s.logit <= 1.5,
                "prompt {index} position {pos}: token logit {} vs best {}",
                s.logit,
                s.max_logit
            );
        }
    }
}
