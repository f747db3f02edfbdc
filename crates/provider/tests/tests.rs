//! The provider over real loopback HTTP with the real default model.

use std::{sync::Arc, time::Duration};

use agora_engine::{Engine, EngineConfig};
use agora_provider::{Provider, ServedModel};
use serde_json::{json, Value};
use tokio::net::TcpListener;

const MODEL: &str = "SmolLM2-135M-Instruct";

/// Starts a provider on a loopback port with `slots` sequences and a queue of `queue`.
async fn start(slots: u32, queue: usize) -> String {
    let path = tokio::task::spawn_blocking(|| {
        agora_store::default_model::ensure_shared(&mut |_, _| {}).unwrap()
    })
    .await
    .unwrap();
    let mut config = EngineConfig::for_model(path);
    config.max_sequences = slots;
    config.queue_capacity = queue;
    config.context_per_sequence = 512;
    config.threads = 2;
    let engine = tokio::task::spawn_blocking(move || Engine::load(config))
        .await
        .unwrap()
        .unwrap();
    let provider = Arc::new(Provider::new(
        vec![ServedModel::new(
            MODEL.into(),
            agora_store::default_model::cid(),
            engine,
            0,
            0,
        )],
        agora_provider::DEFAULT_MAX_BODY_BYTES,
        Duration::from_secs(120),
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(agora_provider::serve(
        provider,
        listener,
        std::future::pending(),
    ));
    url
}

fn chat(content: &str, max_tokens: u32) -> Value {
    json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
        "temperature": 0,
    })
}

async fn post_raw(url: &str, body: Vec<u8>) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(format!("{url}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Asserts an OpenAI-shaped error with `status`.
fn assert_error(status: u16, body: &Value, expected: u16, case: &str) {
    assert_eq!(status, expected, "{case}: {body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "{case}: error body {body}");
    assert!(body["error"]["type"].is_string(), "{case}: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_and_stream_follow_openai_format() {
    let url = start(4, 16).await;
    let (status, body) = post_raw(&url, chat("Name a fruit.", 12).to_string().into_bytes()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    let text = body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!text.is_empty());
    assert!(body["seed"].is_u64());

    let mut request = chat("Name a fruit.", 12);
    request["stream"] = json!(true);
    request["stream_options"] = json!({"include_usage": true});
    let res = reqwest::Client::new()
        .post(format!("{url}/v1/chat/completions"))
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let raw = res.text().await.unwrap();
    let events: Vec<&str> = raw
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            e.strip_prefix("data: ")
                .expect("every event is a data line")
        })
        .collect();
    assert_eq!(*events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let streamed: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(streamed, text, "stream and non-stream agree under greedy");
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(
        usage["completion_tokens"],
        body["usage"]["completion_tokens"]
    );
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk"));
    assert!(chunks
        .iter()
        .any(|c| c["choices"][0]["finish_reason"].is_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_openai_errors_and_server_keeps_serving() {
    let url = start(2, 8).await;
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("malformed json", b"{\"model\": ".to_vec(), 400),
        ("not an object", b"[1,2,3]".to_vec(), 400),
        ("wrong types", json!({"model": 5, "messages": "hi"}).to_string().into_bytes(), 400),
        ("empty messages", json!({"model": MODEL, "messages": []}).to_string().into_bytes(), 400),
        ("negative max_tokens", chat("hi", 0).to_string().replace("\"max_tokens\":0", "\"max_tokens\":-5").into_bytes(), 400),
        ("huge max_tokens", json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1u64 << 40}).to_string().into_bytes(), 400),
        ("unknown model", json!({"model": "gpt-17", "messages": [{"role": "user", "content": "hi"}]}).to_string().into_bytes(), 404),
        ("unknown role", json!({"model": MODEL, "messages": [{"role": "wizard", "content": "hi"}]}).to_string().into_bytes(), 400),
        ("temperature out of range", json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "temperature": 9}).to_string().into_bytes(), 400),
        ("non-utf8 bytes", vec![b'{', 0xff, 0xfe, b'}'], 400),
        ("oversized prompt", chat(&"word ".repeat(3000), 4).to_string().into_bytes(), 400),
        ("10 MB body", vec![b' '; 10 * 1024 * 1024], 413),
    ];
    for (case, body, expected) in cases {
        let (status, body) = post_raw(&url, body).await;
        assert_error(status, &body, expected, case);
    }
    let (status, body) = post_raw(&url, chat("Say ok.", 4).to_string().into_bytes()).await;
    assert_eq!(status, 200, "still serving: {body}");
    let metrics = reqwest::get(format!("{url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("agora_provider_requests_total{status=\"400\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("agora_provider_tokens_out_total"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_answers_429_with_retry_after() {
    let url = start(1, 1).await;
    let client = reqwest::Client::new();
    let requests = (0..6).map(|_| {
        client
            .post(format!("{url}/v1/chat/completions"))
            .json(&chat("Tell me a long story about dragons.", 48))
            .send()
    });
    let responses = futures::future::join_all(requests).await;
    let mut limited = 0;
    for res in responses {
        let res = res.unwrap();
        if res.status() == 429 {
            assert_eq!(res.headers()["retry-after"], "1");
            let body: Value = res.json().await.unwrap();
            assert_eq!(body["error"]["type"], "rate_limit_error");
            limited += 1;
        } else {
            assert_eq!(res.status(), 200);
        }
    }
    assert!(
        limited >= 1,
        "one slot and one queue place cannot take six requests at once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_health_and_unknown_routes() {
    let url = start(1, 2).await;
    let models: Value = reqwest::get(format!("{url}/v1/models"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], MODEL);
    assert_eq!(models["data"][0]["cid"], agora_store::default_model::CID);
    let health = reqwest::get(format!("{url}/health")).await.unwrap();
    assert_eq!(health.status(), 200);
    let missing = reqwest::get(format!("{url}/v2/nothing")).await.unwrap();
    assert_eq!(missing.status(), 404);
    // The CID works as a model name too.
    let mut request = chat("hi", 2);
    request["model"] = json!(agora_store::default_model::CID);
    let (status, body) = post_raw(&url, request.to_string().into_bytes()).await;
    assert_eq!(status, 200, "{body}");
}
