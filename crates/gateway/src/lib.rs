//! Agora's gateway: the OpenAI API in front of the providers registered on the ledger.
//!
//! # Request path
//! [`chat`] authenticates the client (API key with credit, or an agent's own voucher), maps the
//! model name to its governed CID, plans the providers to try ([`routing`], with [`health`]),
//! pays each attempt with a voucher on the gateway's channel to that provider ([`payments`]),
//! streams the answer through, continues it on another provider when one dies mid-answer,
//! and keeps the provider's signed receipt with its transcript ([`receipts`]).
//!
//! # Background
//! [`run`] refreshes the registry from the ledger ([`directory`]) and probes every provider's
//! `/health` each `probe_interval`, so a provider in cooldown comes back as soon as it answers.
//! It also follows the node's block stream for the explorer ([`explorer::follow_chain`]).
//!
//! # Dashboard
//! `/` serves the dashboard ([`dashboard`]): static files embedded in the binary that read the
//! explorer's JSON under `/agora/…` ([`explorer`]) and chat through `/v1/chat/completions`.

mod chat;
pub mod dashboard;
pub mod directory;
mod error;
pub mod explorer;
pub mod health;
mod metrics;
pub mod payments;
pub mod receipts;
pub mod routing;
pub mod verification;

use std::{future::Future, path::PathBuf, sync::Arc, time::Duration};

use agora_types::{Amount, Keypair};
use axum::{
    extract::{DefaultBodyLimit, Path, State},
    http::header,
    response::IntoResponse,
    routing::{get, post},
    Json, Router,
};
use serde_json::{json, Value};
use tokio::net::TcpListener;

pub use error::ApiError;

/// Largest request body accepted, in bytes.
pub const DEFAULT_MAX_BODY_BYTES: usize = 2 * 1024 * 1024;
/// Base share of transcripts sent to verifiers: checking costs about half of serving on a CPU
/// (`bench/verification.sh`), so 5% keeps verification near 2.5% of the network's work.
pub const DEFAULT_VERIFY_RATE: f64 = 0.05;

/// How to run a gateway.
#[derive(Clone, Debug)]
pub struct Config {
    /// JSON-RPC URL of a ledger node.
    pub rpc_url: String,
    /// The gateway's key: the payer of its channels.
    pub keypair: Keypair,
    /// Folder for the gateway's state (credit, channels, receipts).
    pub data_dir: PathBuf,
    /// Deposit of each new channel (more when one request's quote needs it).
    pub channel_deposit: Amount,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// How long a provider may take to answer with headers before the next is tried.
    pub first_byte_timeout: Duration,
    /// Longest silence in the middle of a stream before the provider counts as dead.
    pub idle_timeout: Duration,
    /// How often providers are probed and the registry refreshed.
    pub probe_interval: Duration,
    /// Base share of transcripts sent to verifiers ([`verification`]); 0 sends none.
    pub verify_rate: f64,
}

impl Config {
    /// Defaults for everything but the ledger, the key and the data folder.
    pub fn new(rpc_url: impl Into<String>, keypair: Keypair, data_dir: PathBuf) -> Self {
        Config {
            rpc_url: rpc_url.into(),
            keypair,
            data_dir,
            channel_deposit: 10 * agora_types::UNITS_PER_AGR,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            first_byte_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30),
            probe_interval: Duration::from_secs(1),
            verify_rate: DEFAULT_VERIFY_RATE,
        }
    }
}

/// What can stop a gateway.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The ledger could not be reached.
    #[error("ledger: {0}")]
    Ledger(String),
    /// The wallet or receipt state could not be read or written.
    #[error("state: {0}")]
    State(String),
    /// The server failed.
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}

/// The gateway's shared state.
pub struct Gateway {
    config: Config,
    rpc: agora_rpc::Client,
    http: reqwest::Client,
    /// The registry as last read from the ledger.
    pub directory: directory::Directory,
    /// Provider health.
    pub health: health::HealthBook,
    /// Channels and client credit.
    pub wallet: Arc<payments::Wallet>,
    /// Receipts received.
    pub receipts: receipts::ReceiptStore,
    /// Recent blocks from the node's event stream.
    pub chain: explorer::ChainView,
    /// Which transcripts go to verifiers.
    pub verification: verification::Sampler,
    /// The safety policy governance adopted, as last fetched.
    pub policy: agora_policy::Governed,
    /// Fetches policy documents (and serves what it fetched to peers).
    blobs: agora_store::fetch::Fetcher,
    metrics: metrics::Metrics,
}

