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
mod error;
mod metrics;

use std::{collections::BTreeMap, future::Future, net::SocketAddr, sync::Arc, time::Duration};

use agora_engine::{Engine, EngineConfig};
use agora_types::Cid;
use axum::{
    extract::{DefaultBodyLimit, State},
    http::header,
    response::IntoResponse,
    routing::{get, post},
    Json, Router,
};
use tokio::net::TcpListener;

pub use error::ApiError;

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
}

/// A served model: its name, CID and running engine.
pub struct ServedModel {
    /// The name clients use.
    pub name: String,
    /// The content id.
    pub cid: Cid,
    /// The engine serving it.
    pub engine: Arc<Engine>,
}

/// The provider's shared state.
pub struct Provider {
    models: BTreeMap<String, Arc<ServedModel>>,
    max_body_bytes: usize,
    request_timeout: Duration,
    metrics: metrics::Metrics,
}

impl Provider {
    /// A provider serving already-loaded models.
    pub fn new(models: Vec<ServedModel>, max_body_bytes: usize, request_timeout: Duration) -> Self {
        let models = models
            .into_iter()
            .map(|m| (m.name.clone(), Arc::new(m)))
            .collect();
        Provider {
            models,
            max_body_bytes,
            request_timeout,
            metrics: metrics::Metrics::default(),
        }
    }

    /// Finds a model by name or CID.
    fn model(&self, name: &str) -> Option<&Arc<ServedModel>> {
        self.models
            .get(name)
            .or_else(|| self.models.values().find(|m| m.cid.to_string() == name))
    }

    /// The HTTP routes.
    pub fn router(self: Arc<Self>) -> Router {
        let timeout = self.request_timeout;
        Router::new()
            .route("/v1/models", get(list_models))
            .route("/v1/chat/completions", post(chat::completions))
            .route("/health", get(health))
            .route("/metrics", get(metrics_text))
            .fallback(not_found)
            // `chat::read_body` enforces the limit itself so that the answer is OpenAI-shaped.
            .layer(DefaultBodyLimit::disable())
            .layer(tower_http::timeout::TimeoutLayer::with_status_code(
                axum::http::StatusCode::REQUEST_TIMEOUT,
                timeout,
            ))
            .with_state(self)
    }
}

/// Loads every model in `config` and serves on `listener` until `shutdown` resolves.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
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
        served.push(ServedModel {
            name,
            cid: model.cid,
            engine: Arc::new(engine),
        });
    }
    let provider = Arc::new(Provider::new(
        served,
        config.max_body_bytes,
        config.request_timeout,
    ));
    serve(provider, listener, shutdown).await
}

/// Serves `provider` on `listener` until `shutdown` resolves.
pub async fn serve(
    provider: Arc<Provider>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(target: "agora::provider", ?addr, "serving the OpenAI API");
    axum::serve(listener, provider.router())
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

async fn list_models(State(provider): State<Arc<Provider>>) -> Json<agora_api::ModelList> {
    Json(agora_api::ModelList {
        object: "list".into(),
        data: provider
            .models
            .values()
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
        .models
        .values()
        .map(|m| {
            let stats = m.engine.stats();
            serde_json::json!({
                "name": m.name,
                "cid": m.cid.to_string(),
                "active": stats.active,
                "queued": stats.queued,
            })
        })
        .collect();
    Json(serde_json::json!({ "status": "ok", "models": models }))
}

async fn metrics_text(State(provider): State<Arc<Provider>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        provider.metrics.render(&provider.models),
    )
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(uri.path().to_owned())
}
