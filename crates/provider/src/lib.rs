//! Agora's provider daemon: serves models over the OpenAI API on Agora's inference engine.
//!
//! # Entry points
//! [`run`] loads the configured models and serves until `shutdown` resolves; [`Provider::router`]
//! gives the same routes for a caller that binds its own listener, and [`serve`] runs them.
//!
//! # Bad input
//! Every request is parsed by hand from bytes, so malformed JSON, wrong types, non-UTF-8 bytes
//! and oversized bodies all get OpenAI's error body with a 4xx status; nothing a client sends
//! can panic the server.

mod chat;
pub mod cheat;
mod error;
pub mod journal;
pub mod lifecycle;
mod metrics;
pub mod payments;

use std::{
    collections::BTreeMap,
    future::Future,
    net::SocketAddr,
    sync::{atomic::AtomicBool, Arc, RwLock},
    time::Duration,
};

use agora_engine::{Engine, EngineConfig};
use agora_types::{Amount, Cid, Hash};
use axum::{
    extract::{DefaultBodyLimit, State},
    http::header,
    response::IntoResponse,
    routing::{get, post},
    Json, Router,
};
use tokio::net::TcpListener;

pub use error::ApiError;
pub use payments::{LedgerConfig, Payments};

/// Largest request body accepted, in bytes.
pub const DEFAULT_MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// One model to serve.
#[derive(Clone, Debug)]
pub struct ModelConfig {
    /// The name clients use.
    pub name: String,
    /// The model's content id (clients may use it as the name too).
    pub cid: Cid,
    /// How to load and run it.
    pub engine: EngineConfig,
    /// Price per million prompt tokens (base units).
    pub price_in: Amount,
    /// Price per million completion tokens (base units).
    pub price_out: Amount,
}

/// How to run a provider.
#[derive(Clone, Debug)]
pub struct Config {
    /// Models to serve.
    pub models: Vec<ModelConfig>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Time limit for a request to produce its response headers.
    pub request_timeout: Duration,
    /// Registration, vouchers and receipts on the ledger; `None` serves for free, off-ledger.
    pub ledger: Option<LedgerConfig>,
    /// Cheat this way (tests and benchmarks of verifiers only; `None` is honest).
    pub cheat: Option<cheat::Cheat>,
    /// The blob store models live in; with it the provider serves `/blobs/{cid}` to peers.
    pub blobs: Option<agora_store::BlobStore>,
    /// Which governed models to follow (fetch, load, retire) besides `models`.
    pub follow: Option<lifecycle::Follow>,
}

/// What can stop a provider.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A model failed to load.
    #[error("model {name}: {source}")]
    Engine {
        /// The model's name.
        name: String,
        /// Why.
        source: agora_engine::Error,
    },
    /// The server failed.
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
    /// A blocking task failed.
    #[error("task: {0}")]
    Task(String),
    /// The ledger refused or could not be reached.
    #[error("ledger: {0}")]
    Ledger(String),
}

/// A served model: its name, CID and running engine.
pub struct ServedModel {
    /// The name clients use.
    pub name: String,
    /// The content id.
    pub cid: Cid,
    /// The engine serving it.
    pub engine: Arc<Engine>,
    /// Price per million prompt tokens (base units).
    pub price_in: Amount,
    /// Price per million completion tokens (base units).
    pub price_out: Amount,
    /// Retired on the ledger: no longer listed or offered, still answering requests already
    /// routed here until the grace period ends.
    pub retiring: AtomicBool,
}

impl ServedModel {
    /// A model served from now on.
    pub fn new(
        name: String,
        cid: Cid,
        engine: Engine,
        price_in: Amount,
        price_out: Amount,
    ) -> Self {
        ServedModel {
            name,
            cid,
            engine: Arc::new(engine),
            price_in,
            price_out,
            retiring: AtomicBool::new(false),
        }
    }

    fn is_retiring(&self) -> bool {
        self.retiring.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// What the provider offers on the ledger for this model.
    pub fn offer(&self) -> agora_types::ModelOffer {
        agora_types::ModelOffer {
            cid: self.cid,
            price_in: self.price_in,
            price_out: self.price_out,
        }
    }
}

/// The provider's shared state.
pub struct Provider {
    /// Served models by CID (a retiring model and its replacement may share a name).
    models: RwLock<BTreeMap<Cid, Arc<ServedModel>>>,
    blobs: Option<agora_store::BlobStore>,
    /// Governed models the lifecycle could not fetch or load, with the reason.
    failures: RwLock<BTreeMap<Cid, String>>,
    /// The safety policy governance adopted, as last fetched.
    pub policy: agora_policy::Governed,
    /// The region label this provider registers (the policy may limit models by region).
    region: String,
    max_body_bytes: usize,
    request_timeout: Duration,
    metrics: metrics::Metrics,
    payments: Option<Arc<Payments>>,
    cheat: Option<cheat::Cheat>,
}

impl Provider {
    /// A provider serving already-loaded models.
    pub fn new(models: Vec<ServedModel>, max_body_bytes: usize, request_timeout: Duration) -> Self {
        let models = models.into_iter().map(|m| (m.cid, Arc::new(m))).collect();
        Provider {
            models: RwLock::new(models),
            blobs: None,
            failures: RwLock::new(BTreeMap::new()),
            policy: agora_policy::Governed::default(),
            region: String::new(),
            max_body_bytes,
            request_timeout,
            metrics: metrics::Metrics::default(),
            payments: None,
            cheat: None,
        }
    }

