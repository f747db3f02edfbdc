//! A single node: blocks, transfers, rejections, restarts, events, proofs, and the channel and
//! receipt-commitment queries.

use std::{net::SocketAddr, path::Path, time::Duration};

use agora_chain::{genesis, Config};
use agora_rpc::{code, wire, Client};
use agora_types::{
    AccountId, Amount, ChainId, Genesis, Hash, Keypair, ModelOffer, ProviderInfo, ReceiptTotals,
    SignedTx, TxBody, Voucher, UNITS_PER_AGR,
};
use futures::StreamExt;
use tokio::{sync::oneshot, task::JoinHandle};

pub(crate) const FEE: u128 = 1_000_000;
const WAIT: Duration = Duration::from_secs(20);

/// A node running in this process on a loopback port.
pub(crate) struct TestNode {
    pub(crate) client: Client,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), agora_chain::Error>>,
}

pub(crate) fn chain_id() -> ChainId {
    ChainId::new("agora-test").expect("valid chain id")
}

pub(crate) fn validator() -> Keypair {
    Keypair::from_seed(b"validator")
}

pub(crate) fn alice() -> Keypair {
    Keypair::from_seed(b"alice")
}

fn bob() -> Keypair {
    Keypair::from_seed(b"bob")
}

fn test_genesis() -> Genesis {
    genesis::dev(
        &chain_id(),
        1_767_225_600_000,
        validator().account_id(),
        &[alice().account_id(), bob().account_id()],
    )
}

impl TestNode {
    async fn start(dir: &Path) -> TestNode {
        Self::start_with(dir, validator(), None).await
    }

    /// A node with `key`, following the node at `follow` when given.
    pub(crate) async fn start_with(dir: &Path, key: Keypair, follow: Option<String>) -> TestNode {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind port 0");
        let addr: SocketAddr = listener.local_addr().expect("local addr");
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
        let client = Client::new(&format!("http://{addr}")).expect("client");
        TestNode {
            client,
            shutdown: Some(shutdown),
            task,
        }
    }

