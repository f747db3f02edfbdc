//! The node core: state shared by consensus, the block executor and the RPC server.

use std::{
    collections::{HashSet, VecDeque},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Condvar, Mutex, MutexGuard, RwLock,
    },
    time::{Duration, Instant},
};

use agora_ledger::Overlay;
use agora_rpc::{code, wire};
use agora_types::{
    tx_root, AccountId, Block, ChainId, Cid, Genesis, Hash, Header, Keypair, SignedTx, MAX_TX_BYTES,
};
use commonware_codec::DecodeExt as _;
use commonware_cryptography::{blake3::Digest, ed25519};
use tokio::sync::{broadcast, watch};
use tracing::{debug, error, info, warn};

use crate::{
    consensus::{gossip::Invalid, App, Build, EpochSet, Verdict},
    mempool::Mempool,
    server::RpcFailure,
    store::{HeadRecord, Snapshot, Store, StoredBlock, TxOutcome},
    sync::{Finality, StateSnapshot},
    Config, Error,
};

/// Blocks kept for `/events` subscribers that fall behind.
const EVENT_BUFFER: usize = 256;
/// How far ahead of the local clock a proposed timestamp may be.
const MAX_CLOCK_DRIFT_MS: u64 = 5_000;
/// How far above the executed head an unrequested block from a peer is kept.
const MAX_AHEAD: u64 = 1_000;
/// Most waiting transactions passed on again at once.
const RESEND_MAX_TXS: usize = 2_000;
/// Window over which the tx/s metric is computed.
const RATE_WINDOW: Duration = Duration::from_secs(10);

/// The node's shared state.
pub(crate) struct Node {
    store: Store,
    chain_id: ChainId,
    genesis: Genesis,
    genesis_hash: Hash,
    proposer: AccountId,
    mempool: Mutex<Mempool>,
    head: RwLock<HeadRecord>,
    events: broadcast::Sender<Arc<wire::Block>>,
    finalized: Mutex<Option<Hash>>,
    finalized_signal: Condvar,
    /// The latest finalization certificate consensus reported, with its validator-set
    /// epoch and the block it finalized.
    certificate: Mutex<Option<(u64, Hash, Vec<u8>)>>,
    /// The newest executed block that carries its own certificate, for followers; kept on
    /// disk when the block ends its validator set's epoch.
    finality: Mutex<Option<Finality>>,
    /// Blocks that verification or execution needs and no peer has sent yet.
    missing: Mutex<HashSet<Hash>>,
    /// Transactions accepted here and not yet passed on to peers.
    outgoing: Mutex<Vec<Vec<u8>>>,
    /// Whether blocks gossip to peers (a validator set of more than one).
    gossips: bool,
    /// The node a follower follows ([`Config::follow`]); `submit_tx` is passed on to it.
    upstream: Option<agora_rpc::Client>,
    /// Execute finalized blocks on the consensus caller's thread instead of the applier's
    /// (simulation tests, whose runtime must stay deterministic).
    inline_apply: bool,
    /// Propose blocks with a wrong state root (a byzantine proposer, in simulation tests).
    #[cfg(test)]
    lies: bool,
    stop: watch::Sender<bool>,
    fatal: watch::Sender<Option<String>>,
    metrics: Metrics,
}

#[derive(Default)]
struct Metrics {
    blocks: AtomicU64,
    txs: AtomicU64,
    last_block_ms: AtomicU64,
    recent: Mutex<VecDeque<(Instant, u64)>>,
}

/// The consensus key of a validator: the same ed25519 secret as its account.
pub(crate) fn consensus_key(key: &Keypair) -> ed25519::PrivateKey {
    let secret = key.to_bytes();
    // 32 bytes always decode as an ed25519 secret key.
    ed25519::PrivateKey::decode(secret.to_vec())
        .expect("invariant: 32 bytes decode as an ed25519 private key")
}

/// The consensus key of an account: the same ed25519 key (`None` if the bytes are not one).
pub(crate) fn account_key(account: &AccountId) -> Option<ed25519::PublicKey> {
    ed25519::PublicKey::decode(account.0.to_vec()).ok()
}

/// The validator-set epoch of a state.
fn set_epoch(state: &dyn agora_ledger::Storage) -> Result<u64, Error> {
    agora_ledger::query::validator_set(state)
        .map(|set| set.epoch)
        .map_err(|err| Error::Ledger(err.to_string()))
}

/// A block hash as a consensus digest.
pub(crate) fn digest(hash: &Hash) -> Digest {
    Digest(hash.0)
}

fn hash_of(digest: &Digest) -> Hash {
    Hash(digest.0)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock means a thread panicked mid-update: an internal invariant broke.
    mutex
        .lock()
        .expect("invariant: node locks are never poisoned")
}

fn reject(message: impl std::fmt::Display) -> RpcFailure {
    RpcFailure::new(code::TX_REJECTED, message.to_string())
}

fn parse_account(text: &str) -> Result<AccountId, RpcFailure> {
    text.parse().map_err(RpcFailure::invalid_params)
}

impl Node {
    /// Opens the store, writing genesis on first start.
    #[cfg(test)]
    pub(crate) fn open(config: &Config) -> Result<Self, Error> {
        Self::open_from(config, None)
    }

    /// Opens the store; on first start it begins at `snapshot`'s head (checked against its
    /// state root) when one is given, and at genesis otherwise.
    pub(crate) fn open_from(
        config: &Config,
        snapshot: Option<&StateSnapshot>,
    ) -> Result<Self, Error> {
        let store = Store::open(&config.data_dir.join("chain.redb"))?;
        let genesis_hash = config.genesis.hash();
        let head = match store.head()? {
            Some(head) => {
                let found = store.genesis_hash()?.unwrap_or(Hash([0; 32]));
                if found != genesis_hash {
                    return Err(crate::store::Error::GenesisMismatch {
                        expected: genesis_hash,
                        found,
                    }
                    .into());
                }
                head
            }
            None if snapshot.is_some() => {
                let snapshot = snapshot.expect("invariant: checked just above");
                snapshot
                    .verify()
                    .map_err(|err| Error::Sync(err.to_string()))?;
                store.init_from_snapshot(genesis_hash, &snapshot.head, &snapshot.entries)?;
                info!(
                    target: "agora::chain",
                    height = snapshot.head.height,
                    state_root = %snapshot.head.state_root,
                    entries = snapshot.entries.len(),
                    "started from a state snapshot"
                );
                snapshot.head.clone()
            }
            None => {
                let snapshot = store.snapshot()?;
                let mut overlay = Overlay::new(&snapshot);
                let root = agora_ledger::init_genesis(&mut overlay, &config.genesis)
                    .map_err(|err| Error::Ledger(err.to_string()))?;
                let writes = overlay.into_changes();
                let head = HeadRecord {
                    height: 0,
                    hash: genesis_hash,
                    state_root: root,
                    timestamp_ms: config.genesis.timestamp_ms,
                };
                store.init(genesis_hash, &head, &writes)?;
                info!(target: "agora::chain", %genesis_hash, %root, "genesis written");
                head
            }
        };
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let upstream = match &config.follow {
            Some(url) => Some(
                agora_rpc::Client::new(url).map_err(|err| Error::Sync(format!("{url}: {err}")))?,
            ),
            None => None,
        };
        Ok(Node {
            upstream,
            store,
            chain_id: config.genesis.chain_id.clone(),
            genesis: config.genesis.clone(),
            genesis_hash,
            proposer: config.key.account_id(),
            mempool: Mutex::new(Mempool::new(config.mempool_max_txs)),
            head: RwLock::new(head),
            events,
            finalized: Mutex::new(None),
            finalized_signal: Condvar::new(),
            certificate: Mutex::new(None),
            finality: Mutex::new(None),
            missing: Mutex::new(HashSet::new()),
            outgoing: Mutex::new(Vec::new()),
            gossips: config.follow.is_none()
                && (config.genesis.validators.len() > 1 || config.p2p.is_some()),
            inline_apply: false,
            #[cfg(test)]
            lies: false,
            stop: watch::Sender::new(false),
            fatal: watch::Sender::new(None),
            metrics: Metrics::default(),
        })
    }

