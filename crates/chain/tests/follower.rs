//! A follower: a full node that is no validator follows a validator over RPC, executes the
//! same blocks to the same state roots, passes transactions on, serves queries with proofs,
//! and does not move for a followed node that forges certificates or blocks.

use std::time::Duration;

use agora_rpc::{wire, Client};
use agora_types::{Keypair, SignedTx, TxBody};
use axum::{body::Bytes, extract::Path as UrlPath, routing::get, Router};

use super::node::{alice, chain_id, validator, TestNode, FEE};

const WAIT: Duration = Duration::from_secs(30);

async fn height(client: &Client) -> u64 {
    client.head().await.map(|head| head.height).unwrap_or(0)
}

/// A node following the node at `url`, with a key of its own.
async fn follower(dir: &std::path::Path, url: &str) -> TestNode {
    TestNode::start_with(
        dir,
        Keypair::from_seed(b"follow-node"),
        Some(url.to_owned()),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_executes_the_validators_blocks_and_passes_transactions_on() {
    let (vdir, fdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let validator = TestNode::start_with(vdir.path(), validator(), None).await;
    validator.wait_height(3).await;
    let follower = follower(fdir.path(), validator.client.url()).await;

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
    follower.wait_height(top).await;
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
    let validator = TestNode::start_with(vdir.path(), validator(), None).await;
    validator.wait_height(5).await;
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
        let upstream = lying_upstream(validator.client.url().to_owned(), corrupt).await;
        let follower = follower(dir.path(), &upstream).await;
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