impl Gateway {
    /// Connects to the ledger, opens the wallet and receipt log, and reads the registry.
    pub async fn connect(config: Config) -> Result<Arc<Self>, Error> {
        let rpc =
            agora_rpc::Client::new(&config.rpc_url).map_err(|e| Error::Ledger(e.to_string()))?;
        let wallet = payments::Wallet::open(
            config.keypair.clone(),
            rpc.clone(),
            config.channel_deposit,
            config.data_dir.join("wallet.json"),
        )
        .await
        .map_err(|e| Error::State(e.to_string()))?;
        std::fs::create_dir_all(&config.data_dir)?;
        let receipts = receipts::ReceiptStore::open(Some(config.data_dir.join("receipts.jsonl")))?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| Error::State(e.to_string()))?;
        let blobs = agora_store::BlobStore::open(config.data_dir.join("blobs"))
            .map_err(|e| Error::State(e.to_string()))?;
        let gateway = Arc::new(Gateway {
            verification: verification::Sampler::new(config.verify_rate),
            config,
            rpc,
            http,
            directory: directory::Directory::default(),
            health: health::HealthBook::default(),
            wallet,
            receipts,
            chain: explorer::ChainView::default(),
            policy: agora_policy::Governed::default(),
            blobs: agora_store::fetch::Fetcher::new(blobs),
            metrics: metrics::Metrics::default(),
        });
        gateway
            .directory
            .refresh(&gateway.rpc)
            .await
            .map_err(|e| Error::Ledger(e.to_string()))?;
        Ok(gateway)
    }

    /// The HTTP routes.
    pub fn router(self: Arc<Self>) -> Router {
        let limit = self.config.max_body_bytes;
        let blobs = agora_store::serve::routes(agora_store::serve::BlobServer::new(
            self.blobs.store().clone(),
        ));
        Router::new()
            .route("/v1/models", get(list_models))
            .route("/v1/chat/completions", post(chat::completions))
            .route("/v1/receipts/{id}", get(receipt))
            .route("/agora/network", get(explorer::network))
            .route("/agora/providers", get(explorer::providers))
            .route("/agora/providers/{account}", get(explorer::provider))
            .route("/agora/models", get(explorer::models))
            .route("/agora/proposals", get(explorer::proposals))
            .route("/agora/verification", get(explorer::verification))
            .route("/agora/policy", get(policy))
            .route("/agora/receipts", get(explorer::receipts))
            .route("/agora/receipts/{id}", get(explorer::receipt))
            .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
            .route("/metrics", get(metrics_text))
            .merge(dashboard::router())
            .fallback(|uri: axum::http::Uri| async move { ApiError::NotFound(uri.path().into()) })
            .layer(DefaultBodyLimit::max(limit))
            .with_state(self)
            .merge(blobs)
    }

    /// Refreshes the registry and probes every provider once.
    pub async fn tick(&self) {
        if let Err(err) = self.directory.refresh(&self.rpc).await {
            tracing::warn!(target: "agora::gateway", %err, "registry refresh failed");
        }
        self.policy.follow(&self.rpc, &self.blobs, None).await;
        let probes = self.directory.providers().into_iter().map(|provider| async move {
            let url = format!("{}/health", provider.endpoint);
            let ok = matches!(
                self.http.get(url).timeout(Duration::from_secs(2)).send().await,
                Ok(r) if r.status().is_success()
            );
            if ok {
                self.health.probe_ok(&provider.account);
            } else if self.health.is_healthy(&provider.account) {
                tracing::warn!(target: "agora::gateway", provider = %provider.account, "probe failed");
                self.health.failure(&provider.account);
            }
        });
        futures::future::join_all(probes).await;
    }
}

/// `GET /agora/policy`: the safety policy in force, and a newer one that was refused.
async fn policy(State(gateway): State<Arc<Gateway>>) -> Json<agora_policy::Status> {
    Json(gateway.policy.status())
}

/// Connects and serves on `listener` until `shutdown` resolves.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let gateway = Gateway::connect(config).await?;
    serve(gateway, listener, shutdown).await
}

/// Serves `gateway` on `listener` until `shutdown` resolves, probing in the background.
pub async fn serve(
    gateway: Arc<Gateway>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let background = {
        let gateway = Arc::clone(&gateway);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(gateway.config.probe_interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                gateway.tick().await;
            }
        })
    };
    let follower = tokio::spawn(explorer::follow_chain(Arc::clone(&gateway)));
    let saver = {
        let wallet = Arc::clone(&gateway.wallet);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let wallet = Arc::clone(&wallet);
                let _ = tokio::task::spawn_blocking(move || wallet.flush()).await;
            }
        })
    };
    tracing::info!(target: "agora::gateway", addr = ?listener.local_addr().ok(), "serving the OpenAI API");
    // Small SSE writes go out at once: Nagle's algorithm would hold each behind the last ACK.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let served = axum::serve(listener, Arc::clone(&gateway).router())
        .with_graceful_shutdown(shutdown)
        .await;
    background.abort();
    follower.abort();
    saver.abort();
    gateway.wallet.flush();
    served?;
    Ok(())
}

async fn list_models(State(gateway): State<Arc<Gateway>>) -> Json<Value> {
    let data: Vec<Value> = gateway
        .directory
        .models()
        .into_iter()
        .map(|m| {
            let cheapest = m.candidates.iter().min_by_key(|c| c.price_total());
            json!({
                "id": m.name,
                "object": "model",
                "created": 0,
                "owned_by": "agora",
                "cid": m.cid.to_string(),
                "context_length": m.context_length,
                "providers": m.candidates.len(),
                "pricing": cheapest.map(|c| json!({
                    "prompt": c.price_in.to_string(),
                    "completion": c.price_out.to_string(),
                    "unit": "base units per million tokens",
                })),
            })
        })
        .collect();
    Json(json!({ "object": "list", "data": data }))
}

/// `GET /v1/receipts/{id}`: the receipt, its transcript and, once the provider committed its
/// epoch, the inclusion proof.
async fn receipt(
    State(gateway): State<Arc<Gateway>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let stored = explorer::stored_receipt(&gateway, &id)?;
    let inclusion = explorer::inclusion(&gateway, &stored).await;
    Ok(Json(explorer::receipt_body(&stored, inclusion)))
}

async fn metrics_text(State(gateway): State<Arc<Gateway>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        gateway.metrics.render(gateway.verification.counts()),
    )
}
