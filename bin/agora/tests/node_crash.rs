//! Crash safety of `agora node`: SIGKILL at random moments loses nothing committed.

use std::{
    net::TcpListener,
    path::Path,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use agora_rpc::{wire, Client};
use agora_types::{ChainId, Hash, Keypair, SignedTx, TxBody};

const WAIT: Duration = Duration::from_secs(30);

fn agora() -> Command {
    Command::new(env!("CARGO_BIN_EXE_agora"))
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("addr").port()
}

fn start_node(data_dir: &Path, port: u16) -> Child {
    agora()
        .args(["node", "--data-dir"])
        .arg(data_dir)
        .args(["--rpc-listen", &format!("127.0.0.1:{port}")])
        .args(["--block-interval-ms", "20", "--idle-interval-ms", "200"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start agora node")
}

async fn wait_healthy(client: &Client) {
    let start = Instant::now();
    while !matches!(client.health().await, Ok(true)) {
        assert!(start.elapsed() < WAIT, "node did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A small deterministic generator for kill times (no extra dependency).
fn next_delay(state: &mut u64) -> Duration {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    Duration::from_millis(300 + *state % 1_200)
}

/// Streams transfers until `stop`, recording every hash (and height) the node reports
/// committed.
pub(crate) async fn stream_transfers(
    client: Client,
    sender: Keypair,
    to: agora_types::AccountId,
    chain_id: ChainId,
    committed: Arc<Mutex<Vec<(Hash, u64)>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let Ok(account) = client.account(&sender.account_id()).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let mut hashes = Vec::new();
        for nonce in account.nonce..account.nonce + 4 {
            let tx = SignedTx::sign(
                &sender,
                &chain_id,
                nonce,
                1_000_000,
                TxBody::Transfer { to, amount: 1 },
            );
            if let Ok(hash) = client.submit_tx(&tx).await {
                hashes.push(hash);
            }
        }
        for hash in hashes {
            if let Ok(status) = client.wait_for_tx(&hash, Duration::from_secs(2)).await {
                if status.status == wire::TxState::Committed {
                    let height = status.height.unwrap_or_default();
                    committed.lock().expect("lock").push((hash, height));
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_killed_at_random_moments_loses_no_committed_transaction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("node");
    let init = agora()
        .args([
            "genesis",
            "init",
            "--accounts",
            "2",
            "--chain-id",
            "agora-crash",
            "--json",
            "--data-dir",
        ])
        .arg(&data_dir)
        .output()
        .expect("genesis init");
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let sender = agora_rpc::keyfile::load(&data_dir.join("keys/dev-0.key")).expect("dev key");
    let receiver = agora_rpc::keyfile::load(&data_dir.join("keys/dev-1.key")).expect("dev key");
    let chain_id = ChainId::new("agora-crash").expect("chain id");

    let port = free_port();
    let client = Client::new(&format!("http://127.0.0.1:{port}")).expect("client");
    let mut child = start_node(&data_dir, port);
    wait_healthy(&client).await;

    let committed = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let streamer = tokio::spawn(stream_transfers(
        client.clone(),
        sender,
        receiver.account_id(),
        chain_id,
        Arc::clone(&committed),
        Arc::clone(&stop),
    ));

    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for _ in 0..3 {
        tokio::time::sleep(next_delay(&mut seed)).await;
        child.kill().expect("SIGKILL node");
        child.wait().expect("reap node");
        child = start_node(&data_dir, port);
        wait_healthy(&client).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    streamer.await.expect("streamer");

    let committed = committed.lock().expect("lock").clone();
    assert!(!committed.is_empty(), "no transaction was committed");
    for (hash, height) in &committed {
        let status = client.tx_status(hash).await.expect("status");
        assert_eq!(status.status, wire::TxState::Committed, "{hash} lost");
        assert_eq!(status.height, Some(*height), "{hash} moved");
    }
    let head = client.head().await.expect("head");
    child.kill().expect("SIGKILL node");
    child.wait().expect("reap node");

    let genesis = agora_chain::genesis::GenesisFile::load(&data_dir.join("genesis.json"))
        .expect("genesis file")
        .to_genesis()
        .expect("genesis");
    let (height, root) =
        agora_chain::store::replay(&data_dir.join("chain.redb"), &genesis).expect("replay");
    assert!(height >= head.height);
    let store = agora_chain::store::Store::open(&data_dir.join("chain.redb")).expect("open");
    let stored_head = store.head().expect("head").expect("head exists");
    assert_eq!((height, root), (stored_head.height, stored_head.state_root));
}
