//! An async client for the node's RPC.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use agora_types::{AccountId, Cid, Hash, SignedTx};
use futures::{stream::BoxStream, StreamExt};
use serde::{de::DeserializeOwned, Serialize};

use crate::{method, wire};

/// Why an RPC call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The node URL is not a valid URL.
    #[error("invalid node url {0}")]
    Url(String),
    /// The request did not complete (connection refused, timeout, bad status).
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    /// The node answered with a JSON-RPC error.
    #[error("rpc error {}: {}", .0.code, .0.message)]
    Rpc(wire::RpcError),
    /// The node's answer did not have the expected shape.
    #[error("unexpected response: {0}")]
    Decode(String),
    /// A transaction was not committed in time.
    #[error("transaction {0} not committed within {1:?}")]
    Timeout(String, Duration),
    /// A transaction was committed with an error: it changed nothing but its fee.
    #[error("transaction failed: {0}")]
    Failed(String),
}

impl Error {
    /// The JSON-RPC error, when the node rejected the call.
    pub fn rpc(&self) -> Option<&wire::RpcError> {
        match self {
            Error::Rpc(err) => Some(err),
            _ => None,
        }
    }
}

/// A client for a node, or for several nodes of one chain with failover.
///
/// Calls go to one node until it cannot be reached (connection refused, timeout, a
/// 5xx answer); then the client moves to the next and retries there, so losing a
/// node loses no service. Clones share the node in use.
#[derive(Debug, Clone)]
pub struct Client {
    bases: Arc<Vec<String>>,
    current: Arc<AtomicUsize>,
    http: reqwest::Client,
}

impl Client {
    /// A client for the node at `url` (e.g. `http://127.0.0.1:26657`), or for the
    /// nodes of a comma-separated list of URLs, tried in order.
    pub fn new(url: &str) -> Result<Self, Error> {
        let mut bases = Vec::new();
        for one in url.split(',').map(str::trim).filter(|u| !u.is_empty()) {
            let base = one.trim_end_matches('/').to_owned();
            if !(base.starts_with("http://") || base.starts_with("https://")) {
                return Err(Error::Url(one.to_owned()));
            }
            bases.push(base);
        }
        if bases.is_empty() {
            return Err(Error::Url(url.to_owned()));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Client {
            bases: Arc::new(bases),
            current: Arc::new(AtomicUsize::new(0)),
            http,
        })
    }

    /// The base URL of the node in use.
    pub fn url(&self) -> &str {
        &self.bases[self.current.load(Ordering::Relaxed) % self.bases.len()]
    }

    /// Every node this client may use.
    pub fn urls(&self) -> &[String] {
        &self.bases
    }