    pub(crate) async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let result = tokio::time::timeout(WAIT, &mut self.task)
            .await
            .expect("node stops in time")
            .expect("node task joins");
        result.expect("node stops cleanly");
    }

    pub(crate) async fn wait_height(&self, height: u64) -> wire::Head {
        let start = std::time::Instant::now();
        loop {
            let head = self.client.head().await.expect("head");
            if head.height >= height {
                return head;
            }
            assert!(
                start.elapsed() < WAIT,
                "height {height} not reached, at {}",
                head.height
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn transfer(from: &Keypair, nonce: u64, amount: u128) -> SignedTx {
    SignedTx::sign(
        from,
        &chain_id(),
        nonce,
        FEE,
        TxBody::Transfer {
            to: bob().account_id(),
            amount,
        },
    )
}

/// Signs `body` at `keypair`'s next nonce with [`FEE`], submits it and waits for it.
async fn run(client: &Client, keypair: &Keypair, body: TxBody) -> wire::TxStatus {
    client
        .sign_and_submit(keypair, body, Some(FEE), WAIT)
        .await
        .expect("committed")
}

async fn balance(client: &Client, account: &AccountId) -> Amount {
    let account = client.account(account).await.expect("account");
    account.balance.parse().expect("amount")
}

async fn invalid_params(client: &Client, method: &str, params: serde_json::Value) {
    let err = client
        .call::<_, serde_json::Value>(method, params.clone())
        .await
        .expect_err("bad params are refused");
    assert_eq!(
        err.rpc().map(|err| err.code),
        Some(code::INVALID_PARAMS),
        "{method} {params}: {err}"
    );
}

async fn submit_rejected(client: &Client, bytes: &[u8]) -> wire::RpcError {
    let err = client
        .submit_tx_bytes(bytes)
        .await
        .expect_err("transaction must be rejected");
    err.rpc().cloned().expect("a JSON-RPC error")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_node_finalizes_blocks_and_applies_transfers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = TestNode::start(dir.path()).await;
    node.wait_height(2).await;

    let before = node
        .client
        .account(&bob().account_id())
        .await
        .expect("account");
    let mut hashes = Vec::new();
    for nonce in 0..5 {
        let tx = transfer(&alice(), nonce, UNITS_PER_AGR);
        hashes.push(node.client.submit_tx(&tx).await.expect("submit"));
    }
    for hash in &hashes {
        let status = node
            .client
            .wait_for_tx(hash, WAIT)
            .await
            .expect("committed");
        assert_eq!(status.success, Some(true), "{status:?}");
    }
    let after = node
        .client
        .account(&bob().account_id())
        .await
        .expect("account");
    let gained = after.balance.parse::<u128>().expect("amount")
        - before.balance.parse::<u128>().expect("amount");
    assert_eq!(gained, 5 * UNITS_PER_AGR);
    let alice_account = node
        .client
        .account(&alice().account_id())
        .await
        .expect("account");
    assert_eq!(alice_account.nonce, 5);

    let status = node.client.tx_status(&hashes[0]).await.expect("status");
    let block = node
        .client
        .block(status.height)
        .await
        .expect("block")
        .expect("block exists");
    assert!(block.txs.iter().any(|tx| tx.hash == hashes[0].to_hex()));
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_transactions_are_rejected_with_a_reason_and_the_node_keeps_going() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = TestNode::start(dir.path()).await;
    node.wait_height(1).await;

    let garbage = submit_rejected(&node.client, &[0xde, 0xad, 0xbe, 0xef, 1, 2, 3]).await;
    assert_eq!(garbage.code, code::TX_REJECTED);
    assert!(
        garbage.message.contains("invalid transaction"),
        "{garbage:?}"
    );

    let mut forged = transfer(&alice(), 0, 1);
    forged.signature.0[0] ^= 1;
    let bad_signature = submit_rejected(&node.client, &forged.to_bytes()).await;
    assert!(
        bad_signature.message.contains("bad signature"),
        "{bad_signature:?}"
    );

    let other_chain = SignedTx::sign(
        &alice(),
        &ChainId::new("other-chain").expect("chain id"),
        0,
        FEE,
        TxBody::Transfer {
            to: bob().account_id(),
            amount: 1,
        },
    );
    let wrong_chain = submit_rejected(&node.client, &other_chain.to_bytes()).await;
    assert!(
        wrong_chain.message.contains("bad signature"),
        "{wrong_chain:?}"
    );

    let first = node
        .client
        .submit_tx(&transfer(&alice(), 0, 1))
        .await
        .expect("submit");
    node.client
        .wait_for_tx(&first, WAIT)
        .await
        .expect("committed");
    let replay = submit_rejected(&node.client, &transfer(&alice(), 0, 2).to_bytes()).await;
    assert!(replay.message.contains("nonce"), "{replay:?}");
    let far = submit_rejected(&node.client, &transfer(&alice(), 1_000_000, 2).to_bytes()).await;
    assert!(far.message.contains("nonce"), "{far:?}");

    let oversized = vec![0u8; agora_types::MAX_TX_BYTES + 1];
    let too_large = submit_rejected(&node.client, &oversized).await;
    assert!(too_large.message.contains("exceeds"), "{too_large:?}");

    let broke = Keypair::from_seed(b"nobody");
    let unfunded = SignedTx::sign(
        &broke,
        &chain_id(),
        0,
        FEE,
        TxBody::Transfer {
            to: bob().account_id(),
            amount: 1,
        },
    );
    let cannot_pay = submit_rejected(&node.client, &unfunded.to_bytes()).await;
    assert_eq!(cannot_pay.code, code::TX_REJECTED, "{cannot_pay:?}");

    // The node still makes progress and accepts good transactions.
    let good = node
        .client
        .submit_tx(&transfer(&alice(), 1, 1))
        .await
        .expect("submit");
    node.client
        .wait_for_tx(&good, WAIT)
        .await
        .expect("committed");
    assert!(node.client.health().await.expect("health"));
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_resumes_at_the_same_height_and_state_root() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = TestNode::start(dir.path()).await;
    let hash = node
        .client
        .submit_tx(&transfer(&alice(), 0, 7))
        .await
        .expect("submit");
    node.client
        .wait_for_tx(&hash, WAIT)
        .await
        .expect("committed");
    let before = node.client.head().await.expect("head");
    node.stop().await;

    let node = TestNode::start(dir.path()).await;
    let resumed = node.client.head().await.expect("head");
    assert!(resumed.height >= before.height, "{resumed:?} vs {before:?}");
    let block = node
        .client
        .block(Some(before.height))
        .await
        .expect("block")
        .expect("block kept");
    assert_eq!(block.hash, before.hash);
    assert_eq!(block.result_root, before.state_root);
    let status = node.client.tx_status(&hash).await.expect("status");
    assert_eq!(status.status, wire::TxState::Committed);

    // And it goes on finalizing.
    node.wait_height(resumed.height + 2).await;
    let next = node
        .client
        .submit_tx(&transfer(&alice(), 1, 7))
        .await
        .expect("submit");
    node.client
        .wait_for_tx(&next, WAIT)
        .await
        .expect("committed");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_executed_blocks_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = TestNode::start(dir.path()).await;
    let events = node.client.events().await.expect("events");
    let blocks: Vec<wire::Block> = tokio::time::timeout(WAIT, events.take(3).collect::<Vec<_>>())
        .await
        .expect("three blocks in time")
        .into_iter()
        .map(|block| block.expect("block event"))
        .collect();
    for pair in blocks.windows(2) {
        assert_eq!(pair[1].height, pair[0].height + 1);
        assert_eq!(pair[1].parent, pair[0].hash);
        assert_eq!(pair[1].state_root, pair[0].result_root);
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_health_are_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = TestNode::start(dir.path()).await;
    node.wait_height(1).await;
    let text = reqwest::get(format!("{}/metrics", node.client.url()))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for name in [
        "agora_chain_height",
        "agora_chain_mempool_size",
        "agora_chain_block_time_seconds",
        "agora_chain_tx_per_second",
    ] {
        assert!(text.contains(name), "{name} missing from {text}");
    }
    let models = node.client.models().await.expect("models");
    assert_eq!(models.len(), 1);
    assert_eq!(models[0].cid, genesis::DEFAULT_MODEL_CID);
    assert_eq!(models[0].status, "active");
    let params = node.client.params().await.expect("params");
    assert!(params.contains_key("min_fee"));
    let supply = node.client.supply().await.expect("supply");
    assert_eq!(supply.total, supply.genesis, "nothing minted or burned yet");
    let validators = node.client.validators().await.expect("validators");
    assert_eq!(validators.len(), 1);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_proofs_verify_against_the_next_header_state_root() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = TestNode::start(dir.path()).await;
    let hash = node
        .client
        .submit_tx(&transfer(&alice(), 0, 3))
        .await
        .expect("submit");
    node.client
        .wait_for_tx(&hash, WAIT)
        .await
        .expect("committed");

    let proof = node
        .client
        .proof(wire::ProofKind::Account, &bob().account_id())
        .await
        .expect("proof");
    let next = node.wait_height(proof.height + 1).await;
    assert!(next.height > proof.height);
    let header = node
        .client
        .block(Some(proof.height + 1))
        .await
        .expect("block")
        .expect("next block exists");
    assert_eq!(header.state_root, proof.root);
    let (root, key, value, merkle) = proof.to_core().expect("well-formed proof");
    assert!(agora_ledger::proof::verify(&root, &key, &value, &merkle));
    assert!(proof.verify());
    assert_eq!(key, agora_ledger::state::keys::account(&bob().account_id()));
    // A proof does not verify for another value.
    let mut forged = value.clone();
    forged[0] ^= 1;
    assert!(!agora_ledger::proof::verify(&root, &key, &forged, &merkle));

    let missing = node
        .client
        .proof(wire::ProofKind::Provider, &bob().account_id())
        .await
        .expect_err("bob is no provider");
    assert_eq!(missing.rpc().map(|err| err.code), Some(code::NOT_FOUND));
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_blocks_replay_to_the_same_state_root() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = TestNode::start(dir.path()).await;
    for nonce in 0..3 {
        let hash = node
            .client
            .submit_tx(&transfer(&alice(), nonce, 11))
            .await
            .expect("submit");
        node.client
            .wait_for_tx(&hash, WAIT)
            .await
            .expect("committed");
    }
    node.stop().await;
    let (height, root) =
        agora_chain::store::replay(&dir.path().join("chain.redb"), &test_genesis())
            .expect("replay");
    let store = agora_chain::store::Store::open(&dir.path().join("chain.redb")).expect("open");
    let head = store.head().expect("head").expect("head exists");
    assert_eq!(height, head.height);
    assert_eq!(root, head.state_root);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_are_queried_by_id_and_party_and_show_redeemed_claims() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = TestNode::start(dir.path()).await;
    let client = &node.client;
    let (payer, payee) = (alice().account_id(), bob().account_id());
    let deposit = 100 * UNITS_PER_AGR;
    let nonce = client.account(&payer).await.expect("account").nonce;
    let open = TxBody::OpenChannel {
        payee,
        deposit,
        expiry_height: 1_000,
    };
    let status = run(client, &alice(), open).await;
    assert_eq!(status.success, Some(true), "{status:?}");
    let id = agora_ledger::channel_id(&payer, nonce);

    let channel = client
        .channel(&id)
        .await
        .expect("channel")
        .expect("channel is open");
    assert_eq!(
        channel,
        wire::Channel {
            id: id.to_hex(),
            payer: payer.to_string(),
            payee: payee.to_string(),
            deposit: deposit.to_string(),
            redeemed: "0".to_owned(),
            expiry_height: 1_000,
        }
    );
    let all = client.channels(None, None).await.expect("channels");
    assert_eq!(all, vec![channel.clone()]);
    let by_payer = client.channels(Some(&payer), None).await.expect("channels");
    assert_eq!(by_payer, vec![channel.clone()]);
    let by_payee = client.channels(None, Some(&payee)).await.expect("channels");
    assert_eq!(by_payee, vec![channel.clone()]);
    let both = client
        .channels(Some(&payer), Some(&payee))
        .await
        .expect("channels");
    assert_eq!(both, vec![channel.clone()]);
    let reversed = client
        .channels(Some(&payee), Some(&payer))
        .await
        .expect("channels");
    assert!(reversed.is_empty(), "{reversed:?}");
    let unknown = client
        .channel(&Hash::of(b"nothing"))
        .await
        .expect("channel");
    assert_eq!(unknown, None);

    // The voucher allows 50; bob claims 20 of it, then tries 60.
    let voucher = Voucher {
        chain_id: chain_id(),
        channel_id: id,
        payer,
        payee,
        cumulative: 50,
    }
    .sign(&alice());
    let before = balance(client, &payee).await;
    let claim = TxBody::RedeemChannel {
        voucher: voucher.clone(),
        amount: 20,
    };
    let status = run(client, &bob(), claim).await;
    assert_eq!(status.success, Some(true), "{status:?}");
    assert_eq!(balance(client, &payee).await, before + 20 - FEE);
    let redeemed = client.channel(&id).await.expect("channel").expect("open");
    assert_eq!(redeemed.redeemed, "20");
    assert_eq!(redeemed.deposit, deposit.to_string());

    let greedy = TxBody::RedeemChannel {
        voucher,
        amount: 60,
    };
    let status = run(client, &bob(), greedy).await;
    assert_eq!(status.success, Some(false), "{status:?}");
    let error = status.error.unwrap_or_default();
    assert!(error.contains("exceeds the voucher"), "{error}");
    let unchanged = client.channel(&id).await.expect("channel").expect("open");
    assert_eq!(unchanged.redeemed, "20");

    invalid_params(client, "channel", serde_json::json!({"id": "zz"})).await;
    invalid_params(client, "channel", serde_json::json!({})).await;
    invalid_params(client, "channels", serde_json::json!({"payer": "nobody"})).await;
    invalid_params(client, "channels", serde_json::json!({"payee": 7})).await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipt_commitments_are_read_back_per_provider_and_epoch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = TestNode::start(dir.path()).await;
    let client = &node.client;
    let provider = bob().account_id();
    let params = client.params().await.expect("params");
    let min_stake: Amount = params["min_stake"].parse().expect("amount");
    let status = run(client, &bob(), TxBody::Bond { amount: min_stake }).await;
    assert_eq!(status.success, Some(true), "{status:?}");
    let info = ProviderInfo {
        endpoint: "http://127.0.0.1:8080".try_into().expect("endpoint"),
        models: vec![ModelOffer {
            cid: agora_chain::genesis::DEFAULT_MODEL_CID
                .parse()
                .expect("cid"),
            price_in: 10,
            price_out: 20,
        }]
        .try_into()
        .expect("offers"),
        region: "local".try_into().expect("region"),
        hardware: "cpu".try_into().expect("hardware"),
    };
    let status = run(client, &bob(), TxBody::RegisterProvider(info)).await;
    assert_eq!(status.success, Some(true), "{status:?}");

    let root = Hash::of(b"receipts");
    let totals = ReceiptTotals {
        requests: 3,
        tokens_in: 120,
        tokens_out: 45,
        amount: 12_345,
    };
    let commit = TxBody::CommitReceipts {
        epoch: 0,
        root,
        totals,
        by_model: vec![agora_types::ModelTotals {
            model: agora_types::Cid::of(b"model"),
            totals,
        }]
        .try_into()
        .unwrap(),
    };
    let status = run(client, &bob(), commit).await;
    assert_eq!(status.success, Some(true), "{status:?}");

    let commitment = client
        .receipt_commitment(&provider, 0)
        .await
        .expect("receipt commitment")
        .expect("committed");
    assert_eq!(
        commitment,
        wire::ReceiptCommitment {
            provider: provider.to_string(),
            epoch: 0,
            root: root.to_hex(),
            requests: 3,
            tokens_in: 120,
            tokens_out: 45,
            amount: "12345".to_owned(),
            height: status.height.expect("height"),
        }
    );
    let later = client
        .receipt_commitment(&provider, 1)
        .await
        .expect("receipt commitment");
    assert_eq!(later, None);
    let other = client
        .receipt_commitment(&alice().account_id(), 0)
        .await
        .expect("receipt commitment");
    assert_eq!(other, None);

    let address = provider.to_string();
    invalid_params(
        client,
        "receipt_commitment",
        serde_json::json!({"provider": "nobody", "epoch": 0}),
    )
    .await;
    invalid_params(
        client,
        "receipt_commitment",
        serde_json::json!({ "provider": address }),
    )
    .await;
    invalid_params(
        client,
        "receipt_commitment",
        serde_json::json!({"provider": address, "epoch": -1}),
    )
    .await;
    node.stop().await;
}
