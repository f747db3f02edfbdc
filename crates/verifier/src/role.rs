//! The verifier role (`agora verifier`, DESIGN §7): stakes and registers on the ledger, takes
//! transcripts from gateways, checks them, challenges the ones that fail, sits on the
//! committees of others' challenges, and commits and reveals quality scores each epoch.
//!
//! # Tasks
//! - **HTTP** ([`router`]): `POST /v1/transcripts` takes a transcript (canonical borsh bytes),
//!   refuses one that does not stand for its receipt, and queues it; `GET /blobs/{cid}`
//!   publishes the transcripts it challenged with; `GET /v1/checks` lists recent verdicts.
//! - **Checker**: one queue, one check at a time on the verifier's engine. A failed check is
//!   stored as a blob and challenged with the ledger's `challenge_bond`.
//! - **Dispute loop** (every `poll_interval`): votes on each open dispute whose committee names
//!   this verifier, after fetching the transcript from the challenger and checking it itself.
//! - **Quality loop** (every `poll_interval`, apart, so a slow provider never delays a vote):
//!   probes providers; commits its scores past the middle of each epoch and reveals them in the
//!   next.
//!
//! Every transaction goes through one lock, so nonces never race.

use std::{
    collections::{BTreeMap, HashSet, VecDeque},
    future::Future,
    path::PathBuf,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use agora_engine::{Engine, EngineConfig};
use agora_rpc::{wire, Client};
use agora_store::{serve::BlobServer, BlobStore};
use agora_types::{
    encode, score_commitment, transcript::MAX_TRANSCRIPT_BYTES, AccountId, Amount, Cid, Hash,
    Keypair, ProviderScore, Transcript, TxBody,
};
use axum::{
    body::Bytes,
    extract::{DefaultBodyLimit, Query, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use serde_json::{json, Value};
use tokio::{net::TcpListener, sync::mpsc};

use crate::{
    check_transcript,
    quality::QualityBook,
    transcript::{TranscriptCheck, TranscriptCheckError},
    Thresholds,
};

/// How long a transaction may take to commit.
const TX_TIMEOUT: Duration = Duration::from_secs(30);
/// Verdicts kept for `GET /v1/checks`.
const RECENT_CHECKS: usize = 256;
/// Receipt ids remembered as taken, so a transcript is checked once (the oldest are forgotten).
const SEEN_RECEIPTS: usize = 100_000;
/// Completion tokens of a paid probe request.
const PROBE_TOKENS: u32 = 16;
/// The prompt of a paid probe request.
const PROBE_PROMPT: &str = "In one sentence, what is a verifier?";

/// How to run a verifier.
#[derive(Clone, Debug)]
pub struct Config {
    /// JSON-RPC URL of a ledger node.
    pub rpc_url: String,
    /// The verifier's key: its account bonds, registers, challenges, votes and scores.
    pub keypair: Keypair,
    /// Public base URL gateways and other verifiers reach this verifier at.
    pub endpoint: String,
    /// Folder for the verifier's state (published transcripts, the probe wallet).
    pub data_dir: PathBuf,
    /// CID of the model the engine runs: only receipts for it are checked.
    pub model_cid: Cid,
    /// The engine.
    pub engine: EngineConfig,
    /// The check's thresholds.
    pub thresholds: Thresholds,
    /// Stake to keep bonded (at least the ledger's `min_stake` either way).
    pub stake: Amount,
    /// How often the ledger is read (disputes, epochs, probes).
    pub poll_interval: Duration,
    /// Transcripts that may wait for a check before new ones get 429.
    pub queue_capacity: usize,
    /// Send each provider one paid probe request per epoch to time it (first token,
    /// throughput); without, scores rest on uptime and checks.
    pub paid_probes: bool,
}

impl Config {
    /// Defaults for everything but the ledger, the key, the endpoint, the data folder and the
    /// model.
    pub fn new(
        rpc_url: impl Into<String>,
        keypair: Keypair,
        endpoint: impl Into<String>,
        data_dir: PathBuf,
        model_cid: Cid,
        engine: EngineConfig,
    ) -> Self {
        Config {
            rpc_url: rpc_url.into(),
            keypair,
            endpoint: endpoint.into(),
            data_dir,
            model_cid,
            engine,
            thresholds: Thresholds::default(),
            stake: 0,
            poll_interval: Duration::from_millis(500),
            queue_capacity: 256,
            paid_probes: true,
        }
    }
}

/// What can stop a verifier.
#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    /// The ledger could not be reached or refused registration.
    #[error("ledger: {0}")]
    Ledger(String),
    /// The model could not be loaded.
    #[error("engine: {0}")]
    Engine(#[from] agora_engine::Error),
    /// The blob store failed.
    #[error("store: {0}")]
    Store(#[from] agora_store::Error),
    /// The server failed.
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}

/// One verdict, as `GET /v1/checks` lists it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CheckRecord {
    /// The receipt checked (hex id).
    pub receipt: String,
    /// Its provider.
    pub provider: String,
    /// `passed`, `failed` or `error` (could not be checked).
    pub result: &'static str,
    /// Why it failed, or the error.
    pub reason: String,
    /// Answer tokens checked.
    pub positions: usize,
    /// The likelihood z-score, for sampled answers.
    pub z: Option<f64>,
    /// Mean distance of the committed logits from the verifier's.
    pub logit_drift: Option<f32>,
    /// Time the check took, in milliseconds.
    pub ms: u64,
    /// Whether a challenge was submitted for it.
    pub challenged: bool,
}

#[derive(Default)]
struct Counters {
    received: AtomicU64,
    rejected: AtomicU64,
    passed: AtomicU64,
    failed: AtomicU64,
    errors: AtomicU64,
    challenges: AtomicU64,
    votes: AtomicU64,
    score_commits: AtomicU64,
    score_reveals: AtomicU64,
}

/// Scores committed for an epoch, to be revealed in the next.
struct Committed {
    scores: Vec<ProviderScore>,
    salt: Hash,
}

/// The last [`SEEN_RECEIPTS`] receipt ids taken.
#[derive(Default)]
struct Seen {
    ids: HashSet<Hash>,
    order: VecDeque<Hash>,
}

impl Seen {
    /// Remembers `id`; false when it was already remembered.
    fn insert(&mut self, id: Hash) -> bool {
        if !self.ids.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > SEEN_RECEIPTS {
            if let Some(old) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
        true
    }

    /// Forgets `id` (a transcript that could not be queued).
    fn remove(&mut self, id: &Hash) {
        if self.ids.remove(id) {
            self.order.retain(|x| x != id);
        }
    }
}

/// The verifier's shared state.
pub struct Verifier {
    config: Config,
    account: AccountId,
    rpc: Client,
    http: reqwest::Client,
    engine: Engine,
    blobs: BlobStore,
    jobs: mpsc::Sender<Transcript>,
    jobs_rx: Mutex<Option<mpsc::Receiver<Transcript>>>,
    /// Receipt ids queued or checked, so a transcript is checked once.
    seen: Mutex<Seen>,
    /// Open disputes this verifier voted on.
    voted: Mutex<HashSet<Hash>>,
    quality: Mutex<QualityBook>,
    committed: Mutex<BTreeMap<u64, Committed>>,
    recent: Mutex<VecDeque<CheckRecord>>,
    /// Last height read from the ledger.
    height: AtomicU64,
    /// Blocks per epoch, from the ledger's params.
    epoch_blocks: AtomicU64,
    tx_lock: tokio::sync::Mutex<()>,
    wallet: Option<Arc<agora_gateway::payments::Wallet>>,
    counters: Counters,
}

impl Verifier {
    /// Loads the model, bonds the stake and registers (or updates) the verifier's endpoint.
    pub async fn connect(config: Config) -> Result<Arc<Self>, RoleError> {
        let rpc = Client::new(&config.rpc_url).map_err(|e| RoleError::Ledger(e.to_string()))?;
        std::fs::create_dir_all(&config.data_dir)?;
        let blobs = BlobStore::open(config.data_dir.join("blobs"))?;
        let engine = Engine::load(config.engine.clone())?;
        let account = config.keypair.account_id();
        let wallet = if config.paid_probes {
            let wallet = agora_gateway::payments::Wallet::open(
                config.keypair.clone(),
                rpc.clone(),
                agora_types::UNITS_PER_AGR,
                config.data_dir.join("probe-wallet.json"),
            )
            .await
            .map_err(|e| RoleError::Ledger(e.to_string()))?;
            Some(wallet)
        } else {
            None
        };
        let (jobs, jobs_rx) = mpsc::channel(config.queue_capacity.max(1));
        let verifier = Arc::new(Verifier {
            account,
            rpc,
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(2))
                .build()
                .map_err(|e| RoleError::Ledger(e.to_string()))?,
            engine,
            blobs,
            jobs,
            jobs_rx: Mutex::new(Some(jobs_rx)),
            seen: Mutex::default(),
            voted: Mutex::default(),
            quality: Mutex::default(),
            committed: Mutex::default(),
            recent: Mutex::default(),
            height: AtomicU64::new(0),
            epoch_blocks: AtomicU64::new(1),
            tx_lock: tokio::sync::Mutex::new(()),
            wallet,
            counters: Counters::default(),
            config,
        });
        verifier.register().await?;
        Ok(verifier)
    }

    /// The verifier's account.
    pub fn account(&self) -> AccountId {
        self.account
    }

    /// Bonds up to the configured stake and registers the endpoint.
    async fn register(&self) -> Result<(), RoleError> {
        let ledger = |e: agora_rpc::Error| RoleError::Ledger(e.to_string());
        let params = self.rpc.params().await.map_err(ledger)?;
        let min_stake: Amount = wire::param(&params, "min_stake").unwrap_or(0);
        let bonded: Amount = self
            .rpc
            .account(&self.account)
            .await
            .map_err(ledger)?
            .bonded
            .parse()
            .unwrap_or(0);
        let target = self.config.stake.max(min_stake);
        if bonded < target {
            self.submit(TxBody::Bond {
                amount: target - bonded,
            })
            .await
            .map_err(RoleError::Ledger)?;
        }
        let registered = self.rpc.verifiers().await.map_err(ledger)?;
        let me = self.account.to_string();
        if !registered
            .iter()
            .any(|v| v.account == me && v.endpoint == self.config.endpoint)
        {
            let endpoint = self
                .config
                .endpoint
                .as_str()
                .try_into()
                .map_err(|_| RoleError::Ledger("endpoint URL too long".into()))?;
            self.submit(TxBody::RegisterVerifier { endpoint })
                .await
                .map_err(RoleError::Ledger)?;
        }
        tracing::info!(target: "agora::verifier", account = %self.account, endpoint = %self.config.endpoint, "registered on the ledger");
        Ok(())
    }

    /// Signs, submits and waits for one transaction; a failed body is an error.
    async fn submit(&self, body: TxBody) -> Result<(), String> {
        let _guard = self.tx_lock.lock().await;
        self.rpc
            .execute(&self.config.keypair, body, TX_TIMEOUT)
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    fn epoch(&self) -> u64 {
        self.height.load(Ordering::Relaxed) / self.epoch_blocks.load(Ordering::Relaxed).max(1)
    }

    /// Takes a transcript from a gateway: checks that it stands for its receipt and queues it.
    pub fn accept(&self, bytes: &[u8]) -> Result<Accepted, Rejected> {
        self.counters.received.fetch_add(1, Ordering::Relaxed);
        let result = self.admit(bytes);
        if result.is_err() {
            self.counters.rejected.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    fn admit(&self, bytes: &[u8]) -> Result<Accepted, Rejected> {
        let transcript = Transcript::from_bytes(bytes)
            .map_err(|e| Rejected::Malformed(format!("not a transcript: {e}")))?;
        transcript
            .check()
            .map_err(|e| Rejected::Malformed(e.to_string()))?;
        let receipt = &transcript.receipt.receipt;
        if receipt.model != self.config.model_cid {
            return Err(Rejected::OtherModel(receipt.model));
        }
        let id = receipt.id();
        if !lock(&self.seen).insert(id) {
            return Ok(Accepted::Duplicate(id));
        }
        match self.jobs.try_send(transcript) {
            Ok(()) => Ok(Accepted::Queued(id)),
            Err(_) => {
                lock(&self.seen).remove(&id);
                Err(Rejected::Busy)
            }
        }
    }

    /// Checks one queued transcript; challenges it when it fails.
    async fn check_one(&self, transcript: Transcript) {
        let receipt = &transcript.receipt.receipt;
        let (id, provider) = (receipt.id(), receipt.provider);
        let started = Instant::now();
        let checked = check_transcript(
            &self.engine,
            self.config.model_cid,
            &transcript,
            &self.config.thresholds,
        )
        .await;
        let mut record = CheckRecord {
            receipt: id.to_hex(),
            provider: provider.to_string(),
            result: "error",
            reason: String::new(),
            positions: 0,
            z: None,
            logit_drift: None,
            ms: started.elapsed().as_millis() as u64,
            challenged: false,
        };
        match checked {
            Ok(check) => {
                let fraud = check.fraud();
                lock(&self.quality).record_check(self.epoch(), provider, !fraud);
                record.positions = check.verdict.positions;
                record.z = check.verdict.z;
                record.logit_drift = check.verdict.logit_drift;
                if fraud {
                    self.counters.failed.fetch_add(1, Ordering::Relaxed);
                    record.result = "failed";
                    record.reason = check.reason();
                    tracing::warn!(target: "agora::verifier", receipt = %id, %provider, reason = %record.reason, "check failed; challenging");
                    match self.challenge(&transcript).await {
                        Ok(()) => record.challenged = true,
                        Err(err) => {
                            tracing::error!(target: "agora::verifier", receipt = %id, %err, "challenge failed")
                        }
                    }
                } else {
                    self.counters.passed.fetch_add(1, Ordering::Relaxed);
                    record.result = "passed";
                    tracing::debug!(target: "agora::verifier", receipt = %id, %provider, "check passed");
                }
            }
            Err(err) => {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                record.reason = err.to_string();
                tracing::warn!(target: "agora::verifier", receipt = %id, %err, "cannot check");
            }
        }
        let mut recent = lock(&self.recent);
        if recent.len() == RECENT_CHECKS {
            recent.pop_front();
        }
        recent.push_back(record);
    }

    /// Publishes the transcript as a blob and challenges its receipt with the ledger's bond.
    async fn challenge(&self, transcript: &Transcript) -> Result<(), String> {
        let bytes = transcript.to_bytes();
        let cid = self
            .blobs
            .import_reader(
                &mut bytes.as_slice(),
                None,
                bytes.len() as u64,
                &mut |_, _| {},
            )
            .map_err(|e| e.to_string())?;
        let params = self.rpc.params().await.map_err(|e| e.to_string())?;
        self.submit(TxBody::Challenge {
            receipt: transcript.receipt.clone(),
            transcript: cid,
            bond: wire::param(&params, "challenge_bond").unwrap_or(0),
        })
        .await?;
        self.counters.challenges.fetch_add(1, Ordering::Relaxed);
        tracing::info!(target: "agora::verifier", receipt = %transcript.receipt.receipt.id(), transcript = %cid, "challenge submitted");
        Ok(())
    }

    /// Reads the head and the epoch length (shared with the quality loop); the height, or
    /// `None` when the ledger is down.
    async fn follow_head(&self) -> Option<u64> {
        let head = match self.rpc.head().await {
            Ok(head) => head,
            Err(err) => {
                tracing::warn!(target: "agora::verifier", %err, "ledger unreachable");
                return None;
            }
        };
        self.height.store(head.height, Ordering::Relaxed);
        if let Ok(params) = self.rpc.params().await {
            let blocks: u64 = wire::param(&params, "epoch_blocks").unwrap_or(1);
            self.epoch_blocks.store(blocks.max(1), Ordering::Relaxed);
        }
        Some(head.height)
    }

    /// One pass of the dispute loop: votes on each open dispute this verifier sits on. It runs
    /// apart from probing, so a slow provider never holds a vote past its deadline.
    async fn disputes_tick(&self) {
        let Some(height) = self.follow_head().await else {
            return;
        };
        match self.rpc.disputes(true, None).await {
            Ok(disputes) => {
                lock(&self.voted).retain(|id| disputes.iter().any(|d| d.id == id.to_hex()));
                for dispute in &disputes {
                    self.judge(dispute, height).await;
                }
            }
            Err(err) => tracing::warn!(target: "agora::verifier", %err, "cannot read disputes"),
        }
    }

    /// One pass of the quality loop: probes, then commits or reveals scores at the height the
    /// dispute loop last read.
    async fn quality_tick(&self) {
        self.probe().await;
        self.scores(self.height.load(Ordering::Relaxed)).await;
    }

    /// Votes on `dispute` when this verifier sits on its committee and has not voted.
    async fn judge(&self, dispute: &wire::Dispute, height: u64) {
        let me = self.account.to_string();
        let pending = dispute
            .committee
            .iter()
            .any(|m| m.account == me && m.vote.is_none());
        let Some(id) = Hash::from_hex(&dispute.id) else {
            return;
        };
        if !pending || lock(&self.voted).contains(&id) {
            return;
        }
        let near_deadline = height.saturating_add(2) >= dispute.deadline_height;
        let verdict = match self.evidence(dispute).await {
            Ok(transcript) => match check_transcript(
                &self.engine,
                self.config.model_cid,
                &transcript,
                &self.config.thresholds,
            )
            .await
            {
                Ok(check) => Some((check.fraud(), describe(&check))),
                // The challenger's evidence does not stand for the receipt: no fraud proven.
                Err(TranscriptCheckError::Transcript(err)) => Some((false, err.to_string())),
                Err(err) => {
                    tracing::warn!(target: "agora::verifier", dispute = %id, %err, "cannot re-check the transcript");
                    near_deadline.then(|| (false, err.to_string()))
                }
            },
            Err(reason) => {
                tracing::warn!(target: "agora::verifier", dispute = %id, %reason, "cannot fetch the transcript");
                near_deadline.then(|| (false, format!("evidence unavailable: {reason}")))
            }
        };
        let Some((fraud, reason)) = verdict else {
            return;
        };
        match self
            .submit(TxBody::DisputeVote {
                dispute_id: id,
                fraud,
            })
            .await
        {
            Ok(()) => {
                lock(&self.voted).insert(id);
                self.counters.votes.fetch_add(1, Ordering::Relaxed);
                tracing::info!(target: "agora::verifier", dispute = %id, fraud, %reason, "voted");
            }
            Err(err) => {
                tracing::warn!(target: "agora::verifier", dispute = %id, %err, "vote failed")
            }
        }
    }

    /// The transcript a dispute names: from this verifier's store, or fetched from the
    /// challenger's `GET /blobs/{cid}` and checked against the CID and the disputed receipt.
    async fn evidence(&self, dispute: &wire::Dispute) -> Result<Transcript, String> {
        let cid: Cid = dispute
            .transcript
            .parse()
            .map_err(|_| "bad transcript CID")?;
        let bytes = if self.blobs.has(&cid) {
            std::fs::read(self.blobs.path(&cid)).map_err(|e| e.to_string())?
        } else {
            let verifiers = self.rpc.verifiers().await.map_err(|e| e.to_string())?;
            let challenger = verifiers
                .iter()
                .find(|v| v.account == dispute.challenger)
                .ok_or("the challenger is not a registered verifier")?;
            let url = format!("{}/blobs/{cid}", challenger.endpoint.trim_end_matches('/'));
            let response = self
                .http
                .get(&url)
                .timeout(Duration::from_secs(10))
                .send()
                .await
                .map_err(|e| format!("{url}: {e}"))?;
            if !response.status().is_success() {
                return Err(format!("{url}: {}", response.status()));
            }
            let bytes = read_capped(response, MAX_TRANSCRIPT_BYTES)
                .await
                .map_err(|e| format!("{url}: {e}"))?;
            self.blobs
                .import_reader(
                    &mut bytes.as_slice(),
                    Some(cid),
                    bytes.len() as u64,
                    &mut |_, _| {},
                )
                .map_err(|e| format!("{url}: {e}"))?;
            bytes
        };
        let transcript = Transcript::from_bytes(&bytes).map_err(|e| e.to_string())?;
        if hex::encode(encode(&transcript.receipt)) != dispute.receipt {
            return Err("the transcript is for another receipt".into());
        }
        Ok(transcript)
    }

    /// Probes every active provider's `/health`, and times a paid request to each not yet
    /// timed this epoch.
    async fn probe(&self) {
        let Ok(providers) = self.rpc.providers().await else {
            return;
        };
        let epoch = self.epoch();
        let model = self.config.model_cid.to_string();
        for provider in providers.iter().filter(|p| p.status == "active") {
            let Ok(account) = provider.operator.parse::<AccountId>() else {
                continue;
            };
            let endpoint = provider.endpoint.trim_end_matches('/');
            let ok = matches!(
                self.http
                    .get(format!("{endpoint}/health"))
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await,
                Ok(r) if r.status().is_success()
            );
            lock(&self.quality).record_probe(epoch, account, ok);
            let offer = provider.models.iter().find(|o| o.cid == model);
            let timed = lock(&self.quality).timed(epoch, &account);
            if let (true, false, Some(offer), Some(wallet)) = (ok, timed, offer, &self.wallet) {
                match self.timed_probe(wallet, account, endpoint, offer).await {
                    Ok((ttft_ms, tps)) => {
                        lock(&self.quality).record_timing(epoch, account, ttft_ms, tps)
                    }
                    Err(err) => {
                        tracing::debug!(target: "agora::verifier", %account, %err, "paid probe failed")
                    }
                }
            }
        }
        lock(&self.quality).prune_before(epoch.saturating_sub(2));
    }

    /// One paid, streamed probe request: time to first token (ms) and tokens per second.
    async fn timed_probe(
        &self,
        wallet: &agora_gateway::payments::Wallet,
        provider: AccountId,
        endpoint: &str,
        offer: &wire::ModelOffer,
    ) -> Result<(f64, f64), String> {
        let body = json!({
            "model": self.config.model_cid.to_string(),
            "messages": [{"role": "user", "content": PROBE_PROMPT}],
            "max_tokens": PROBE_TOKENS,
            "temperature": 0,
            "stream": true,
            "agora": {"token_ids": true},
        })
        .to_string();
        let quote = agora_gateway::payments::quote(
            body.len() as u64,
            u64::from(PROBE_TOKENS),
            offer.price_in.parse().map_err(|_| "bad price")?,
            offer.price_out.parse().map_err(|_| "bad price")?,
        );
        let voucher = {
            let _guard = self.tx_lock.lock().await;
            wallet
                .voucher_for(&provider, quote)
                .await
                .map_err(|e| e.to_string())?
        };
        let started = Instant::now();
        let result = stream_timing(&self.http, endpoint, &voucher, body, started).await;
        let charge = result.as_ref().map_or(quote, |t| t.charge.unwrap_or(quote));
        wallet.settle_channel(&provider, quote, charge);
        wallet.flush();
        let timing = result?;
        Ok((timing.ttft_ms, timing.tokens_per_s))
    }

    /// Commits this epoch's scores past its middle; reveals the last epoch's.
    async fn scores(&self, height: u64) {
        let blocks = self.epoch_blocks.load(Ordering::Relaxed).max(1);
        let epoch = height / blocks;
        let reveal = {
            let mut committed = lock(&self.committed);
            *committed = committed.split_off(&epoch.saturating_sub(1));
            epoch
                .checked_sub(1)
                .and_then(|last| committed.remove(&last).map(|c| (last, c)))
        };
        if let Some((last, committed)) = reveal {
            let body = TxBody::RevealScores {
                epoch: last,
                scores: match committed.scores.try_into() {
                    Ok(scores) => scores,
                    Err(_) => return,
                },
                salt: committed.salt,
            };
            match self.submit(body).await {
                Ok(()) => {
                    self.counters.score_reveals.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(target: "agora::verifier", epoch = last, "scores revealed");
                }
                Err(err) => {
                    tracing::warn!(target: "agora::verifier", epoch = last, %err, "reveal failed")
                }
            }
        }
        if height % blocks < blocks / 2 || lock(&self.committed).contains_key(&epoch) {
            return;
        }
        let mut scores = lock(&self.quality).scores(epoch);
        scores.truncate(agora_types::tx::MAX_SCORES);
        if scores.is_empty() {
            return;
        }
        let mut salt = [0u8; 32];
        rand::Rng::fill(&mut rand::thread_rng(), &mut salt);
        let salt = Hash(salt);
        let commitment = score_commitment(&self.account, epoch, &scores, &salt);
        match self
            .submit(TxBody::CommitScores { epoch, commitment })
            .await
        {
            Ok(()) => {
                self.counters.score_commits.fetch_add(1, Ordering::Relaxed);
                tracing::info!(target: "agora::verifier", epoch, providers = scores.len(), "scores committed");
                lock(&self.committed).insert(epoch, Committed { scores, salt });
            }
            Err(err) => tracing::warn!(target: "agora::verifier", epoch, %err, "commit failed"),
        }
    }

    fn metrics(&self) -> String {
        let c = &self.counters;
        let counters: [(&str, &str, &AtomicU64); 9] = [
            ("transcripts_received", "Transcripts posted by gateways.", &c.received),
            (
                "transcripts_rejected",
                "Transcripts refused (malformed, not standing for their receipt, other model, busy).",
                &c.rejected,
            ),
            ("checks_passed", "Checks passed.", &c.passed),
            ("checks_failed", "Checks failed.", &c.failed),
            ("check_errors", "Transcripts that could not be checked.", &c.errors),
            ("challenges", "Challenges submitted.", &c.challenges),
            ("votes", "Committee votes cast.", &c.votes),
            ("score_commits", "Score commitments.", &c.score_commits),
            ("score_reveals", "Score reveals.", &c.score_reveals),
        ];
        let mut out = String::new();
        for (name, help, value) in counters {
            out.push_str(&format!(
                "# HELP agora_verifier_{name}_total {help}\n# TYPE agora_verifier_{name}_total counter\nagora_verifier_{name}_total {}\n",
                value.load(Ordering::Relaxed)
            ));
        }
        out
    }
}

/// A transcript taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// Queued for a check.
    Queued(Hash),
    /// Already queued or checked.
    Duplicate(Hash),
}

/// Why a transcript was refused: none of these changes anything.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// Not a transcript, or one that does not stand for its receipt.
    #[error("{0}")]
    Malformed(String),
    /// A receipt for a model this verifier does not run.
    #[error("the receipt's model {0} is not checked here")]
    OtherModel(Cid),
    /// The check queue is full.
    #[error("the check queue is full; retry later")]
    Busy,
}

/// The verifier's HTTP routes.
pub fn router(verifier: Arc<Verifier>) -> Router {
    let blobs = agora_store::serve::routes(BlobServer::new(verifier.blobs.clone()));
    Router::new()
        .route("/v1/transcripts", post(post_transcript))
        .route("/v1/checks", get(checks))
        .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(MAX_TRANSCRIPT_BYTES + 1024))
        .with_state(verifier)
        .merge(blobs)
}

fn error(status: StatusCode, code: &str, message: String) -> Response {
    let kind = if status.is_client_error() {
        "invalid_request_error"
    } else {
        "server_error"
    };
    (
        status,
        Json(json!({"error": {"message": message, "type": kind, "param": null, "code": code}})),
    )
        .into_response()
}

async fn post_transcript(State(verifier): State<Arc<Verifier>>, body: Bytes) -> Response {
    match verifier.accept(&body) {
        Ok(Accepted::Queued(id)) => (
            StatusCode::ACCEPTED,
            Json(json!({"receipt": id.to_hex(), "status": "queued"})),
        )
            .into_response(),
        Ok(Accepted::Duplicate(id)) => (
            StatusCode::OK,
            Json(json!({"receipt": id.to_hex(), "status": "duplicate"})),
        )
            .into_response(),
        Err(err @ Rejected::Malformed(_)) => {
            error(StatusCode::BAD_REQUEST, "bad_transcript", err.to_string())
        }
        Err(err @ Rejected::OtherModel(_)) => error(
            StatusCode::BAD_REQUEST,
            "model_not_checked",
            err.to_string(),
        ),
        Err(err @ Rejected::Busy) => {
            let mut response = error(StatusCode::TOO_MANY_REQUESTS, "busy", err.to_string());
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            response
        }
    }
}

#[derive(serde::Deserialize)]
struct ChecksQuery {
    limit: Option<usize>,
}

async fn checks(
    State(verifier): State<Arc<Verifier>>,
    Query(query): Query<ChecksQuery>,
) -> Json<Value> {
    let limit = query.limit.unwrap_or(50).min(RECENT_CHECKS);
    let recent: Vec<CheckRecord> = lock(&verifier.recent)
        .iter()
        .rev()
        .take(limit)
        .cloned()
        .collect();
    Json(json!({"account": verifier.account.to_string(), "checks": recent}))
}

async fn metrics(State(verifier): State<Arc<Verifier>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        verifier.metrics(),
    )
}

/// Connects and serves on `listener` until `shutdown` resolves.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RoleError> {
    let verifier = Verifier::connect(config).await?;
    serve(verifier, listener, shutdown).await
}

/// Serves `verifier` on `listener`, checking and following the ledger in the background,
/// until `shutdown` resolves.
pub async fn serve(
    verifier: Arc<Verifier>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RoleError> {
    let checker = lock(&verifier.jobs_rx).take().map(|mut jobs| {
        let verifier = Arc::clone(&verifier);
        tokio::spawn(async move {
            while let Some(transcript) = jobs.recv().await {
                verifier.check_one(transcript).await;
            }
        })
    });
    let every_tick = |verifier: Arc<Verifier>, quality: bool| {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(verifier.config.poll_interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                if quality {
                    verifier.quality_tick().await;
                } else {
                    verifier.disputes_tick().await;
                }
            }
        })
    };
    let disputes = every_tick(Arc::clone(&verifier), false);
    let quality = every_tick(Arc::clone(&verifier), true);
    tracing::info!(target: "agora::verifier", addr = ?listener.local_addr().ok(), model = %verifier.config.model_cid, "verifier serving");
    let served = axum::serve(listener, router(Arc::clone(&verifier)))
        .with_graceful_shutdown(shutdown)
        .await;
    disputes.abort();
    quality.abort();
    if let Some(checker) = checker {
        checker.abort();
    }
    if let Some(wallet) = &verifier.wallet {
        wallet.flush();
    }
    served?;
    Ok(())
}