    /// Makes this node propose blocks whose state root is wrong.
    #[cfg(test)]
    pub(crate) fn lying_about_state_roots(mut self) -> Self {
        self.lies = true;
        self
    }

    /// The node this one follows, when it is a follower.
    pub(crate) fn upstream(&self) -> Option<&agora_rpc::Client> {
        self.upstream.as_ref()
    }

    /// Executes finalized blocks when consensus reports them, on its thread, instead of
    /// on an applier thread.
    #[cfg(test)]
    pub(crate) fn with_inline_apply(mut self) -> Self {
        self.inline_apply = true;
        self
    }

    /// The executed head.
    pub(crate) fn head(&self) -> HeadRecord {
        self.head
            .read()
            .expect("invariant: node locks are never poisoned")
            .clone()
    }

    /// The genesis hash.
    #[cfg(test)]
    pub(crate) fn genesis_hash(&self) -> Hash {
        self.genesis_hash
    }

    /// New subscription to executed blocks.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<wire::Block>> {
        self.events.subscribe()
    }

    /// Asks every node task to stop.
    pub(crate) fn stop(&self) {
        self.stop.send_replace(true);
        self.finalized_signal.notify_all();
    }

    pub(crate) fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Resolves once [`Node::stop`] was called.
    pub(crate) async fn wait_stopped(&self) {
        let mut receiver = self.stop.subscribe();
        let _ = receiver.wait_for(|stop| *stop).await;
    }

    /// Records a fatal error; the node shuts down.
    pub(crate) fn set_fatal(&self, reason: String) {
        error!(target: "agora::chain", %reason, "fatal error, stopping node");
        self.fatal.send_if_modified(|fatal| {
            if fatal.is_none() {
                *fatal = Some(reason);
                true
            } else {
                false
            }
        });
        self.stop();
    }

    /// The fatal error, if one happened.
    pub(crate) fn fatal(&self) -> Option<String> {
        self.fatal.borrow().clone()
    }

    /// Resolves once a fatal error happened.
    pub(crate) async fn wait_fatal(&self) {
        let mut receiver = self.fatal.subscribe();
        let _ = receiver.wait_for(Option::is_some).await;
    }

    fn snapshot(&self) -> Result<Snapshot, RpcFailure> {
        self.store.snapshot().map_err(RpcFailure::internal)
    }

    fn next_nonce(snapshot: &Snapshot, account: &AccountId) -> u64 {
        agora_ledger::query::account(snapshot, account)
            .map(|account| account.nonce)
            .unwrap_or(0)
    }

    // ---- RPC ----

    /// `submit_tx`: decode, check and queue a hex transaction.
    pub(crate) fn submit_hex(&self, hex_tx: &str) -> Result<wire::SubmitTxResult, RpcFailure> {
        if hex_tx.len() > 2 * MAX_TX_BYTES {
            return Err(reject(format!(
                "transaction of {} bytes exceeds {MAX_TX_BYTES} bytes",
                hex_tx.len() / 2
            )));
        }
        let bytes =
            hex::decode(hex_tx.trim()).map_err(|err| reject(format!("invalid hex: {err}")))?;
        let tx = SignedTx::from_bytes(&bytes)
            .map_err(|err| reject(format!("invalid transaction: {err}")))?;
        let hash = tx.hash();
        self.submit(tx, hash)?;
        Ok(wire::SubmitTxResult {
            hash: hash.to_hex(),
        })
    }

    fn submit(&self, tx: SignedTx, hash: Hash) -> Result<(), RpcFailure> {
        let bytes = self.gossips.then(|| agora_types::encode(&tx));
        self.admit(tx, hash)?;
        if let Some(bytes) = bytes {
            lock(&self.outgoing).push(bytes);
        }
        Ok(())
    }

    /// Checks a transaction and puts it in the mempool.
    fn admit(&self, tx: SignedTx, hash: Hash) -> Result<(), RpcFailure> {
        if self.stopping() {
            return Err(RpcFailure::new(code::INTERNAL_ERROR, "node is stopping"));
        }
        tx.verify(&self.chain_id)
            .map_err(|_| reject("bad signature"))?;
        if self
            .store
            .tx_location(&hash)
            .map_err(RpcFailure::internal)?
            .is_some()
        {
            return Err(reject("transaction already committed"));
        }
        let snapshot = self.snapshot()?;
        agora_ledger::check_tx(&snapshot, &tx).map_err(reject)?;
        let next = Self::next_nonce(&snapshot, &tx.signer);
        let mut mempool = lock(&self.mempool);
        mempool.insert(tx, hash, next).map_err(|err| match err {
            crate::mempool::Reject::Full(_) => RpcFailure::new(code::MEMPOOL_FULL, err.to_string()),
            other => reject(other),
        })
    }

    /// The executed head and full state, for a peer's state sync.
    pub(crate) fn state_snapshot(&self) -> Result<StateSnapshot, crate::store::Error> {
        let (head, entries) = self.store.export()?;
        Ok(StateSnapshot { head, entries })
    }

    /// The executed block at `height`.
    #[cfg(test)]
    pub(crate) fn stored_block(&self, height: u64) -> Option<StoredBlock> {
        self.store.block(height).ok().flatten()
    }

    /// `tx_status`.
    pub(crate) fn tx_status(&self, hash_hex: &str) -> Result<wire::TxStatus, RpcFailure> {
        let hash =
            Hash::from_hex(hash_hex).ok_or_else(|| RpcFailure::invalid_params("bad hash"))?;
        let mut status = wire::TxStatus {
            hash: hash.to_hex(),
            status: wire::TxState::Unknown,
            height: None,
            index: None,
            success: None,
            error: None,
        };
        if let Some((height, index)) = self
            .store
            .tx_location(&hash)
            .map_err(RpcFailure::internal)?
        {
            status.status = wire::TxState::Committed;
            status.height = Some(height);
            status.index = Some(index);
            if let Some(stored) = self.store.block(height).map_err(RpcFailure::internal)? {
                if let Some(outcome) = usize::try_from(index)
                    .ok()
                    .and_then(|i| stored.outcomes.get(i))
                {
                    status.success = Some(outcome.success);
                    status.error = outcome.error.clone();
                }
            }
        } else if lock(&self.mempool).contains(&hash) {
            status.status = wire::TxState::Pending;
        }
        Ok(status)
    }

    /// `account`.
    pub(crate) fn account(&self, address: &str) -> Result<wire::Account, RpcFailure> {
        let id = parse_account(address)?;
        let snapshot = self.snapshot()?;
        let account = agora_ledger::query::account(&snapshot, &id).map_err(RpcFailure::internal)?;
        Ok(wire::Account {
            address: id.to_string(),
            balance: account.balance.to_string(),
            nonce: account.nonce,
            bonded: account.bonded.to_string(),
            unbonding: account.unbonding_total.to_string(),
        })
    }

    fn provider_wire(&self, view: &agora_ledger::query::ProviderView) -> wire::Provider {
        let status = if view.jailed_until > self.head().height {
            "jailed"
        } else if view.active {
            "active"
        } else {
            "inactive"
        };
        wire::Provider::from_core(
            &view.provider.operator,
            &view.provider.info,
            view.bonded,
            status,
        )
    }

    /// `provider`.
    pub(crate) fn provider(&self, address: &str) -> Result<Option<wire::Provider>, RpcFailure> {
        let id = parse_account(address)?;
        let snapshot = self.snapshot()?;
        match agora_ledger::query::provider(&snapshot, &id).map_err(RpcFailure::internal)? {
            Some(view) => Ok(Some(self.provider_wire(&view))),
            None => Ok(None),
        }
    }

    /// `providers`.
    pub(crate) fn providers(&self) -> Result<Vec<wire::Provider>, RpcFailure> {
        let snapshot = self.snapshot()?;
        let providers = agora_ledger::query::providers(&snapshot).map_err(RpcFailure::internal)?;
        Ok(providers
            .iter()
            .map(|view| self.provider_wire(view))
            .collect())
    }

    /// `model`.
    pub(crate) fn model(&self, cid: &str) -> Result<Option<wire::Model>, RpcFailure> {
        let cid: Cid = cid.parse().map_err(RpcFailure::invalid_params)?;
        let snapshot = self.snapshot()?;
        let model = agora_ledger::query::model(&snapshot, &cid).map_err(RpcFailure::internal)?;
        Ok(model.as_ref().map(model_wire))
    }

    /// `models`.
    pub(crate) fn models(&self) -> Result<Vec<wire::Model>, RpcFailure> {
        let snapshot = self.snapshot()?;
        let models = agora_ledger::query::models(&snapshot).map_err(RpcFailure::internal)?;
        Ok(models.iter().map(model_wire).collect())
    }

    /// `proposal`.
    pub(crate) fn proposal(&self, id: u64) -> Result<Option<wire::Proposal>, RpcFailure> {
        let snapshot = self.snapshot()?;
        let proposal =
            agora_ledger::query::proposal(&snapshot, id).map_err(RpcFailure::internal)?;
        Ok(proposal.as_ref().map(proposal_wire))
    }

    /// `proposals`.
    pub(crate) fn proposals(&self) -> Result<Vec<wire::Proposal>, RpcFailure> {
        let snapshot = self.snapshot()?;
        let proposals = agora_ledger::query::proposals(&snapshot).map_err(RpcFailure::internal)?;
        Ok(proposals.iter().map(proposal_wire).collect())
    }

    /// `channel`.
    pub(crate) fn channel(&self, id: &str) -> Result<Option<wire::Channel>, RpcFailure> {
        let id = Hash::from_hex(id).ok_or_else(|| RpcFailure::invalid_params("bad hash"))?;
        let snapshot = self.snapshot()?;
        let channel = agora_ledger::query::channel(&snapshot, &id).map_err(RpcFailure::internal)?;
        Ok(channel.as_ref().map(channel_wire))
    }

    /// `channels`.
    pub(crate) fn channels(
        &self,
        params: &wire::ChannelsParams,
    ) -> Result<Vec<wire::Channel>, RpcFailure> {
        let payer = params.payer.as_deref().map(parse_account).transpose()?;
        let payee = params.payee.as_deref().map(parse_account).transpose()?;
        let snapshot = self.snapshot()?;
        let channels = agora_ledger::query::channels(&snapshot).map_err(RpcFailure::internal)?;
        Ok(channels
            .iter()
            .filter(|channel| payer.is_none_or(|payer| channel.payer == payer))
            .filter(|channel| payee.is_none_or(|payee| channel.payee == payee))
            .map(channel_wire)
            .collect())
    }

    /// `receipt_commitment`.
    pub(crate) fn receipt_commitment(
        &self,
        provider: &str,
        epoch: u64,
    ) -> Result<Option<wire::ReceiptCommitment>, RpcFailure> {
        let provider = parse_account(provider)?;
        let snapshot = self.snapshot()?;
        let commitment = agora_ledger::query::receipt_commitment(&snapshot, &provider, epoch)
            .map_err(RpcFailure::internal)?;
        Ok(commitment.as_ref().map(receipt_commitment_wire))
    }

    /// `params`.
    pub(crate) fn params(&self) -> Result<wire::Params, RpcFailure> {
        let snapshot = self.snapshot()?;
        let params = agora_ledger::query::params(&snapshot).map_err(RpcFailure::internal)?;
        Ok(wire::params(&params))
    }

    /// `supply`.
    pub(crate) fn supply(&self) -> Result<wire::Supply, RpcFailure> {
        let snapshot = self.snapshot()?;
        let supply = agora_ledger::query::supply(&snapshot).map_err(RpcFailure::internal)?;
        let total = supply
            .genesis
            .saturating_add(supply.minted)
            .saturating_sub(supply.burned);
        Ok(wire::Supply {
            liquid: supply.liquid.to_string(),
            bonded: supply.bonded.to_string(),
            unbonding: supply.unbonding.to_string(),
            escrowed: supply.escrowed.to_string(),
            burned: supply.burned.to_string(),
            minted: supply.minted.to_string(),
            genesis: supply.genesis.to_string(),
            total: total.to_string(),
        })
    }

    /// `validators`.
    pub(crate) fn validators(&self) -> Result<Vec<wire::Validator>, RpcFailure> {
        let snapshot = self.snapshot()?;
        let validators =
            agora_ledger::query::validators(&snapshot).map_err(RpcFailure::internal)?;
        validators
            .iter()
            .map(|validator| {
                let account = agora_ledger::query::account(&snapshot, &validator.account)
                    .map_err(RpcFailure::internal)?;
                Ok(wire::Validator {
                    account: validator.account.to_string(),
                    bonded: account.bonded.to_string(),
                    p2p: validator.p2p.as_ref().map(|p2p| p2p.as_str().to_owned()),
                })
            })
            .collect()
    }

    /// `verifiers`.
    /// `model_stats`: receipts by model from every provider's commitments over the last
    /// epochs, its offers now, its providers' latest consensus scores, and its disputes.
    pub(crate) fn model_stats(
        &self,
        p: &wire::ModelStatsParams,
    ) -> Result<Option<wire::ModelStats>, RpcFailure> {
        use agora_ledger::query;
        let cid: Cid = p.cid.parse().map_err(RpcFailure::invalid_params)?;
        let snapshot = self.snapshot()?;
        let Some(model) = query::model(&snapshot, &cid).map_err(RpcFailure::internal)? else {
            return Ok(None);
        };
        let params = query::params(&snapshot).map_err(RpcFailure::internal)?;
        let epoch_blocks = params.epoch_blocks.max(1);
        let height = self.head().height;
        let to_epoch = height / epoch_blocks;
        let from_epoch = to_epoch.saturating_sub(p.epochs.unwrap_or(10).min(1_000));
        let providers = query::providers(&snapshot).map_err(RpcFailure::internal)?;
        let mut totals = agora_types::ReceiptTotals::default();
        for view in &providers {
            for epoch in from_epoch..=to_epoch {
                let Some(commitment) =
                    query::receipt_commitment(&snapshot, &view.provider.operator, epoch)
                        .map_err(RpcFailure::internal)?
                else {
                    continue;
                };
                for entry in commitment.by_model.iter().filter(|e| e.model == cid) {
                    totals = totals.checked_add(&entry.totals).unwrap_or(totals);
                }
            }
        }
        let serving: Vec<_> = providers
            .iter()
            .filter(|v| v.active)
            .filter_map(|v| {
                let offer = v.provider.info.models.iter().find(|o| o.cid == cid)?;
                Some((v.provider.operator, offer))
            })
            .collect();
        let latest_scores = (from_epoch..=to_epoch)
            .rev()
            .find_map(|epoch| query::epoch_rewards(&snapshot, epoch).ok().flatten());
        let scores: Vec<u64> = latest_scores
            .iter()
            .flat_map(|r| r.providers.iter())
            .filter(|r| serving.iter().any(|(operator, _)| *operator == r.provider))
            .map(|r| u64::from(r.consensus_ppm))
            .collect();
        let from_height = from_epoch * epoch_blocks;
        let disputes: Vec<_> = query::disputes(&snapshot, false)
            .map_err(RpcFailure::internal)?
            .into_iter()
            .filter(|d| d.receipt.receipt.model == cid && d.opened_height >= from_height)
            .collect();
        let frauds = disputes
            .iter()
            .filter(
                |d| matches!(&d.status, agora_ledger::state::DisputeStatus::Resolved(o) if o.fraud),
            )
            .count();
        Ok(Some(wire::ModelStats {
            cid: cid.to_string(),
            name: model.info.name.as_str().to_owned(),
            status: model_wire(&model).status,
            from_epoch,
            to_epoch,
            requests: totals.requests,
            tokens_in: totals.tokens_in,
            tokens_out: totals.tokens_out,
            amount: totals.amount.to_string(),
            providers: serving.len() as u64,
            min_price_in: serving
                .iter()
                .map(|(_, o)| o.price_in)
                .min()
                .map(|a| a.to_string()),
            min_price_out: serving
                .iter()
                .map(|(_, o)| o.price_out)
                .min()
                .map(|a| a.to_string()),
            mean_score_ppm: (!scores.is_empty())
                .then(|| scores.iter().sum::<u64>() / scores.len() as u64),
            disputes: disputes.len() as u64,
            frauds: frauds as u64,
        }))
    }

    pub(crate) fn safety_policy(&self) -> Result<Option<String>, RpcFailure> {
        let snapshot = self.snapshot()?;
        let cid = agora_ledger::query::safety_policy(&snapshot).map_err(RpcFailure::internal)?;
        Ok(cid.map(|cid| cid.to_string()))
    }

    pub(crate) fn verifiers(&self) -> Result<Vec<wire::Verifier>, RpcFailure> {
        let snapshot = self.snapshot()?;
        let params = agora_ledger::query::params(&snapshot).map_err(RpcFailure::internal)?;
        let height = self.head().height;
        let verifiers = agora_ledger::query::verifiers(&snapshot).map_err(RpcFailure::internal)?;
        verifiers
            .iter()
            .map(|verifier| {
                let account = agora_ledger::query::account(&snapshot, &verifier.account)
                    .map_err(RpcFailure::internal)?;
                let status = if account.jailed_until > height {
                    "jailed"
                } else if account.bonded > 0 && account.bonded >= params.min_stake {
                    "active"
                } else {
                    "inactive"
                };
                Ok(wire::Verifier {
                    account: verifier.account.to_string(),
                    endpoint: verifier.endpoint.to_string(),
                    stake: account.bonded.to_string(),
                    registered_height: verifier.registered_height,
                    status: status.into(),
                })
            })
            .collect()
    }

    /// `dispute`.
    pub(crate) fn dispute(&self, id: &str) -> Result<Option<wire::Dispute>, RpcFailure> {
        let id = Hash::from_hex(id).ok_or_else(|| RpcFailure::invalid_params("bad hash"))?;
        let snapshot = self.snapshot()?;
        let dispute = agora_ledger::query::dispute(&snapshot, &id).map_err(RpcFailure::internal)?;
        Ok(dispute.as_ref().map(dispute_wire))
    }

    /// `disputes`.
    pub(crate) fn disputes(
        &self,
        params: &wire::DisputesParams,
    ) -> Result<Vec<wire::Dispute>, RpcFailure> {
        let provider = params.provider.as_deref().map(parse_account).transpose()?;
        let snapshot = self.snapshot()?;
        let disputes = agora_ledger::query::disputes(&snapshot, params.open_only)
            .map_err(RpcFailure::internal)?;
        Ok(disputes
            .iter()
            .filter(|d| provider.is_none_or(|p| d.receipt.receipt.provider == p))
            .map(dispute_wire)
            .collect())
    }

    /// `epoch_rewards`.
    pub(crate) fn epoch_rewards(
        &self,
        epoch: u64,
    ) -> Result<Option<wire::EpochRewards>, RpcFailure> {
        let snapshot = self.snapshot()?;
        let rewards =
            agora_ledger::query::epoch_rewards(&snapshot, epoch).map_err(RpcFailure::internal)?;
        Ok(rewards.map(|rewards| wire::EpochRewards {
            epoch: rewards.epoch,
            height: rewards.height,
            providers: rewards
                .providers
                .iter()
                .map(|p| wire::ProviderReward {
                    provider: p.provider.to_string(),
                    consensus_ppm: p.consensus_ppm,
                    tokens: p.tokens,
                    reward: p.reward.to_string(),
                })
                .collect(),
            verifiers: rewards
                .verifiers
                .iter()
                .map(|v| wire::VerifierReward {
                    verifier: v.verifier.to_string(),
                    stake: v.stake.to_string(),
                    agreement_ppm: v.agreement_ppm,
                    reward: v.reward.to_string(),
                })
                .collect(),
            minted: rewards.minted.to_string(),
        }))
    }

    /// `block`.
    pub(crate) fn block(
        &self,
        params: &wire::BlockParams,
    ) -> Result<Option<wire::Block>, RpcFailure> {
        let height = match (&params.height, &params.hash) {
            (Some(height), _) => *height,
            (None, Some(hash)) => {
                let hash =
                    Hash::from_hex(hash).ok_or_else(|| RpcFailure::invalid_params("bad hash"))?;
                match self
                    .store
                    .block_height(&hash)
                    .map_err(RpcFailure::internal)?
                {
                    Some(height) => height,
                    None => return Ok(None),
                }
            }
            (None, None) => self.head().height,
        };
        let stored = self.store.block(height).map_err(RpcFailure::internal)?;
        Ok(stored.as_ref().map(block_wire))
    }

    /// `head`.
    pub(crate) fn head_wire(&self) -> wire::Head {
        let head = self.head();
        wire::Head {
            chain_id: self.chain_id.to_string(),
            genesis_hash: self.genesis_hash.to_hex(),
            height: head.height,
            hash: head.hash.to_hex(),
            state_root: head.state_root.to_hex(),
            timestamp_ms: head.timestamp_ms,
            mempool: lock(&self.mempool).len() as u64,
        }
    }

    /// `proof`.
    pub(crate) fn proof(&self, params: &wire::ProofParams) -> Result<wire::Proof, RpcFailure> {
        let id = parse_account(&params.address)?;
        let key = match params.kind {
            wire::ProofKind::Account => agora_ledger::state::keys::account(&id),
            wire::ProofKind::Provider => agora_ledger::state::keys::provider(&id),
        };
        // A block may commit between reading the head and taking the snapshot;
        // retry until both describe the same state.
        for _ in 0..8 {
            let head = self.head();
            let snapshot = self.snapshot()?;
            let root = agora_ledger::proof::state_root(&snapshot).map_err(RpcFailure::internal)?;
            if root != head.state_root {
                continue;
            }
            let proof = agora_ledger::proof::prove(&snapshot, &key)
                .map_err(RpcFailure::internal)?
                .ok_or_else(|| RpcFailure::new(code::NOT_FOUND, "no such entry"))?;
            return Ok(wire::Proof::from_core(
                head.height,
                &root,
                &proof.key,
                &proof.value,
                &proof.merkle,
            ));
        }
        Err(RpcFailure::new(
            code::INTERNAL_ERROR,
            "state kept moving, retry",
        ))
    }

    /// Prometheus text for `/metrics`.
    pub(crate) fn metrics_text(&self) -> String {
        let head = self.head();
        let mempool = lock(&self.mempool).len();
        let rate = {
            let mut recent = lock(&self.metrics.recent);
            let now = Instant::now();
            while recent
                .front()
                .is_some_and(|(at, _)| now.duration_since(*at) > RATE_WINDOW)
            {
                recent.pop_front();
            }
            let txs: u64 = recent.iter().map(|(_, n)| n).sum();
            txs as f64 / RATE_WINDOW.as_secs_f64()
        };
        let block_time = self.metrics.last_block_ms.load(Ordering::Relaxed) as f64 / 1000.0;
        format!(
            "# HELP agora_chain_height Height of the last executed block.\n\
             # TYPE agora_chain_height gauge\n\
             agora_chain_height {}\n\
             # HELP agora_chain_mempool_size Transactions waiting in the mempool.\n\
             # TYPE agora_chain_mempool_size gauge\n\
             agora_chain_mempool_size {mempool}\n\
             # HELP agora_chain_block_time_seconds Time between the last two blocks.\n\
             # TYPE agora_chain_block_time_seconds gauge\n\
             agora_chain_block_time_seconds {block_time}\n\
             # HELP agora_chain_tx_per_second Transactions executed per second over the last 10 s.\n\
             # TYPE agora_chain_tx_per_second gauge\n\
             agora_chain_tx_per_second {rate}\n\
             # HELP agora_chain_blocks_total Blocks executed since start.\n\
             # TYPE agora_chain_blocks_total counter\n\
             agora_chain_blocks_total {}\n\
             # HELP agora_chain_txs_total Transactions executed since start.\n\
             # TYPE agora_chain_txs_total counter\n\
             agora_chain_txs_total {}\n",
            head.height,
            self.metrics.blocks.load(Ordering::Relaxed),
            self.metrics.txs.load(Ordering::Relaxed),
        )
    }

    // ---- Block building and execution ----

    fn lookup_block(&self, hash: &Hash) -> Result<Option<Block>, crate::store::Error> {
        if let Some(block) = self.store.candidate(hash)? {
            return Ok(Some(block));
        }
        match self.store.block_height(hash)? {
            Some(height) => Ok(self.store.block(height)?.map(|stored| stored.block)),
            None => Ok(None),
        }
    }

    /// The validator set of the executed state, for consensus.
    fn executed_validator_set(&self) -> Result<EpochSet, Error> {
        let head = self.head();
        let snapshot = self.store.snapshot()?;
        let set = agora_ledger::query::validator_set(&snapshot)
            .map_err(|err| Error::Ledger(err.to_string()))?;
        // The genesis set grows from genesis; a later one from its floor, which is the
        // executed head itself until the set's first block is executed.
        let floor = match (set.epoch, set.floor) {
            (0, _) => self.genesis_hash,
            (_, Some(floor)) => floor,
            (_, None) => head.hash,
        };
        Ok(EpochSet {
            epoch: set.epoch,
            floor: digest(&floor),
            members: set
                .members
                .iter()
                .filter_map(|member| {
                    let key = account_key(&member.account)?;
                    Some((key, member.p2p.as_ref().map(|p2p| p2p.as_str().to_owned())))
                })
                .collect(),
        })
    }

    /// How validator-set `epoch` ended, if this node kept it.
    fn epoch_end_finality(&self, epoch: u64) -> Result<Option<Finality>, Error> {
        match self.store.epoch_end(epoch)? {
            Some(bytes) => Finality::from_bytes(&bytes)
                .map(Some)
                .map_err(|err| Error::Fatal(format!("stored epoch end {epoch}: {err}"))),
            None => Ok(None),
        }
    }

    /// For a follower in validator-set `epoch`: the newest certified block of that epoch,
    /// or, for an epoch this node has left, the block that ended it.
    pub(crate) fn finality(&self, epoch: u64) -> Result<Option<Finality>, Error> {
        if let Some(ended) = self.epoch_end_finality(epoch)? {
            return Ok(Some(ended));
        }
        Ok(lock(&self.finality)
            .clone()
            .filter(|finality| finality.epoch == epoch))
    }

    /// Executed blocks from height `from` to `to`, oldest first, at most
    /// [`crate::sync::MAX_SYNC_BLOCKS`] and [`crate::sync::MAX_SYNC_BYTES`] (always the
    /// first if it exists).
    pub(crate) fn sync_blocks(&self, from: u64, to: u64) -> Result<Vec<Block>, Error> {
        let last = to.min(from.saturating_add(crate::sync::MAX_SYNC_BLOCKS - 1));
        let mut blocks = Vec::new();
        let mut bytes = 0;
        for height in from..=last {
            let Some(stored) = self.store.block(height)? else {
                break;
            };
            bytes += agora_types::encode(&stored.block).len();
            if bytes > crate::sync::MAX_SYNC_BYTES && !blocks.is_empty() {
                break;
            }
            blocks.push(stored.block);
        }
        Ok(blocks)
    }

    /// Stores blocks a follower fetched, to execute once a certificate names their tip;
    /// refuses a block whose transactions do not match its root.
    pub(crate) fn store_fetched(&self, blocks: &[Block]) -> Result<(), Invalid> {
        for block in blocks {
            if block.header.tx_root != tx_root(&block.txs) {
                return Err(Invalid::Payload("block: transaction root mismatch".into()));
            }
            if let Err(err) = self.store.put_candidate(block) {
                self.set_fatal(err.to_string());
            }
        }
        Ok(())
    }

    /// Notes a block this node needs; gossip asks peers for it.
    fn want(&self, hash: Hash) {
        if self.gossips {
            lock(&self.missing).insert(hash);
        }
    }

    /// The unexecuted blocks from the executed head (exclusive) to `tip` (inclusive),
    /// oldest first.
    fn unexecuted_chain(&self, head: &HeadRecord, tip: Hash) -> Result<Chain, Error> {
        let mut chain = Vec::new();
        let mut cursor = tip;
        while cursor != head.hash {
            let Some(block) = self.store.candidate(&cursor)? else {
                if self.store.block_height(&cursor)?.is_some() {
                    // Executed since `head` was read: look again with the new head.
                    if self.head().height != head.height {
                        return Ok(Chain::Moved);
                    }
                    // An executed block other than the head: a branch off the finalized chain.
                    return Ok(Chain::Fork);
                }
                self.want(cursor);
                return Ok(Chain::Missing);
            };
            if block.header.height <= head.height {
                return Ok(Chain::Fork);
            }
            cursor = block.header.parent;
            chain.push(block);
        }
        chain.reverse();
        Ok(Chain::Blocks(chain))
    }

    /// Executes `blocks` on top of the executed state without committing anything; with
    /// `next_txs`, also picks the mempool transactions that would go next.
    fn speculate(
        &self,
        head: &HeadRecord,
        blocks: &[Block],
        next_txs: bool,
    ) -> Result<Speculation, Error> {
        let snapshot = self.store.snapshot()?;
        let mut overlay = Overlay::new(&snapshot);
        let mut tip = (head.height, head.timestamp_ms, head.state_root);
        let mut parent_epoch = set_epoch(&overlay)?;
        for (i, block) in blocks.iter().enumerate() {
            if i + 1 == blocks.len() {
                parent_epoch = set_epoch(&overlay)?;
            }
            match agora_ledger::apply_block(&mut overlay, block) {
                Ok(outcome) => {
                    tip = (
                        block.header.height,
                        block.header.timestamp_ms,
                        outcome.state_root,
                    );
                }
                Err(err) => return Ok(Speculation::Invalid(block.header.height, err.to_string())),
            }
        }
        let epoch = set_epoch(&overlay)?;
        if !next_txs {
            return Ok(Speculation::Valid {
                height: tip.0,
                timestamp_ms: tip.1,
                state_root: tip.2,
                parent_epoch,
                epoch,
                txs: Vec::new(),
            });
        }
        let params =
            agora_ledger::query::params(&overlay).map_err(|err| Error::Ledger(err.to_string()))?;
        let max = usize::try_from(params.max_block_txs).unwrap_or(usize::MAX);
        let mut txs = lock(&self.mempool).select(max, |account| {
            agora_ledger::query::account(&overlay, account)
                .map(|account| account.nonce)
                .unwrap_or(0)
        });
        // Keep the block under the size peers accept (a header is well under 1 KiB).
        let mut bytes = 1024;
        let fits = txs
            .iter()
            .take_while(|tx| {
                bytes += agora_types::encode(*tx).len() + 4;
                bytes <= agora_types::MAX_BLOCK_BYTES
            })
            .count();
        txs.truncate(fits);
        Ok(Speculation::Valid {
            height: tip.0,
            timestamp_ms: tip.1,
            state_root: tip.2,
            parent_epoch,
            epoch,
            txs,
        })
    }

    /// Builds a block on `parent` for the consensus engine of validator-set `epoch`; when
    /// `parent` ended that epoch (its block chose a new set), re-proposes `parent` itself so
    /// the old set can still finalize it.
    fn build_block(
        &self,
        parent: Hash,
        timestamp_ms: u64,
        speculate: bool,
        epoch: u64,
    ) -> Result<Build, Error> {
        let head = self.head();
        // Headers commit to the parent's post-state. When consensus builds on a
        // block not executed yet (finalized or only notarized), execute the
        // missing ancestors speculatively on top of the executed state.
        let ancestors = match self.unexecuted_chain(&head, parent)? {
            Chain::Blocks(ancestors) => ancestors,
            // Asked for from peers: build once it arrives, rather than lose the view.
            Chain::Missing | Chain::Moved => return Ok(Build::Wait),
            Chain::Fork => return Ok(Build::Failed),
        };
        if !ancestors.is_empty() && !speculate {
            return Ok(Build::Wait);
        }
        let Speculation::Valid {
            height,
            timestamp_ms: parent_timestamp,
            state_root,
            epoch: parent_epoch,
            txs,
            ..
        } = self.speculate(&head, &ancestors, true)?
        else {
            warn!(target: "agora::chain", %parent, "cannot execute ancestors speculatively");
            return Ok(Build::Failed);
        };
        if parent_epoch != epoch {
            if parent_epoch > epoch && parent != self.genesis_hash {
                debug!(target: "agora::chain", %parent, epoch, "re-proposing the epoch's last block");
                return Ok(Build::Built(digest(&parent)));
            }
            return Ok(Build::Failed);
        }
        #[cfg(test)]
        let state_root = if self.lies {
            Hash([0xee; 32])
        } else {
            state_root
        };
        let header = Header {
            height: height + 1,
            parent,
            timestamp_ms: timestamp_ms.max(parent_timestamp),
            proposer: self.proposer,
            tx_root: tx_root(&txs),
            state_root,
        };
        let block = Block { header, txs };
        let hash = self.store.put_candidate(&block)?;
        debug!(target: "agora::chain", height = block.header.height, txs = block.txs.len(), %hash, "built block");
        Ok(Build::Built(digest(&hash)))
    }

    /// Whether `payload` is a valid child of `parent` proposed by `leader`: the ledger
    /// executes it (height, parent, timestamp, transaction root, the state root it claims,
    /// every transaction well formed) after its unexecuted ancestors. `None` while the
    /// block or an ancestor is missing or its timestamp is ahead of the local clock.
    ///
    /// The block must belong to validator-set `epoch`: its parent's post-state is in that
    /// epoch. A re-proposal (`payload == parent`) is valid when `parent` ended the epoch.
    /// A proposal off the executed chain is [`Verdict::Stale`] (this node may be ahead);
    /// every other refusal is the leader's fault.
    fn verify_block(
        &self,
        parent: Hash,
        payload: Hash,
        leader: AccountId,
        now_ms: u64,
        epoch: u64,
    ) -> Result<Option<Verdict>, Error> {
        let head = self.head();
        if payload == parent {
            let blocks = match self.unexecuted_chain(&head, parent)? {
                Chain::Blocks(blocks) => blocks,
                Chain::Missing | Chain::Moved => return Ok(None),
                Chain::Fork => return Ok(Some(Verdict::Stale)),
            };
            let ends_epoch = matches!(
                self.speculate(&head, &blocks, false)?,
                Speculation::Valid { epoch: after, .. } if after > epoch
            );
            return Ok(Some(if ends_epoch {
                Verdict::Valid
            } else {
                Verdict::Faulty
            }));
        }
        let Some(block) = self.store.candidate(&payload)? else {
            if self.store.block_height(&payload)?.is_some() {
                return Ok(Some(Verdict::Stale));
            }
            self.want(payload);
            return Ok(None);
        };
        let header = &block.header;
        if header.parent != parent || header.proposer != leader {
            return Ok(Some(Verdict::Faulty));
        }
        if header.timestamp_ms > now_ms.saturating_add(MAX_CLOCK_DRIFT_MS) {
            return Ok(None);
        }
        let mut blocks = match self.unexecuted_chain(&head, parent)? {
            Chain::Blocks(blocks) => blocks,
            Chain::Missing | Chain::Moved => return Ok(None),
            Chain::Fork => return Ok(Some(Verdict::Stale)),
        };
        blocks.push(block);
        match self.speculate(&head, &blocks, false)? {
            Speculation::Valid { parent_epoch, .. } if parent_epoch != epoch => {
                warn!(target: "agora::chain", %payload, parent_epoch, epoch, "rejected block from another validator set's epoch");
                Ok(Some(Verdict::Faulty))
            }
            Speculation::Valid { .. } => Ok(Some(Verdict::Valid)),
            Speculation::Invalid(height, reason) => {
                warn!(target: "agora::chain", %payload, height, %reason, "rejected proposed block");
                Ok(Some(Verdict::Faulty))
            }
        }
    }

    /// Executes every finalized block up to `target` not yet executed; `false` while a
    /// block on the way is missing (gossip is asked for it).
    fn execute_to(&self, target: Hash) -> Result<bool, Error> {
        let head = self.head();
        if target == head.hash || self.store.block_height(&target)?.is_some() {
            return Ok(true);
        }
        // Walk back from the finalized block to the executed head.
        match self.unexecuted_chain(&head, target)? {
            Chain::Blocks(chain) => {
                for block in chain {
                    self.execute(block)?;
                }
                Ok(true)
            }
            Chain::Missing | Chain::Moved => Ok(false),
            Chain::Fork => Err(Error::Fatal(format!(
                "finalized block {target} does not extend the executed head"
            ))),
        }
    }

    /// Executes up to the latest finalized block; `false` while a block on the way is missing.
    fn apply_finalized(&self) -> Result<bool, Error> {
        let Some(target) = *lock(&self.finalized) else {
            return Ok(true);
        };
        let done = self.execute_to(target)?;
        if done {
            let mut finalized = lock(&self.finalized);
            if *finalized == Some(target) {
                *finalized = None;
            }
        }
        Ok(done)
    }

    /// Stores a block a peer sent, if this node may need it.
    fn receive_block(&self, bytes: &[u8]) -> Result<(), Invalid> {
        let block: Block =
            agora_types::decode(bytes).map_err(|err| Invalid::Payload(format!("block: {err}")))?;
        if block.header.tx_root != tx_root(&block.txs) {
            return Err(Invalid::Payload("block: transaction root mismatch".into()));
        }
        let hash = block.hash();
        let head = self.head();
        let wanted = lock(&self.missing).contains(&hash);
        // Unrequested blocks are kept only near the tip; old ones cannot be finalized.
        let near = block.header.height > head.height
            && block.header.height <= head.height.saturating_add(MAX_AHEAD);
        if !(wanted || near) {
            return Ok(());
        }
        let stored = self.store.candidate(&hash).and_then(|known| match known {
            Some(_) => Ok(hash),
            None => self.store.put_candidate(&block),
        });
        match stored {
            Ok(_) => {
                lock(&self.missing).remove(&hash);
                let parent = block.header.parent;
                let parent_known =
                    parent == head.hash || !matches!(self.lookup_block(&parent), Ok(None));
                if !parent_known {
                    // Walking back to the executed head: its parent comes next; until it
                    // arrives no chain is complete, so there is nothing to execute.
                    if wanted && block.header.height > head.height.saturating_add(1) {
                        self.want(parent);
                    }
                    return Ok(());
                }
                if self.inline_apply {
                    if let Err(err) = self.apply_finalized() {
                        self.set_fatal(err.to_string());
                    }
                } else {
                    self.finalized_signal.notify_all();
                }
            }
            Err(err) => self.set_fatal(err.to_string()),
        }
        Ok(())
    }

    /// Admits a transaction a peer passed on; one the mempool refuses is dropped.
    fn receive_tx(&self, bytes: &[u8]) -> Result<(), Invalid> {
        let tx = SignedTx::from_bytes(bytes)
            .map_err(|err| Invalid::Payload(format!("transaction: {err}")))?;
        let hash = tx.hash();
        if let Err(err) = self.admit(tx, hash) {
            debug!(target: "agora::chain", %hash, reason = %err.message, "gossiped transaction not admitted");
        }
        Ok(())
    }

    fn execute(&self, block: Block) -> Result<(), Error> {
        let started = Instant::now();
        let snapshot = self.store.snapshot()?;
        let mut overlay = Overlay::new(&snapshot);
        let epoch_before = set_epoch(&overlay)?;
        let outcome = agora_ledger::apply_block(&mut overlay, &block)
            .map_err(|err| Error::Ledger(format!("block {}: {err}", block.header.height)))?;
        let ends_epoch = set_epoch(&overlay)? > epoch_before;
        let writes = overlay.into_changes();
        let outcomes: Vec<TxOutcome> = outcome
            .txs
            .iter()
            .map(|tx| match &tx.result {
                Ok(()) => TxOutcome {
                    success: true,
                    error: None,
                },
                Err(err) => TxOutcome {
                    success: false,
                    error: Some(err.to_string()),
                },
            })
            .collect();
        let previous = self.head();
        let head = HeadRecord {
            height: block.header.height,
            hash: block.hash(),
            state_root: outcome.state_root,
            timestamp_ms: block.header.timestamp_ms,
        };
        let stored = StoredBlock {
            block,
            result_root: outcome.state_root,
            outcomes,
        };
        self.store.commit_block(&stored, &head, &writes)?;
        let certificate = lock(&self.certificate)
            .clone()
            .filter(|(epoch, hash, _)| *epoch == epoch_before && *hash == head.hash);
        if let Some((epoch, _, certificate)) = certificate {
            let finality = Finality {
                epoch,
                height: head.height,
                certificate,
            };
            if ends_epoch {
                // It lets a node that missed the boundary go on (see `consensus::gossip`).
                self.store
                    .put_epoch_end(epoch, &agora_types::encode(&finality))?;
            }
            *lock(&self.finality) = Some(finality);
        }
        if ends_epoch {
            info!(target: "agora::chain", height = head.height, epoch = epoch_before + 1, "validator set changes after this block");
        }
        *self
            .head
            .write()
            .expect("invariant: node locks are never poisoned") = head.clone();

        // The state moved: drop mempool entries whose nonce is now used.
        let after = self.store.snapshot()?;
        {
            let mut mempool = lock(&self.mempool);
            let signers: HashSet<AccountId> = stored.block.txs.iter().map(|tx| tx.signer).collect();
            for signer in signers {
                mempool.prune(&signer, Self::next_nonce(&after, &signer));
            }
        }
        let n_txs = stored.block.txs.len() as u64;
        self.metrics.blocks.fetch_add(1, Ordering::Relaxed);
        self.metrics.txs.fetch_add(n_txs, Ordering::Relaxed);
        self.metrics.last_block_ms.store(
            head.timestamp_ms.saturating_sub(previous.timestamp_ms),
            Ordering::Relaxed,
        );
        lock(&self.metrics.recent).push_back((Instant::now(), n_txs));
        let _ = self.events.send(Arc::new(block_wire(&stored)));
        debug!(
            target: "agora::chain",
            height = head.height,
            txs = n_txs,
            state_root = %head.state_root,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "executed block"
        );
        Ok(())
    }

    fn applier_loop(&self) {
        let mut incomplete = false;
        loop {
            {
                let finalized = lock(&self.finalized);
                if self.stopping() {
                    return;
                }
                // Sleep until a finalization or a block arrives; poll while blocks are missing.
                if finalized.is_none() || incomplete {
                    // An arriving block that may complete the chain wakes this loop.
                    let wait = if incomplete { 250 } else { 100 };
                    let _unused = self
                        .finalized_signal
                        .wait_timeout(finalized, Duration::from_millis(wait))
                        .expect("invariant: node locks are never poisoned");
                }
            }
            if self.stopping() {
                return;
            }
            match self.apply_finalized() {
                Ok(done) => incomplete = !done,
                Err(err) => {
                    self.set_fatal(err.to_string());
                    return;
                }
            }
        }
    }
}