    /// Sends `request(base)` to the node in use, moving on to the next node while one
    /// cannot be reached.
    async fn send(
        &self,
        request: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, Error> {
        let start = self.current.load(Ordering::Relaxed);
        let mut last = None;
        for offset in 0..self.bases.len() {
            let index = (start + offset) % self.bases.len();
            match request(&self.bases[index]).send().await {
                Ok(response) if !response.status().is_server_error() => {
                    if offset > 0 {
                        self.current.store(index, Ordering::Relaxed);
                        tracing::warn!(target: "agora::rpc", node = %self.bases[index], "failed over to another node");
                    }
                    return Ok(response);
                }
                Ok(response) => last = response.error_for_status().err(),
                Err(err) => last = Some(err),
            }
        }
        Err(last.map_or_else(|| Error::Decode("no node answered".into()), Error::Http))
    }

    /// Calls `method` with `params` and decodes the result.
    pub async fn call<P: Serialize, R: DeserializeOwned>(
        &self,
        method: &str,
        params: P,
    ) -> Result<R, Error> {
        let params = serde_json::to_value(params).map_err(|err| Error::Decode(err.to_string()))?;
        let request = wire::Request {
            jsonrpc: "2.0".to_owned(),
            id: serde_json::Value::from(1),
            method: method.to_owned(),
            params,
        };
        let response: wire::Response = self
            .send(|base| self.http.post(format!("{base}/")).json(&request))
            .await?
            .json()
            .await?;
        if let Some(error) = response.error {
            return Err(Error::Rpc(error));
        }
        let result = response.result.unwrap_or(serde_json::Value::Null);
        serde_json::from_value(result).map_err(|err| Error::Decode(err.to_string()))
    }

    /// Submits a signed transaction; returns its hash.
    pub async fn submit_tx(&self, tx: &SignedTx) -> Result<Hash, Error> {
        self.submit_tx_bytes(&tx.to_bytes()).await
    }

    /// Submits raw transaction bytes (borsh `SignedTx`); returns its hash.
    pub async fn submit_tx_bytes(&self, bytes: &[u8]) -> Result<Hash, Error> {
        let params = wire::SubmitTxParams {
            tx: hex::encode(bytes),
        };
        let result: wire::SubmitTxResult = self.call(method::SUBMIT_TX, params).await?;
        Hash::from_hex(&result.hash).ok_or_else(|| Error::Decode(result.hash))
    }

    /// Signs `body` with `keypair` at the account's next nonce, submits it and
    /// waits until it is committed.
    ///
    /// The chain id comes from the node's head; `fee` defaults to the node's `min_fee`.
    pub async fn sign_and_submit(
        &self,
        keypair: &agora_types::Keypair,
        body: agora_types::TxBody,
        fee: Option<agora_types::Amount>,
        timeout: Duration,
    ) -> Result<wire::TxStatus, Error> {
        let head = self.head().await?;
        let chain_id = agora_types::ChainId::new(&head.chain_id)
            .map_err(|err| Error::Decode(err.to_string()))?;
        let account = self.account(&keypair.account_id()).await?;
        let fee = match fee {
            Some(fee) => fee,
            None => {
                let params = self.params().await?;
                let min_fee = params.get("min_fee").cloned().unwrap_or_default();
                min_fee
                    .parse()
                    .map_err(|_| Error::Decode(format!("min_fee {min_fee}")))?
            }
        };
        let tx = SignedTx::sign(keypair, &chain_id, account.nonce, fee, body);
        let hash = self.submit_tx(&tx).await?;
        self.wait_for_tx(&hash, timeout).await
    }

    /// [`Client::sign_and_submit`] at the minimum fee, where a transaction committed with an
    /// error is [`Error::Failed`].
    pub async fn execute(
        &self,
        keypair: &agora_types::Keypair,
        body: agora_types::TxBody,
        timeout: Duration,
    ) -> Result<wire::TxStatus, Error> {
        let status = self.sign_and_submit(keypair, body, None, timeout).await?;
        match status.success {
            Some(false) => Err(Error::Failed(
                status.error.unwrap_or_else(|| "no reason given".into()),
            )),
            _ => Ok(status),
        }
    }

    /// A transaction's status.
    pub async fn tx_status(&self, hash: &Hash) -> Result<wire::TxStatus, Error> {
        let params = wire::HashParams {
            hash: hash.to_hex(),
        };
        self.call(method::TX_STATUS, params).await
    }

    /// Polls until the transaction is committed or `timeout` passes.
    pub async fn wait_for_tx(
        &self,
        hash: &Hash,
        timeout: Duration,
    ) -> Result<wire::TxStatus, Error> {
        let start = std::time::Instant::now();
        loop {
            let status = self.tx_status(hash).await?;
            if status.status == wire::TxState::Committed {
                return Ok(status);
            }
            if start.elapsed() >= timeout {
                return Err(Error::Timeout(hash.to_hex(), timeout));
            }
            tokio_sleep(Duration::from_millis(50)).await;
        }
    }

    /// An account (zero balance and nonce when it has never been used).
    pub async fn account(&self, address: &AccountId) -> Result<wire::Account, Error> {
        let params = wire::AccountParams {
            address: address.to_string(),
        };
        self.call(method::ACCOUNT, params).await
    }

    /// A provider, if registered.
    pub async fn provider(&self, operator: &AccountId) -> Result<Option<wire::Provider>, Error> {
        let params = wire::AccountParams {
            address: operator.to_string(),
        };
        self.call(method::PROVIDER, params).await
    }

    /// All registered providers.
    pub async fn providers(&self) -> Result<Vec<wire::Provider>, Error> {
        self.call(method::PROVIDERS, serde_json::Value::Null).await
    }

    /// A model, if governance knows it.
    pub async fn model(&self, cid: &Cid) -> Result<Option<wire::Model>, Error> {
        let params = wire::CidParams {
            cid: cid.to_string(),
        };
        self.call(method::MODEL, params).await
    }

    /// All models governance knows.
    pub async fn models(&self) -> Result<Vec<wire::Model>, Error> {
        self.call(method::MODELS, serde_json::Value::Null).await
    }

    /// A governance proposal, if it exists.
    pub async fn proposal(&self, id: u64) -> Result<Option<wire::Proposal>, Error> {
        self.call(method::PROPOSAL, wire::ProposalParams { id })
            .await
    }

    /// All governance proposals.
    pub async fn proposals(&self) -> Result<Vec<wire::Proposal>, Error> {
        self.call(method::PROPOSALS, serde_json::Value::Null).await
    }

    /// A payment channel, if open.
    pub async fn channel(&self, id: &Hash) -> Result<Option<wire::Channel>, Error> {
        let params = wire::ChannelParams { id: id.to_hex() };
        self.call(method::CHANNEL, params).await
    }

    /// Open payment channels, by id; only those from `payer` and/or to `payee` when given.
    pub async fn channels(
        &self,
        payer: Option<&AccountId>,
        payee: Option<&AccountId>,
    ) -> Result<Vec<wire::Channel>, Error> {
        let params = wire::ChannelsParams {
            payer: payer.map(AccountId::to_string),
            payee: payee.map(AccountId::to_string),
        };
        self.call(method::CHANNELS, params).await
    }

    /// A provider's receipt commitment for `epoch`, if it committed one.
    pub async fn receipt_commitment(
        &self,
        provider: &AccountId,
        epoch: u64,
    ) -> Result<Option<wire::ReceiptCommitment>, Error> {
        let params = wire::ReceiptCommitmentParams {
            provider: provider.to_string(),
            epoch,
        };
        self.call(method::RECEIPT_COMMITMENT, params).await
    }

    /// The block at `height`, or the latest when `None`.
    pub async fn block(&self, height: Option<u64>) -> Result<Option<wire::Block>, Error> {
        let params = wire::BlockParams { height, hash: None };
        self.call(method::BLOCK, params).await
    }

    /// The chain head.
    pub async fn head(&self) -> Result<wire::Head, Error> {
        self.call(method::HEAD, serde_json::Value::Null).await
    }

    /// Ledger parameters.
    pub async fn params(&self) -> Result<wire::Params, Error> {
        self.call(method::PARAMS, serde_json::Value::Null).await
    }

    /// Supply counters.
    pub async fn supply(&self) -> Result<wire::Supply, Error> {
        self.call(method::SUPPLY, serde_json::Value::Null).await
    }

    /// The validator set with each validator's bonded stake.
    pub async fn validators(&self) -> Result<Vec<wire::Validator>, Error> {
        self.call(method::VALIDATORS, serde_json::Value::Null).await
    }

    /// An inclusion proof of an account or provider entry.
    pub async fn proof(
        &self,
        kind: wire::ProofKind,
        address: &AccountId,
    ) -> Result<wire::Proof, Error> {
        let params = wire::ProofParams {
            kind,
            address: address.to_string(),
        };
        self.call(method::PROOF, params).await
    }

    /// Every registered verifier.
    pub async fn verifiers(&self) -> Result<Vec<wire::Verifier>, Error> {
        self.call(method::VERIFIERS, serde_json::Value::Null).await
    }

    /// One model's demand and quality over the last `epochs` epochs (default 10).
    pub async fn model_stats(
        &self,
        cid: &Cid,
        epochs: Option<u64>,
    ) -> Result<Option<wire::ModelStats>, Error> {
        self.call(
            method::MODEL_STATS,
            wire::ModelStatsParams {
                cid: cid.to_string(),
                epochs,
            },
        )
        .await
    }

    /// Where a blob may be fetched from: this node (every node serves `/blobs/{cid}`) and the
    /// registered providers (those offering `model` when given, other than `except`). The
    /// fetcher verifies every byte, so any endpoint is worth asking.
    pub async fn blob_peers(
        &self,
        model: Option<&Cid>,
        except: Option<&AccountId>,
    ) -> Result<Vec<String>, Error> {
        let model = model.map(Cid::to_string);
        let except = except.map(AccountId::to_string);
        let mut peers = self.urls().to_vec();
        peers.extend(
            self.providers()
                .await?
                .into_iter()
                .filter(|p| Some(&p.operator) != except.as_ref())
                .filter(|p| {
                    model
                        .as_ref()
                        .is_none_or(|cid| p.models.iter().any(|o| &o.cid == cid))
                })
                .map(|p| p.endpoint),
        );
        Ok(peers)
    }

    /// The CID of the safety policy governance adopted, if any.
    pub async fn safety_policy(&self) -> Result<Option<Cid>, Error> {
        let cid: Option<String> = self
            .call(method::SAFETY_POLICY, serde_json::Value::Null)
            .await?;
        cid.map(|text| {
            text.parse()
                .map_err(|err| Error::Decode(format!("safety policy CID {text}: {err}")))
        })
        .transpose()
    }

    /// A dispute by id (the challenged receipt's id), if one was opened.
    pub async fn dispute(&self, id: &Hash) -> Result<Option<wire::Dispute>, Error> {
        let params = wire::DisputeParams { id: id.to_hex() };
        self.call(method::DISPUTE, params).await
    }

    /// Disputes, by id: only open ones when `open_only`, only against `provider` when given.
    pub async fn disputes(
        &self,
        open_only: bool,
        provider: Option<&AccountId>,
    ) -> Result<Vec<wire::Dispute>, Error> {
        let params = wire::DisputesParams {
            open_only,
            provider: provider.map(AccountId::to_string),
        };
        self.call(method::DISPUTES, params).await
    }

    /// How `epoch`'s emission was split, once settled.
    pub async fn epoch_rewards(&self, epoch: u64) -> Result<Option<wire::EpochRewards>, Error> {
        self.call(method::EPOCH_REWARDS, wire::EpochParams { epoch })
            .await
    }

    /// Whether `GET /health` answers 200.
    pub async fn health(&self) -> Result<bool, Error> {
        let response = self
            .send(|base| self.http.get(format!("{base}/health")))
            .await?;
        Ok(response.status().is_success())
    }

    /// A node's executed head and full state (`GET /state/snapshot`, borsh), refused when
    /// larger than `max` bytes; `agora-chain` decodes and checks it.
    pub async fn state_snapshot(&self, max: usize) -> Result<Vec<u8>, Error> {
        self.get_bytes("state/snapshot", max)
            .await?
            .ok_or_else(|| Error::Decode("no snapshot".into()))
    }

    /// For a follower in validator-set `epoch`: the followed node's newest certified block
    /// (`GET /sync/finality/{epoch}`, borsh), `None` when it has none for that epoch.
    pub async fn sync_finality(&self, epoch: u64, max: usize) -> Result<Option<Vec<u8>>, Error> {
        self.get_bytes(&format!("sync/finality/{epoch}"), max).await
    }

    /// Executed blocks from height `from` to `to` (`GET /sync/blocks/{from}/{to}`, a borsh
    /// list; the node may send fewer).
    pub async fn sync_blocks(&self, from: u64, to: u64, max: usize) -> Result<Vec<u8>, Error> {
        Ok(self
            .get_bytes(&format!("sync/blocks/{from}/{to}"), max)
            .await?
            .unwrap_or_default())
    }

    /// The body of `GET /{path}`, `None` on 404, refused when larger than `max` bytes.
    async fn get_bytes(&self, path: &str, max: usize) -> Result<Option<Vec<u8>>, Error> {
        let response = self
            .send(|base| self.http.get(format!("{base}/{path}")))
            .await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let mut response = response.error_for_status()?;
        let too_big = || Error::Decode(format!("{path}: over {max} bytes"));
        if response
            .content_length()
            .is_some_and(|len| len as usize > max)
        {
            return Err(too_big());
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if bytes.len() + chunk.len() > max {
                return Err(too_big());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Some(bytes))
    }

    /// Finalized blocks as they are executed, from `GET /events`.
    pub async fn events(&self) -> Result<BoxStream<'static, Result<wire::Block, Error>>, Error> {
        let streaming = reqwest::Client::new();
        let response = self
            .send(|base| streaming.get(format!("{base}/events")))
            .await?
            .error_for_status()?;
        let bytes = response.bytes_stream();
        let stream =
            futures::stream::unfold((bytes, Vec::new()), |(mut bytes, mut buffer)| async move {
                loop {
                    if let Some(end) = buffer.windows(2).position(|pair| pair == b"\n\n") {
                        let frame: Vec<u8> = buffer.drain(..end + 2).collect();
                        let frame = String::from_utf8_lossy(&frame);
                        let data: String = frame
                            .lines()
                            .filter_map(|line| line.strip_prefix("data:"))
                            .map(str::trim_start)
                            .collect();
                        if data.is_empty() {
                            continue;
                        }
                        let item = serde_json::from_str::<wire::Block>(&data)
                            .map_err(|err| Error::Decode(err.to_string()));
                        return Some((item, (bytes, buffer)));
                    }
                    match bytes.next().await {
                        Some(Ok(chunk)) => buffer.extend_from_slice(&chunk),
                        Some(Err(err)) => return Some((Err(Error::Http(err)), (bytes, buffer))),
                        None => return None,
                    }
                }
            });
        Ok(stream.boxed())
    }
}

async fn tokio_sleep(duration: Duration) {
    // The client must not pick a runtime for its caller beyond what reqwest
    // needs (tokio); a timer future from futures-timer would add a dependency.
    tokio::time::sleep(duration).await;
}
