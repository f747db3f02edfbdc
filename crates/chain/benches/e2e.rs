//! End-to-end throughput and finality latency: transactions submitted over RPC until
//! they are finalized and executed, against the in-process apply rate.
//!
//! Run with `bench/chain_e2e.sh` (or `cargo bench -p agora-chain --bench e2e`).
//! `AGORA_BENCH_TXS` sets the number of transactions (default 4000),
//! `AGORA_BENCH_ACCOUNTS` the number of sending accounts (default 16),
//! `AGORA_BENCH_VALIDATORS` the number of validators on loopback (default 1; with more,
//! each runs in this process with its own p2p port and store, transactions go to them in
//! turn, and latency is measured to execution on the first).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use agora_chain::{genesis, Config};
use agora_rpc::Client;
use agora_types::{tx_root, Block, ChainId, Hash, Header, Keypair, SignedTx, TxBody};
use futures::StreamExt;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn transfers(
    keys: &[Keypair],
    chain: &ChainId,
    per_account: usize,
    fee: u128,
) -> Vec<Vec<SignedTx>> {
    let to = Keypair::from_seed(b"sink").account_id();
    keys.iter()
        .map(|key| {
            (0..per_account as u64)
                .map(|nonce| {
                    SignedTx::sign(key, chain, nonce, fee, TxBody::Transfer { to, amount: 1 })
                })
                .collect()
        })
        .collect()
}