/// The unexecuted chain from the executed head to a block.
enum Chain {
    /// Every block is known; oldest first.
    Blocks(Vec<Block>),
    /// A block on the way is not known yet (and is now wanted from peers).
    Missing,
    /// The block does not descend from the executed head.
    Fork,
    /// The executed head moved while the chain was read; read it again.
    Moved,
}

/// The outcome of executing blocks speculatively.
enum Speculation {
    /// All executed; the tip's height, timestamp and post-state root, the validator-set
    /// epochs, and (when asked for) the mempool transactions that would go next.
    Valid {
        height: u64,
        timestamp_ms: u64,
        state_root: Hash,
        /// The validator-set epoch before the last block, and after it.
        parent_epoch: u64,
        epoch: u64,
        txs: Vec<SignedTx>,
    },
    /// The block at this height failed, for this reason.
    Invalid(u64, String),
}

/// Starts the block executor on its own thread.
pub(crate) fn spawn_applier(node: Arc<Node>) -> Result<std::thread::JoinHandle<()>, Error> {
    Ok(std::thread::Builder::new()
        .name("agora-apply".to_owned())
        .spawn(move || node.applier_loop())?)
}

impl App for Arc<Node> {
    fn pending(&self) -> usize {
        lock(&self.mempool).len()
    }