    /// Cheats the way `cheat` says (tests and benchmarks of verifiers only).
    pub fn with_cheat(mut self, cheat: Option<cheat::Cheat>) -> Self {
        self.cheat = cheat;
        self
    }

    /// Requires a voucher with every request and signs a receipt for every answer.
    pub fn with_payments(mut self, payments: Arc<Payments>) -> Self {
        self.region = payments.region().to_owned();
        self.payments = Some(payments);
        self
    }

    /// Serves the blobs in `store` to peers at `/blobs/{cid}`.
    pub fn with_blobs(mut self, store: agora_store::BlobStore) -> Self {
        self.blobs = Some(store);
        self
    }

    /// Finds a model by CID or by name (a listed model before a retiring one of that name).
    fn model(&self, name: &str) -> Option<Arc<ServedModel>> {
        let models = self.models.read().unwrap_or_else(|e| e.into_inner());
        let mut named = models
            .values()
            .filter(|m| m.name == name || m.cid.to_string() == name);
        let first = named.next()?;
        if !first.is_retiring() {
            return Some(Arc::clone(first));
        }
        Some(Arc::clone(
            named.find(|m| !m.is_retiring()).unwrap_or(first),
        ))
    }

    /// Every served model, retiring ones included.
    pub fn models(&self) -> Vec<Arc<ServedModel>> {
        let models = self.models.read().unwrap_or_else(|e| e.into_inner());
        models.values().cloned().collect()
    }

    /// What the provider offers on the ledger: its models that are not retiring.
    pub fn offers(&self) -> Vec<agora_types::ModelOffer> {
        self.models()
            .iter()
            .filter(|m| !m.is_retiring())
            .map(|m| m.offer())
            .collect()
    }

    /// Starts serving `model` (replacing one with the same CID).
    pub fn insert_model(&self, model: ServedModel) {
        let cid = model.cid;
        let mut models = self.models.write().unwrap_or_else(|e| e.into_inner());
        models.insert(cid, Arc::new(model));
        let mut failures = self.failures.write().unwrap_or_else(|e| e.into_inner());
        failures.remove(&cid);
    }

    /// Stops serving the model `cid`; requests holding it finish first.
    pub fn remove_model(&self, cid: &Cid) -> Option<Arc<ServedModel>> {
        let mut models = self.models.write().unwrap_or_else(|e| e.into_inner());
        models.remove(cid)
    }

    /// Records that the governed model `cid` could not be fetched or loaded.
    pub fn record_failure(&self, cid: Cid, reason: String) {
        let mut failures = self.failures.write().unwrap_or_else(|e| e.into_inner());
        failures.insert(cid, reason);
    }

