//! The node's HTTP interface: JSON-RPC 2.0, the event stream, metrics and health.
//!
//! Routes: `POST /` (JSON-RPC 2.0, methods in [`agora_rpc::method`]),
//! `GET /events` (server-sent events, one `block` event per executed block),
//! `GET /metrics` (Prometheus text), `GET /health`, and for new nodes and followers
//! (borsh, [`crate::sync`]) `GET /state/snapshot`, `GET /sync/finality/{epoch}` and
//! `GET /sync/blocks/{from}/{to}`. A follower forwards `submit_tx` to the node it follows.
//! Request bodies are capped at [`MAX_BODY_BYTES`]; each request has a timeout.

use std::{convert::Infallible, sync::Arc, time::Duration};

use agora_rpc::{code, method, wire};
use axum::{
    body::Bytes,
    extract::{DefaultBodyLimit, Path, State},
    http::{header, StatusCode},
    response::{
        sse::{Event, KeepAlive, Sse},
        IntoResponse, Response,
    },
    routing::{get, post},
    Json, Router,
};
use futures::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::broadcast;
use tower_http::timeout::TimeoutLayer;

use crate::node::Node;

/// Largest request body accepted, in bytes (a hex transaction of the maximum size fits).
pub const MAX_BODY_BYTES: usize = 2 * agora_types::MAX_TX_BYTES + 4 * 1024;

/// A JSON-RPC failure: code and message.
pub(crate) struct RpcFailure {
    pub(crate) code: i64,
    pub(crate) message: String,
}

impl RpcFailure {
    pub(crate) fn new(code: i64, message: impl Into<String>) -> Self {
        RpcFailure {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn invalid_params(message: impl std::fmt::Display) -> Self {
        RpcFailure::new(code::INVALID_PARAMS, format!("invalid params: {message}"))
    }

    pub(crate) fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!(target: "agora::chain", %err, "rpc internal error");
        RpcFailure::new(code::INTERNAL_ERROR, "internal error")
    }
}

/// Builds the router over a running node.
pub(crate) fn app(node: Arc<Node>) -> Router {
    Router::new()
        .route("/", post(rpc))
        .route("/events", get(events))
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/state/snapshot", get(state_snapshot))
        .route("/sync/finality/{epoch}", get(sync_finality))
        .route("/sync/blocks/{from}/{to}", get(sync_blocks))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ))
        .with_state(node)
}

async fn health(State(node): State<Arc<Node>>) -> Response {
    match node.fatal() {
        None => (StatusCode::OK, "ok").into_response(),
        Some(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason).into_response(),
    }
}

/// The executed head and full state at one commit, for a new node's state sync.
async fn state_snapshot(State(node): State<Arc<Node>>) -> Response {
    borsh_answer(move || Ok(Some(node.state_snapshot()?.to_bytes()))).await
}

/// Borsh bytes from a blocking read: 200 with them, 404 for `None`, 500 on error.
async fn borsh_answer<F>(read: F) -> Response
where
    F: FnOnce() -> Result<Option<Vec<u8>>, crate::Error> + Send + 'static,
{
    let answer = tokio::task::spawn_blocking(read)
        .await
        .map_err(|err| err.to_string())
        .and_then(|read| read.map_err(|err| err.to_string()));
    match answer {
        Ok(Some(bytes)) => {
            ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response()
        }
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(err) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            RpcFailure::internal(err).message,
        )
            .into_response(),
    }
}

/// A follower's next certified block for validator-set `epoch`.
async fn sync_finality(State(node): State<Arc<Node>>, Path(epoch): Path<u64>) -> Response {
    borsh_answer(move || {
        Ok(node
            .finality(epoch)?
            .map(|finality| agora_types::encode(&finality)))
    })
    .await
}

/// Executed blocks from `from` to `to`, as a borsh list.
async fn sync_blocks(
    State(node): State<Arc<Node>>,
    Path((from, to)): Path<(u64, u64)>,
) -> Response {
    borsh_answer(move || Ok(Some(agora_types::encode(&node.sync_blocks(from, to)?)))).await
}

async fn metrics(State(node): State<Arc<Node>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        node.metrics_text(),
    )
        .into_response()
}