    fn timestamp(&self, digest: &Digest) -> Option<u64> {
        let hash = hash_of(digest);
        if hash == self.genesis_hash {
            return Some(self.genesis.timestamp_ms);
        }
        match self.lookup_block(&hash) {
            Ok(block) => block.map(|block| block.header.timestamp_ms),
            Err(err) => {
                self.set_fatal(err.to_string());
                None
            }
        }
    }

    fn build(&self, parent: Digest, timestamp_ms: u64, speculate: bool, epoch: u64) -> Build {
        if self.stopping() {
            return Build::Failed;
        }
        match self.build_block(hash_of(&parent), timestamp_ms, speculate, epoch) {
            Ok(build) => build,
            Err(err) => {
                self.set_fatal(err.to_string());
                Build::Failed
            }
        }
    }

    fn verify(
        &self,
        parent: Digest,
        payload: Digest,
        leader: &ed25519::PublicKey,
        now_ms: u64,
        epoch: u64,
    ) -> Option<Verdict> {
        let leader = AccountId(leader.as_ref().try_into().ok()?);
        match self.verify_block(hash_of(&parent), hash_of(&payload), leader, now_ms, epoch) {
            Ok(verdict) => verdict,
            Err(err) => {
                warn!(target: "agora::chain", %err, "verify failed");
                None
            }
        }
    }