    /// The HTTP routes.
    pub fn router(self: Arc<Self>) -> Router {
        let timeout = self.request_timeout;
        let blobs = self
            .blobs
            .clone()
            .map(|store| agora_store::serve::routes(agora_store::serve::BlobServer::new(store)));
        let router = Router::new()
            .route("/v1/models", get(list_models))
            .route("/v1/chat/completions", post(chat::completions))
            .route("/health", get(health))
            .route("/agora/receipts/{id}/proof", get(receipt_proof))
            .route("/metrics", get(metrics_text))
            .fallback(not_found)
            // `chat::read_body` enforces the limit itself so that the answer is OpenAI-shaped.
            .layer(DefaultBodyLimit::disable())
            .layer(tower_http::timeout::TimeoutLayer::with_status_code(
                axum::http::StatusCode::REQUEST_TIMEOUT,
                timeout,
            ))
            .with_state(self);
        match blobs {
            Some(blobs) => router.merge(blobs),
            None => router,
        }
    }
}

/// Loads every model in `config` and serves on `listener` until `shutdown` resolves.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let payments = match config.ledger {
        None => None,
        Some(ledger) => Some(Payments::connect(ledger).await.map_err(Error::Ledger)?),
    };
    let offers: Vec<agora_types::ModelOffer> = config
        .models
        .iter()
        .map(|m| agora_types::ModelOffer {
            cid: m.cid,
            price_in: m.price_in,
            price_out: m.price_out,
        })
        .collect();
    if let Some(payments) = &payments {
        payments
            .ensure_registered(&offers)
            .await
            .map_err(Error::Ledger)?;
    }
    let mut served = Vec::new();
    for model in config.models {
        let name = model.name.clone();
        let engine = tokio::task::spawn_blocking(move || Engine::load(model.engine))
            .await
            .map_err(|err| Error::Task(err.to_string()))?
            .map_err(|source| Error::Engine {
                name: name.clone(),
                source,
            })?;
        tracing::info!(target: "agora::provider", model = %name, cid = %model.cid, "model loaded");
        served.push(ServedModel::new(
            name,
            model.cid,
            engine,
            model.price_in,
            model.price_out,
        ));
    }
    let mut provider = Provider::new(served, config.max_body_bytes, config.request_timeout)
        .with_cheat(config.cheat);
    if let Some(blobs) = config.blobs.clone() {
        provider = provider.with_blobs(blobs);
    }
    let Some(payments) = payments else {
        return serve(Arc::new(provider), listener, shutdown).await;
    };
    let provider = Arc::new(provider.with_payments(Arc::clone(&payments)));
    // The settlement loop outlives the server by one last redeem and commit.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let settle = {
        let provider = Arc::clone(&provider);
        tokio::spawn(Arc::clone(&payments).run(move || provider.offers(), stopped.clone()))
    };
    let policy = config.blobs.clone().map(|blobs| {
        tokio::spawn(follow_policy(
            Arc::clone(&provider),
            Arc::clone(&payments),
            blobs,
            stopped.clone(),
        ))
    });
    let follow = match (config.follow, config.blobs) {
        (Some(follow), Some(blobs)) => Some(tokio::spawn(lifecycle::run(
            Arc::clone(&provider),
            payments,
            blobs,
            follow,
            stopped,
        ))),
        _ => None,
    };
    let served = serve(provider, listener, async move {
        shutdown.await;
        let _ = stop.send(true);
    })
    .await;
    let _ = settle.await;
    for task in [follow, policy].into_iter().flatten() {
        let _ = task.await;
    }
    served
}

/// Follows the safety policy the ledger names, each second, until `shutdown`
/// ([`agora_policy::Governed::follow`]).
async fn follow_policy(
    provider: Arc<Provider>,
    payments: Arc<Payments>,
    blobs: agora_store::BlobStore,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let fetcher = agora_store::fetch::Fetcher::new(blobs);
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        provider
            .policy
            .follow(payments.rpc(), &fetcher, Some(&payments.account()))
            .await;
    }
}

/// Serves `provider` on `listener` until `shutdown` resolves.
pub async fn serve(
    provider: Arc<Provider>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(target: "agora::provider", ?addr, "serving the OpenAI API");
    // Small SSE writes go out at once: Nagle's algorithm would hold each behind the last ACK.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, provider.router())
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

async fn list_models(State(provider): State<Arc<Provider>>) -> Json<agora_api::ModelList> {
    Json(agora_api::ModelList {
        object: "list".into(),
        data: provider
            .models()
            .iter()
            .filter(|m| !m.is_retiring())
            .map(|m| agora_api::Model {
                id: m.name.clone(),
                object: "model".into(),
                created: 0,
                owned_by: "agora".into(),
                cid: Some(m.cid.to_string()),
            })
            .collect(),
    })
}

async fn health(State(provider): State<Arc<Provider>>) -> Json<serde_json::Value> {
    let models: Vec<_> = provider
        .models()
        .iter()
        .map(|m| {
            let stats = m.engine.stats();
            serde_json::json!({
                "name": m.name,
                "cid": m.cid.to_string(),
                "active": stats.active,
                "queued": stats.queued,
                "retiring": m.is_retiring(),
            })
        })
        .collect();
    let failed: Vec<_> = provider
        .failures
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(cid, reason)| serde_json::json!({"cid": cid.to_string(), "error": reason}))
        .collect();
    Json(serde_json::json!({ "status": "ok", "models": models, "failed": failed }))
}

async fn metrics_text(State(provider): State<Arc<Provider>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        provider.metrics.render(&provider.models()),
    )
}

async fn receipt_proof(
    State(provider): State<Arc<Provider>>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let hash = Hash::from_hex(&id).ok_or_else(|| ApiError::bad("not a receipt id", None))?;
    let proof = provider
        .payments
        .as_ref()
        .and_then(|p| p.receipt_proof(&hash))
        .ok_or_else(|| ApiError::NotFound(format!("receipt {id} in a committed epoch")))?;
    Ok(Json(serde_json::json!({
        "epoch": proof.epoch,
        "root": proof.root.to_hex(),
        "proof": hex::encode(agora_types::encode(&proof.proof)),
    })))
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(uri.path().to_owned())
}