async fn events(
    State(node): State<Arc<Node>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let receiver = node.subscribe();
    let stream = futures::stream::unfold(receiver, |mut receiver| async move {
        loop {
            match receiver.recv().await {
                Ok(block) => {
                    let data = serde_json::to_string(&*block).unwrap_or_default();
                    let event = Event::default().event("block").data(data);
                    return Some((Ok(event), receiver));
                }
                // A slow reader skips blocks rather than holding the node back.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(stream.boxed()).keep_alive(KeepAlive::default())
}

fn response(id: Value, outcome: Result<Value, RpcFailure>) -> Json<wire::Response> {
    let (result, error) = match outcome {
        Ok(value) => (Some(value), None),
        Err(failure) => (
            None,
            Some(wire::RpcError {
                code: failure.code,
                message: failure.message,
            }),
        ),
    };
    Json(wire::Response {
        jsonrpc: "2.0".to_owned(),
        id,
        result,
        error,
    })
}

async fn rpc(State(node): State<Arc<Node>>, body: Bytes) -> Json<wire::Response> {
    let request: wire::Request = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(err) => {
            let code = if serde_json::from_slice::<Value>(&body).is_ok() {
                code::INVALID_REQUEST
            } else {
                code::PARSE_ERROR
            };
            return response(Value::Null, Err(RpcFailure::new(code, err.to_string())));
        }
    };
    if request.jsonrpc != "2.0" {
        let failure = RpcFailure::new(code::INVALID_REQUEST, "jsonrpc must be \"2.0\"");
        return response(request.id, Err(failure));
    }
    if request.method == method::SUBMIT_TX {
        if let Some(upstream) = node.upstream() {
            // A follower's mempool reaches no proposer: pass the transaction on.
            let outcome = match params::<wire::SubmitTxParams>(request.params) {
                Ok(p) => upstream
                    .call::<_, wire::SubmitTxResult>(method::SUBMIT_TX, p)
                    .await
                    .map_err(|err| match err.rpc() {
                        Some(rpc) => RpcFailure::new(rpc.code, rpc.message.clone()),
                        None => RpcFailure::new(
                            code::INTERNAL_ERROR,
                            format!("the node this one follows is unreachable: {err}"),
                        ),
                    })
                    .and_then(to_value),
                Err(failure) => Err(failure),
            };
            return response(request.id, outcome);
        }
    }
    // Storage reads and signature checks block; keep them off the async workers.
    let id = request.id.clone();
    let outcome =
        tokio::task::spawn_blocking(move || dispatch(&node, &request.method, request.params))
            .await
            .unwrap_or_else(|err| Err(RpcFailure::internal(err)));
    response(id, outcome)
}

fn params<T: DeserializeOwned>(value: Value) -> Result<T, RpcFailure> {
    serde_json::from_value(value).map_err(RpcFailure::invalid_params)
}

fn to_value<T: serde::Serialize>(value: T) -> Result<Value, RpcFailure> {
    serde_json::to_value(value).map_err(RpcFailure::internal)
}

fn dispatch(node: &Node, name: &str, raw: Value) -> Result<Value, RpcFailure> {
    match name {
        method::SUBMIT_TX => {
            let p: wire::SubmitTxParams = params(raw)?;
            to_value(node.submit_hex(&p.tx)?)
        }
        method::TX_STATUS => {
            let p: wire::HashParams = params(raw)?;
            to_value(node.tx_status(&p.hash)?)
        }
        method::ACCOUNT => {
            let p: wire::AccountParams = params(raw)?;
            to_value(node.account(&p.address)?)
        }
        method::PROVIDER => {
            let p: wire::AccountParams = params(raw)?;
            to_value(node.provider(&p.address)?)
        }
        method::PROVIDERS => to_value(node.providers()?),
        method::MODEL => {
            let p: wire::CidParams = params(raw)?;
            to_value(node.model(&p.cid)?)
        }
        method::MODELS => to_value(node.models()?),
        method::PROPOSAL => {
            let p: wire::ProposalParams = params(raw)?;
            to_value(node.proposal(p.id)?)
        }
        method::PROPOSALS => to_value(node.proposals()?),
        method::CHANNEL => {
            let p: wire::ChannelParams = params(raw)?;
            to_value(node.channel(&p.id)?)
        }
        method::CHANNELS => {
            let p: wire::ChannelsParams = if raw.is_null() {
                wire::ChannelsParams::default()
            } else {
                params(raw)?
            };
            to_value(node.channels(&p)?)
        }
        method::RECEIPT_COMMITMENT => {
            let p: wire::ReceiptCommitmentParams = params(raw)?;
            to_value(node.receipt_commitment(&p.provider, p.epoch)?)
        }
        method::BLOCK => {
            let p: wire::BlockParams = if raw.is_null() {
                wire::BlockParams::default()
            } else {
                params(raw)?
            };
            to_value(node.block(&p)?)
        }
        method::HEAD => to_value(node.head_wire()),
        method::PARAMS => to_value(node.params()?),
        method::SUPPLY => to_value(node.supply()?),
        method::VALIDATORS => to_value(node.validators()?),
        method::PROOF => {
            let p: wire::ProofParams = params(raw)?;
            to_value(node.proof(&p)?)
        }
        method::VERIFIERS => to_value(node.verifiers()?),
        method::SAFETY_POLICY => to_value(node.safety_policy()?),
        method::MODEL_STATS => {
            let p: wire::ModelStatsParams = params(raw)?;
            to_value(node.model_stats(&p)?)
        }
        method::DISPUTE => {
            let p: wire::DisputeParams = params(raw)?;
            to_value(node.dispute(&p.id)?)
        }
        method::DISPUTES => {
            let p: wire::DisputesParams = if raw.is_null() {
                wire::DisputesParams::default()
            } else {
                params(raw)?
            };
            to_value(node.disputes(&p)?)
        }
        method::EPOCH_REWARDS => {
            let p: wire::EpochParams = params(raw)?;
            to_value(node.epoch_rewards(p.epoch)?)
        }
        other => Err(RpcFailure::new(
            code::METHOD_NOT_FOUND,
            format!("unknown method {other}"),
        )),
    }
}