    fn finalized(&self, payload: Digest, epoch: u64, certificate: Vec<u8>) {
        *lock(&self.certificate) = Some((epoch, hash_of(&payload), certificate));
        *lock(&self.finalized) = Some(hash_of(&payload));
        if self.inline_apply {
            if let Err(err) = self.apply_finalized() {
                self.set_fatal(err.to_string());
            }
        } else {
            self.finalized_signal.notify_all();
        }
    }

    fn ancestry(&self, digest: &Digest, max: usize, max_bytes: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut bytes = 0;
        let mut cursor = hash_of(digest);
        while out.len() < max && cursor != self.genesis_hash {
            let Ok(Some(block)) = self.lookup_block(&cursor) else {
                break;
            };
            let encoded = agora_types::encode(&block);
            bytes += encoded.len();
            if bytes > max_bytes && !out.is_empty() {
                break;
            }
            cursor = block.header.parent;
            out.push(encoded);
        }
        out
    }

    fn receive_block(&self, bytes: &[u8]) -> Result<(), Invalid> {
        Node::receive_block(self, bytes)
    }

    fn receive_tx(&self, bytes: &[u8]) -> Result<(), Invalid> {
        Node::receive_tx(self, bytes)
    }

    fn missing(&self) -> Vec<Digest> {
        lock(&self.missing).iter().map(digest).collect()
    }