/// What a streamed probe measured.
struct Timing {
    ttft_ms: f64,
    tokens_per_s: f64,
    charge: Option<Amount>,
}

/// Sends a streamed chat request and times its events.
async fn stream_timing(
    http: &reqwest::Client,
    endpoint: &str,
    voucher: &str,
    body: String,
    started: Instant,
) -> Result<Timing, String> {
    use futures::StreamExt as _;
    let response = http
        .post(format!("{endpoint}/v1/chat/completions"))
        .header(agora_api::VOUCHER_HEADER, voucher)
        .header(header::CONTENT_TYPE.as_str(), "application/json")
        .body(body)
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("provider answered {}", response.status()));
    }
    let mut stream = response.bytes_stream();
    let mut buffer = Vec::new();
    let (mut first, mut last, mut tokens, mut charge) = (None, started, 0u64, None);
    while let Some(chunk) = stream.next().await {
        buffer.extend_from_slice(&chunk.map_err(|e| e.to_string())?);
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            let Some(data) = line.strip_prefix(b"data: ") else {
                continue;
            };
            let Ok(event) = serde_json::from_slice::<Value>(data.trim_ascii()) else {
                continue;
            };
            if let Some(ids) = event["agora"]["tokens"].as_array() {
                if !ids.is_empty() {
                    first.get_or_insert_with(Instant::now);
                    last = Instant::now();
                    tokens += ids.len() as u64;
                }
            }
            if let Some(text) = event["agora"]["receipt"]["charge"].as_str() {
                charge = text.parse().ok();
            }
        }
    }
    let first = first.ok_or("no token arrived")?;
    let decode_s = last.duration_since(first).as_secs_f64();
    Ok(Timing {
        ttft_ms: first.duration_since(started).as_secs_f64() * 1000.0,
        tokens_per_s: if decode_s > 0.0 {
            tokens.saturating_sub(1) as f64 / decode_s
        } else {
            0.0
        },
        charge,
    })
}

/// A response body of at most `limit` bytes.
async fn read_capped(response: reqwest::Response, limit: usize) -> Result<Vec<u8>, String> {
    use futures::StreamExt as _;
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err("larger than a transcript may be".into());
    }
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        body.extend_from_slice(&chunk.map_err(|e| e.to_string())?);
        if body.len() > limit {
            return Err("larger than a transcript may be".into());
        }
    }
    Ok(body)
}

/// One line about a check, for the vote's log.
fn describe(check: &TranscriptCheck) -> String {
    if check.fraud() {
        check.reason()
    } else {
        "the answer passes the check".into()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
