//! `agora devnet` as a newcomer runs it: a real process, real ports, a real chat completion.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use agora_rpc::Client;

use crate::network::{free_port, seed_model};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devnet_serves_chat_and_produces_blocks_then_stops_on_sigterm() {
    let data = tempfile::tempdir().unwrap();
    seed_model(data.path());
    let (api_port, rpc_port) = (free_port(), free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_agora"))
        .args(["devnet", "--data-dir"])
        .arg(data.path())
        .args(["--listen", &format!("127.0.0.1:{api_port}")])
        .args(["--rpc-listen", &format!("127.0.0.1:{rpc_port}")])
        .args(["--provider-port", "0", "--verifier-port", "0"])
        .args(["--context", "512", "--parallel", "2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start agora devnet");

    let http = reqwest::Client::new();
    let api = format!("http://127.0.0.1:{api_port}");
    let started = Instant::now();
    while !data.path().join("devnet/api-key").exists()
        || http.get(format!("{api}/health")).send().await.is_err()
    {
        assert!(
            child.try_wait().unwrap().is_none(),
            "devnet exited during start-up"
        );
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "devnet did not come up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let api_key =
        std::fs::read_to_string(data.path().join("devnet/api-key")).expect("api key file");
    let res = http
        .post(format!("{api}/v1/chat/completions"))
        .bearer_auth(api_key.trim())
        .json(&serde_json::json!({
            "model": "SmolLM2-135M-Instruct",
            "messages": [{"role": "user", "content": "Say hello."}],
            "max_tokens": 8,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(
        body["choices"][0]["message"]["content"].is_string(),
        "{body}"
    );

    let rpc = Client::new(&format!("http://127.0.0.1:{rpc_port}")).unwrap();
    let first = rpc.head().await.expect("node answers").height;
    let deadline = Instant::now() + Duration::from_secs(30);
    while rpc.head().await.unwrap().height <= first {
        assert!(Instant::now() < deadline, "the chain did not advance");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let model = rpc.model(&agora_store::default_model::cid()).await.unwrap();
    assert!(
        model.is_some(),
        "the default model is registered at genesis"
    );

    // SIGTERM stops both roles cleanly.
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "devnet did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "{status}");
}