    fn epoch_end(&self, epoch: u64) -> Option<Vec<u8>> {
        self.epoch_end_finality(epoch)
            .ok()
            .flatten()
            .map(|finality| finality.certificate)
    }

    fn validator_set(&self) -> Option<EpochSet> {
        match self.executed_validator_set() {
            Ok(set) => Some(set),
            Err(err) => {
                self.set_fatal(err.to_string());
                None
            }
        }
    }

    fn outgoing_txs(&self, again: bool) -> Vec<Vec<u8>> {
        if again {
            lock(&self.outgoing).clear();
            return lock(&self.mempool)
                .waiting(RESEND_MAX_TXS)
                .iter()
                .map(agora_types::encode)
                .collect();
        }
        std::mem::take(&mut *lock(&self.outgoing))
    }
}

fn model_wire(model: &agora_ledger::state::Model) -> wire::Model {
    let status = match model.status {
        agora_ledger::state::ModelStatus::Active => "active",
        agora_ledger::state::ModelStatus::Retired => "retired",
    };
    wire::Model::from_core(&model.info, status)
}

fn proposal_kind(kind: &agora_types::ProposalKind) -> String {
    use agora_types::ProposalKind;
    match kind {
        ProposalKind::AddModel(info) => format!("add model {} ({})", info.name.as_str(), info.cid),
        ProposalKind::ReplaceModel { old, new } => {
            format!(
                "replace model {old} with {} ({})",
                new.name.as_str(),
                new.cid
            )
        }
        ProposalKind::RetireModel { cid } => format!("retire model {cid}"),
        ProposalKind::SetParam { name, value } => format!("set {} = {value}", name.as_str()),
        ProposalKind::SetSafetyPolicy { cid } => format!("set safety policy {cid}"),
        ProposalKind::Text { text } => format!("text: {}", text.as_str()),
    }
}

