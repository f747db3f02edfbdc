//! A follower: a full node that is no validator follows a validator over RPC, executes the
//! same blocks to the same state roots, passes transactions on, serves queries with proofs,
//! and does not move for a followed node that forges certificates or blocks.

use std::{net::SocketAddr, path::Path, time::Duration};

use agora_chain::{genesis, Config};
use agora_rpc::{wire, Client};
use agora_types::{ChainId, Genesis, Keypair, SignedTx, TxBody};
use axum::{body::Bytes, extract::Path as UrlPath, routing::get, Router};
use tokio::{sync::oneshot, task::JoinHandle};

const FEE: u128 = 1_000_000;
const WAIT: Duration = Duration::from_secs(30);

fn chain_id() -> ChainId {
    ChainId::new("agora-follow").expect("chain id")
}

fn validator() -> Keypair {
    Keypair::from_seed(b"follow-validator")
}

fn alice() -> Keypair {
    Keypair::from_seed(b"follow-alice")
}

fn test_genesis() -> Genesis {
    genesis::dev(
        &chain_id(),
        1_767_225_600_000,
        validator().account_id(),
        &[alice().account_id()],
    )
}

struct Running {
    client: Client,
    url: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), agora_chain::Error>>,
}

impl Running {
    async fn start(dir: &Path, key: Keypair, follow: Option<String>) -> Running {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        let mut config = Config::new(dir.to_path_buf(), test_genesis(), key, addr);
        config.min_block_interval = Duration::from_millis(20);
        config.max_idle_interval = Duration::from_millis(200);
        config.follow = follow;
        let (shutdown, signal) = oneshot::channel::<()>();
        let task = tokio::spawn(agora_chain::run_with_listener(
            config,
            listener,
            async move {
                let _ = signal.await;
            },
        ));
        let url = format!("http://{addr}");
        Running {
            client: Client::new(&url).expect("client"),
            url,
            shutdown: Some(shutdown),
            task,
        }
    }

    async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let result = tokio::time::timeout(WAIT, &mut self.task)
            .await
            .expect("stops in time")
            .expect("task");
        result.expect("node ran cleanly");
    }
}

async fn height(client: &Client) -> u64 {
    client.head().await.map(|head| head.height).unwrap_or(0)
}

async fn wait_height(client: &Client, target: u64) {
    let start = std::time::Instant::now();
    while height(client).await < target {
        assert!(start.elapsed() < WAIT, "no height {target}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_executes_the_validators_blocks_and_passes_transactions_on() {
    let (vdir, fdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let validator = Running::start(vdir.path(), validator(), None).await;
    wait_height(&validator.client, 3).await;
    let follower = Running::start(
        fdir.path(),
        Keypair::from_seed(b"follow-node"),
        Some(validator.url.clone()),
    )
    .await;

    // Transactions sent to the follower reach the validator's blocks.
    let bob = Keypair::from_seed(b"follow-bob").account_id();
    let mut hashes = Vec::new();
    for nonce in 0..5 {
        let tx = SignedTx::sign(
            &alice(),
            &chain_id(),
            nonce,
            FEE,
            TxBody::Transfer { to: bob, amount: 7 },
        );
        hashes.push(follower.client.submit_tx(&tx).await.expect("forwarded"));
    }
    for hash in &hashes {
        let status = follower
            .client
            .wait_for_tx(hash, WAIT)
            .await
            .expect("committed on the follower");
        assert_eq!(status.status, wire::TxState::Committed);
    }
    // A transaction the validator refuses is refused through the follower, with its reason.
    let stale = SignedTx::sign(
        &alice(),
        &chain_id(),
        0,
        FEE,
        TxBody::Transfer { to: bob, amount: 7 },
    );
    let refused = follower.client.submit_tx(&stale).await.unwrap_err();
    assert!(refused.rpc().is_some(), "{refused}");

    let top = height(&validator.client).await;
    wait_height(&follower.client, top).await;
    for h in 1..=top {
        let ours = validator.client.block(Some(h)).await.unwrap().unwrap();
        let theirs = follower.client.block(Some(h)).await.unwrap().unwrap();
        assert_eq!(
            (ours.hash, ours.state_root),
            (theirs.hash, theirs.state_root),
            "height {h}"
        );
    }
    let a = validator.client.account(&bob).await.unwrap();
    let b = follower.client.account(&bob).await.unwrap();
    assert_eq!(a.balance, "35");
    assert_eq!(a.balance, b.balance);
    follower.stop().await;
    validator.stop().await;
}

/// A followed node that serves the true chain, corrupted by `corrupt`.
async fn lying_upstream(real: String, corrupt: fn(&str, Vec<u8>) -> Vec<u8>) -> String {
    let proxy = move |path: String| {
        let real = real.clone();
        async move {
            let bytes = reqwest::get(format!("{real}/{path}"))
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
                .to_vec();
            Bytes::from(corrupt(&path, bytes))
        }
    };
    let finality = {
        let proxy = proxy.clone();
        move |UrlPath(epoch): UrlPath<u64>| proxy(format!("sync/finality/{epoch}"))
    };
    let blocks =
        move |UrlPath((from, to)): UrlPath<(u64, u64)>| proxy(format!("sync/blocks/{from}/{to}"));
    let app = Router::new()
        .route("/sync/finality/{epoch}", get(finality))
        .route("/sync/blocks/{from}/{to}", get(blocks));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_does_not_move_for_forged_certificates_or_blocks() {
    let vdir = tempfile::tempdir().unwrap();
    let validator = Running::start(vdir.path(), validator(), None).await;
    wait_height(&validator.client, 5).await;
    // The last byte of a finality is in its certificate's signatures.
    let forged_certificate: fn(&str, Vec<u8>) -> Vec<u8> = |path, mut bytes| {
        if path.starts_with("sync/finality") {
            if let Some(last) = bytes.last_mut() {
                *last ^= 1;
            }
        }
        bytes
    };
    // A block's timestamp changed: its hash no longer chains to the certified block.
    let forged_blocks: fn(&str, Vec<u8>) -> Vec<u8> = |path, bytes| {
        if !path.starts_with("sync/blocks") {
            return bytes;
        }
        let mut blocks: Vec<agora_types::Block> =
            agora_types::encoding::decode_bounded(&bytes, usize::MAX).unwrap();
        if let Some(first) = blocks.first_mut() {
            first.header.timestamp_ms += 1;
        }
        agora_types::encode(&blocks)
    };
    // The proxy passing everything through: the follower follows (so the proxy works).
    let honest: fn(&str, Vec<u8>) -> Vec<u8> = |_, bytes| bytes;
    for (name, corrupt) in [
        ("nothing", honest),
        ("certificate", forged_certificate),
        ("blocks", forged_blocks),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let upstream = lying_upstream(validator.url.clone(), corrupt).await;
        let follower = Running::start(
            dir.path(),
            Keypair::from_seed(b"follow-node"),
            Some(upstream),
        )
        .await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(height(&validator.client).await > 5);
        let followed = height(&follower.client).await;
        if name == "nothing" {
            assert!(followed > 5, "did not follow an honest proxy: {followed}");
        } else {
            assert_eq!(followed, 0, "followed forged {name}");
        }
        follower.stop().await;
    }
    validator.stop().await;
}