/// Transactions per second of `apply_block` alone, on blocks of `block_txs`.
fn in_process_rate(genesis: &agora_types::Genesis, txs: &[Vec<SignedTx>], block_txs: usize) -> f64 {
    let mut storage = agora_ledger::MemStorage::new();
    let mut root = agora_ledger::init_genesis(&mut storage, genesis).expect("genesis");
    // Interleave accounts so each block holds consecutive nonces per account.
    let mut ordered = Vec::new();
    let longest = txs.iter().map(Vec::len).max().unwrap_or(0);
    for idx in 0..longest {
        for account in txs {
            if let Some(tx) = account.get(idx) {
                ordered.push(tx.clone());
            }
        }
    }
    let mut parent = genesis.hash();
    let mut height = 0;
    let proposer = Keypair::from_seed(b"validator").account_id();
    let start = Instant::now();
    for chunk in ordered.chunks(block_txs) {
        height += 1;
        let header = Header {
            height,
            parent,
            timestamp_ms: genesis.timestamp_ms + height,
            proposer,
            tx_root: tx_root(chunk),
            state_root: root,
        };
        let block = Block {
            header,
            txs: chunk.to_vec(),
        };
        let outcome = agora_ledger::apply_block(&mut storage, &block).expect("apply");
        root = outcome.state_root;
        parent = block.hash();
    }
    ordered.len() as f64 / start.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // RUST_LOG=agora::chain=debug shows each node's blocks as they are built and executed.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let n_txs = env_usize("AGORA_BENCH_TXS", 4_000);
    let n_accounts = env_usize("AGORA_BENCH_ACCOUNTS", 16).max(1);
    let n_validators = env_usize("AGORA_BENCH_VALIDATORS", 1).max(1);
    let per_account = n_txs.div_ceil(n_accounts);
    let chain = ChainId::new("agora-bench").expect("chain id");
    let validators: Vec<Keypair> = (0..n_validators)
        .map(|idx| match idx {
            0 => Keypair::from_seed(b"validator"),
            n => Keypair::from_seed(format!("validator-{n}").as_bytes()),
        })
        .collect();
    let keys: Vec<Keypair> = (0..n_accounts)
        .map(|idx| Keypair::from_seed(format!("bench-{idx}").as_bytes()))
        .collect();
    let accounts: Vec<_> = keys.iter().map(Keypair::account_id).collect();
    let validator_ids: Vec<_> = validators.iter().map(Keypair::account_id).collect();
    let genesis = genesis::dev_validators(&chain, 1_767_225_600_000, &validator_ids, &accounts);
    let fee = genesis.params.min_fee;
    let txs = transfers(&keys, &chain, per_account, fee);
    let total: usize = txs.iter().map(Vec::len).sum();

    let dir = tempfile::tempdir().expect("tempdir");
    let p2p: Vec<std::net::SocketAddr> = (0..n_validators)
        .map(|_| {
            let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            socket.local_addr().expect("addr")
        })
        .collect();
    let mut clients = Vec::new();
    let mut nodes = Vec::new();
    let mut shutdowns = Vec::new();
    for (idx, key) in validators.iter().enumerate() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut config = Config::new(
            dir.path().join(format!("node-{idx}")),
            genesis.clone(),
            key.clone(),
            addr,
        );
        config.mempool_max_txs = total + 1;
        if n_validators > 1 {
            config.p2p = Some(agora_chain::P2pConfig {
                listen: p2p[idx],
                peers: validator_ids
                    .iter()
                    .copied()
                    .zip(p2p.iter().copied())
                    .collect(),
            });
        }
        let (shutdown, signal) = tokio::sync::oneshot::channel::<()>();
        shutdowns.push(shutdown);
        nodes.push(tokio::spawn(agora_chain::run_with_listener(
            config,
            listener,
            async move {
                let _ = signal.await;
            },
        )));
        clients.push(Client::new(&format!("http://{addr}")).expect("client"));
    }
    for client in &clients {
        while !matches!(client.health().await, Ok(true)) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let client = clients[0].clone();
    // Steady state: every validator connected and executing blocks (the first views of a
    // network still dialling its peers can time out, which is start-up, not finality).
    for client in &clients {
        while client.head().await.map(|h| h.height).unwrap_or(0) < 3 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // Record when each transaction is seen executed, from the event stream.
    let committed: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let blocks: Arc<Mutex<Vec<(Instant, usize)>>> = Arc::default();
    let mut events = client.events().await.expect("events");
    let watcher = {
        let committed = Arc::clone(&committed);
        let blocks = Arc::clone(&blocks);
        tokio::spawn(async move {
            while let Some(Ok(block)) = events.next().await {
                let now = Instant::now();
                if !block.txs.is_empty() {
                    blocks.lock().expect("lock").push((now, block.txs.len()));
                }
                let mut committed = committed.lock().expect("lock");
                for tx in block.txs {
                    committed.insert(tx.hash, now);
                }
                if committed.len() >= total {
                    break;
                }
            }
        })
    };

    let submitted: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let start = Instant::now();
    let mut senders = Vec::new();
    for (idx, account_txs) in txs.clone().into_iter().enumerate() {
        let client = clients[idx % clients.len()].clone();
        let submitted = Arc::clone(&submitted);
        senders.push(tokio::spawn(async move {
            for tx in account_txs {
                let at = Instant::now();
                let hash: Hash = client.submit_tx(&tx).await.expect("submit");
                submitted.lock().expect("lock").insert(hash.to_hex(), at);
            }
        }));
    }
    for sender in senders {
        sender.await.expect("sender");
    }
    let submit_done = start.elapsed();
    tokio::time::timeout(Duration::from_secs(300), watcher)
        .await
        .expect("all transactions executed in time")
        .expect("watcher");
    let elapsed = start.elapsed();

    let submitted = submitted.lock().expect("lock").clone();
    let committed = committed.lock().expect("lock").clone();
    let mut latencies: Vec<Duration> = submitted
        .iter()
        .filter_map(|(hash, at)| committed.get(hash).map(|done| done.duration_since(*at)))
        .collect();
    latencies.sort();
    let e2e_rate = total as f64 / elapsed.as_secs_f64();
    let block_txs = usize::try_from(genesis.params.max_block_txs)
        .unwrap_or(1_000)
        .min(total.max(1));
    let apply_rate = in_process_rate(&genesis, &txs, block_txs);

    println!(
        "agora-chain e2e bench: {total} transfers from {n_accounts} accounts, {n_validators} validator(s) on loopback"
    );
    println!(
        "  submitted in         {:>8.2} s",
        submit_done.as_secs_f64()
    );
    println!("  all executed in      {:>8.2} s", elapsed.as_secs_f64());
    println!("  finalized            {e2e_rate:>8.0} tx/s");
    println!(
        "  finality p50         {:>8.1} ms (submitted to executed)",
        percentile(&latencies, 0.5).as_secs_f64() * 1e3
    );
    println!(
        "  finality p99         {:>8.1} ms",
        percentile(&latencies, 0.99).as_secs_f64() * 1e3
    );
    let blocks = blocks.lock().expect("lock").clone();
    if let (Some(first), Some(last)) = (blocks.first(), blocks.last()) {
        let span = last.0.duration_since(first.0).as_secs_f64();
        println!(
            "  blocks with txs      {:>8} (mean {:.0} txs, one every {:.0} ms)",
            blocks.len(),
            total as f64 / blocks.len() as f64,
            span * 1e3 / (blocks.len().max(2) - 1) as f64
        );
    }
    println!("  in-process apply     {apply_rate:>8.0} tx/s (blocks of {block_txs})");
    println!("  ratio finalized / apply {:>5.3}", e2e_rate / apply_rate);

    for shutdown in shutdowns {
        let _ = shutdown.send(());
    }
    for node in nodes {
        let _ = node.await;
    }
}