fn proposal_wire(proposal: &agora_ledger::state::Proposal) -> wire::Proposal {
    wire::Proposal {
        id: proposal.id,
        proposer: proposal.proposer.to_string(),
        kind: proposal_kind(&proposal.kind),
        deposit: proposal.deposit.to_string(),
        status: format!("{:?}", proposal.status).to_lowercase(),
        voting_end_height: proposal.end_height,
        yes: proposal.tally.yes.to_string(),
        no: proposal.tally.no.to_string(),
        abstain: proposal.tally.abstain.to_string(),
    }
}

fn channel_wire(channel: &agora_ledger::state::Channel) -> wire::Channel {
    wire::Channel::from_core(
        &channel.id,
        &channel.payer,
        &channel.payee,
        channel.deposit,
        channel.redeemed,
        channel.expiry_height,
    )
}

fn dispute_wire(dispute: &agora_ledger::state::Dispute) -> wire::Dispute {
    use agora_ledger::state::DisputeStatus;
    let receipt = &dispute.receipt.receipt;
    let (status, outcome) = match &dispute.status {
        DisputeStatus::Open => ("open", None),
        DisputeStatus::Resolved(o) => (
            "resolved",
            Some(wire::DisputeOutcome {
                fraud: o.fraud,
                fraud_stake: o.fraud_stake.to_string(),
                committee_stake: o.committee_stake.to_string(),
                slashed: o.slashed.to_string(),
                refunded: o.refunded.to_string(),
                reward: o.reward.to_string(),
                bond_returned: o.bond_returned.to_string(),
                burned: o.burned.to_string(),
            }),
        ),
    };
    wire::Dispute {
        id: dispute.id.to_hex(),
        provider: receipt.provider.to_string(),
        payer: receipt.payer.to_string(),
        charge: receipt.charge().unwrap_or(u128::MAX).to_string(),
        receipt: hex::encode(agora_types::encoding::encode(&dispute.receipt)),
        transcript: dispute.transcript.to_string(),
        challenger: dispute.challenger.to_string(),
        bond: dispute.bond.to_string(),
        opened_height: dispute.opened_height,
        deadline_height: dispute.deadline_height,
        committee: dispute
            .committee
            .iter()
            .map(|m| wire::CommitteeMember {
                account: m.account.to_string(),
                stake: m.stake.to_string(),
                vote: m.vote,
            })
            .collect(),
        status: status.into(),
        outcome,
    }
}

fn receipt_commitment_wire(
    commitment: &agora_ledger::state::ReceiptCommitment,
) -> wire::ReceiptCommitment {
    wire::ReceiptCommitment::from_core(
        &commitment.provider,
        commitment.epoch,
        &commitment.root,
        &commitment.totals,
        commitment.height,
    )
}

fn block_wire(stored: &StoredBlock) -> wire::Block {
    let txs = stored
        .block
        .txs
        .iter()
        .zip(&stored.outcomes)
        .map(|(tx, outcome)| wire::BlockTx {
            hash: tx.hash().to_hex(),
            signer: tx.signer.to_string(),
            nonce: tx.nonce,
            fee: tx.fee.to_string(),
            kind: wire::tx_kind(&tx.body).to_owned(),
            success: outcome.success,
            error: outcome.error.clone(),
        })
        .collect();
    wire::Block::from_header(&stored.block.header, &stored.result_root, txs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &std::path::Path) -> (Node, Keypair) {
        let key = Keypair::from_seed(b"unit-validator");
        let other = Keypair::from_seed(b"unit-other");
        let genesis = crate::genesis::dev_validators(
            &ChainId::new("agora-unit").expect("chain id"),
            1_000,
            &[key.account_id(), other.account_id()],
            &[],
        );
        let config = Config::new(
            dir.to_path_buf(),
            genesis,
            key.clone(),
            "127.0.0.1:0".parse().expect("addr"),
        );
        (Node::open(&config).expect("open"), key)
    }

    fn built(node: &Node, parent: Hash) -> Block {
        let Build::Built(digest) = node.build_block(parent, 2_000, true, 0).expect("build") else {
            panic!("no block built");
        };
        node.store
            .candidate(&hash_of(&digest))
            .expect("store")
            .expect("candidate")
    }

    #[test]
    fn a_proposal_is_accepted_only_with_the_true_state_root_proposer_and_parent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (node, key) = open(dir.path());
        let genesis = node.genesis_hash();
        let good = built(&node, genesis);
        let me = key.account_id();
        let verify = |block: &Block, leader: AccountId| {
            let hash = node.store.put_candidate(block).expect("store");
            node.verify_block(genesis, hash, leader, 10_000, 0)
                .expect("verify")
        };
        assert_eq!(verify(&good, me), Some(Verdict::Valid));
        let hash = good.hash();
        assert_eq!(
            node.verify_block(genesis, hash, me, 10_000, 1)
                .expect("verify"),
            Some(Verdict::Faulty),
            "a block of epoch 0 offered to epoch 1's engine"
        );
        assert_eq!(
            node.verify_block(genesis, genesis, me, 10_000, 0)
                .expect("verify"),
            Some(Verdict::Faulty),
            "a re-proposal of a block that did not end the epoch"
        );

        let mut wrong_root = good.clone();
        wrong_root.header.state_root = Hash([7; 32]);
        assert_eq!(
            verify(&wrong_root, me),
            Some(Verdict::Faulty),
            "wrong state root"
        );

        let other = Keypair::from_seed(b"unit-other").account_id();
        assert_eq!(
            verify(&good, other),
            Some(Verdict::Faulty),
            "not the leader's block"
        );

        let mut far_future = good.clone();
        far_future.header.timestamp_ms = 10_000 + MAX_CLOCK_DRIFT_MS + 1;
        assert_eq!(verify(&far_future, me), None, "ahead of the clock: wait");

        let mut orphan = good.clone();
        orphan.header.parent = Hash([9; 32]);
        orphan.header.height = 2;
        let hash = node.store.put_candidate(&orphan).expect("store");
        assert_eq!(
            node.verify_block(Hash([9; 32]), hash, me, 10_000, 0)
                .expect("verify"),
            None,
            "unknown parent: wait and ask peers"
        );
        assert!(lock(&node.missing).contains(&Hash([9; 32])));
    }

    #[test]
    fn garbage_and_inconsistent_blocks_from_peers_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (node, _) = open(dir.path());
        assert!(node.receive_block(b"\x01\x02garbage").is_err());
        let mut block = built(&node, node.genesis_hash());
        block.txs.push(SignedTx::sign(
            &Keypair::from_seed(b"unit-other"),
            &node.chain_id,
            0,
            1,
            agora_types::TxBody::Transfer {
                to: node.proposer,
                amount: 1,
            },
        ));
        let bytes = agora_types::encode(&block);
        assert!(
            node.receive_block(&bytes).is_err(),
            "a block whose txs do not match its tx root"
        );
        assert!(node.receive_tx(b"not a transaction").is_err());
        // An oversized message never decodes.
        let huge = vec![0u8; agora_types::MAX_BLOCK_BYTES + 1];
        assert!(node.receive_block(&huge).is_err());
    }
}
