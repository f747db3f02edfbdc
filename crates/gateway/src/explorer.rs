//! The explorer's JSON under `/agora/…`: ledger data read through the gateway's RPC client,
//! joined with what only the gateway knows (provider health, receipts, usage).
//!
//! The dashboard ([`crate::dashboard`]) talks to these routes and to the OpenAI API only, so a
//! browser never reaches a node or a provider. Every route is described in `/openapi.json`.
//!
//! # A ledger that does not answer
//! Each ledger call is bounded by [`LEDGER_TIMEOUT`]. `/agora/network` and `/agora/providers`
//! still answer 200 when the node is down, with `"ledger": {"status": "unreachable"}` and
//! whatever the gateway last knew; the routes that are only ledger data (`/agora/models`,
//! `/agora/proposals`, `/agora/verification`) answer 503 with the error code
//! `ledger_unreachable`.
//!
//! # Live chain
//! [`follow_chain`] subscribes to the node's block stream (`GET /events`) and keeps the last
//! [`KEPT_BLOCKS`] block headers, from which the block time is measured. It resubscribes after
//! a failure.

use std::{
    collections::{BTreeMap, VecDeque},
    future::Future,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use agora_api::ReceiptJson;
use agora_rpc::wire;
use agora_types::{encoding, merkle, AccountId, Hash, MerkleProof};
use axum::{
    extract::{Path, Query, State},
    Json,
};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{receipts::StoredReceipt, receipts::Usage, ApiError, Gateway};

/// Longest wait for one ledger call made on behalf of a page.
pub const LEDGER_TIMEOUT: Duration = Duration::from_secs(3);
/// Block headers kept from the node's event stream.
pub const KEPT_BLOCKS: usize = 64;
/// Width of one usage bucket in `/agora/network`'s series.
const BUCKET_MS: u64 = 10_000;
/// Buckets in the series (five minutes).
const BUCKETS: usize = 30;
/// Most receipts one listing returns.
const MAX_LISTED: usize = 200;

/// The chain as the gateway last saw it through the node's event stream.
#[derive(Default)]
pub struct ChainView {
    blocks: Mutex<VecDeque<BlockSummary>>,
}

/// One block header, as kept by [`ChainView`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockSummary {
    /// Height.
    pub height: u64,
    /// Hash (hex).
    pub hash: String,
    /// Time (ms since the Unix epoch).
    pub timestamp_ms: u64,
    /// Transactions in it.
    pub txs: usize,
}

impl ChainView {
    /// Keeps a block (newer than the last kept one).
    pub fn push(&self, block: BlockSummary) {
        let mut blocks = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
        if blocks
            .back()
            .is_some_and(|last| last.height >= block.height)
        {
            return;
        }
        if blocks.len() >= KEPT_BLOCKS {
            blocks.pop_front();
        }
        blocks.push_back(block);
    }

    /// The blocks kept, oldest first.
    pub fn blocks(&self) -> Vec<BlockSummary> {
        let blocks = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
        blocks.iter().cloned().collect()
    }

    /// Mean time between the kept blocks, in milliseconds.
    pub fn block_time_ms(&self) -> Option<f64> {
        let blocks = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
        let (first, last) = (blocks.front()?, blocks.back()?);
        let n_intervals = last.height.checked_sub(first.height).filter(|n| *n > 0)?;
        let span = last.timestamp_ms.saturating_sub(first.timestamp_ms);
        Some(span as f64 / n_intervals as f64)
    }
}

/// Follows the node's block stream into `gateway`'s [`ChainView`] until the task is dropped.
pub async fn follow_chain(gateway: Arc<Gateway>) {
    loop {
        match gateway.rpc.events().await {
            Ok(mut stream) => {
                while let Some(item) = stream.next().await {
                    match item {
                        Ok(block) => gateway.chain.push(BlockSummary {
                            height: block.height,
                            hash: block.hash,
                            timestamp_ms: block.timestamp_ms,
                            txs: block.txs.len(),
                        }),
                        Err(err) => {
                            tracing::debug!(target: "agora::gateway", %err, "block stream broke");
                            break;
                        }
                    }
                }
            }
            Err(err) => {
                tracing::debug!(target: "agora::gateway", %err, "cannot subscribe to blocks")
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Runs one ledger call with [`LEDGER_TIMEOUT`].
async fn ledger<T>(call: impl Future<Output = Result<T, agora_rpc::Error>>) -> Result<T, ApiError> {
    match tokio::time::timeout(LEDGER_TIMEOUT, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(ApiError::LedgerUnavailable(describe(&err))),
        Err(_) => Err(ApiError::LedgerUnavailable(format!(
            "no answer within {LEDGER_TIMEOUT:?}"
        ))),
    }
}

/// Why a ledger call failed, without the node's address (pages are public, the node may not be).
fn describe(err: &agora_rpc::Error) -> String {
    match err {
        agora_rpc::Error::Http(err) if err.is_connect() => "cannot connect to the node".into(),
        agora_rpc::Error::Http(err) if err.is_timeout() => "the node timed out".into(),
        agora_rpc::Error::Http(err) => match err.status() {
            Some(status) => format!("the node answered {status}"),
            None => "the connection to the node failed".into(),
        },
        other => other.to_string(),
    }
}

fn ledger_state(error: Option<&ApiError>) -> Value {
    match error {
        None => json!({"status": "ok"}),
        Some(ApiError::LedgerUnavailable(why)) => json!({"status": "unreachable", "error": why}),
        Some(err) => json!({"status": "unreachable", "error": err.to_string()}),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn usage_json(usage: &Usage) -> Value {
    json!({
        "requests": usage.requests,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "tokens": usage.tokens(),
        "charge": usage.charge.to_string(),
    })
}

/// `GET /agora/network`: head, block time, validators, supply and the gateway's usage.
pub(crate) async fn network(State(gateway): State<Arc<Gateway>>) -> Json<Value> {
    let rpc = &gateway.rpc;
    let (head, supply, validators) = tokio::join!(
        ledger(rpc.head()),
        ledger(rpc.supply()),
        ledger(rpc.validators())
    );
    let error = [
        head.as_ref().err(),
        supply.as_ref().err(),
        validators.as_ref().err(),
    ]
    .into_iter()
    .flatten()
    .next();
    let blocks = gateway.chain.blocks();
    let chain = match &head {
        Ok(head) => json!({
            "chain_id": head.chain_id,
            "height": head.height,
            "hash": head.hash,
            "timestamp_ms": head.timestamp_ms,
            "mempool": head.mempool,
            "stale": false,
        }),
        // What the block stream last said, marked stale.
        Err(_) => match blocks.last() {
            Some(last) => json!({
                "height": last.height,
                "hash": last.hash,
                "timestamp_ms": last.timestamp_ms,
                "stale": true,
            }),
            None => Value::Null,
        },
    };
    let now = now_ms();
    let series = gateway.receipts.series(now, BUCKET_MS, BUCKETS);
    let last_minute = series
        .iter()
        .rev()
        .take((60_000 / BUCKET_MS) as usize)
        .fold(Usage::default(), |mut sum, bucket| {
            sum.requests += bucket.requests;
            sum.prompt_tokens += bucket.prompt_tokens;
            sum.completion_tokens += bucket.completion_tokens;
            sum.charge = sum.charge.saturating_add(bucket.charge);
            sum
        });
    let totals = gateway.receipts.totals();
    let span = BUCKET_MS * BUCKETS as u64;
    Json(json!({
        "now_ms": now,
        "ledger": ledger_state(error),
        "chain": chain,
        "block_time_ms": gateway.chain.block_time_ms(),
        "blocks": blocks.iter().rev().take(10).map(|b| json!({
            "height": b.height,
            "hash": b.hash,
            "timestamp_ms": b.timestamp_ms,
            "txs": b.txs,
        })).collect::<Vec<_>>(),
        "validators": validators.ok(),
        "supply": supply.ok(),
        "gateway": {
            "served": usage_json(&totals.all),
            "requests_per_minute": last_minute.requests,
            "tokens_per_minute": last_minute.tokens(),
        },
        "series": {
            "bucket_ms": BUCKET_MS,
            "start_ms": now.saturating_sub(span),
            "buckets": series.iter().map(usage_json).collect::<Vec<_>>(),
        },
    }))
}

/// `GET /agora/providers`: every provider on the ledger, with the gateway's health view and
/// what it served through this gateway; the registry's last copy when the ledger is down.
pub(crate) async fn providers(State(gateway): State<Arc<Gateway>>) -> Json<Value> {
    let (listed, error) = provider_list(&gateway).await;
    Json(json!({
        "ledger": ledger_state(error.as_ref()),
        "providers": listed,
    }))
}

/// `GET /agora/providers/{account}`: one provider with its recent receipts and health
/// transitions.
pub(crate) async fn provider(
    State(gateway): State<Arc<Gateway>>,
    Path(account): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id: AccountId = account
        .parse()
        .map_err(|_| ApiError::bad(format!("'{account}' is not an account"), None))?;
    let (listed, error) = provider_list(&gateway).await;
    let mut entry = listed
        .into_iter()
        .find(|p| p["account"] == account)
        .ok_or_else(|| ApiError::NotFound(format!("provider {account}")))?;
    let receipts: Vec<Value> = gateway
        .receipts
        .recent(50, |r| r.provider == account)
        .iter()
        .map(receipt_summary)
        .collect();
    let transitions: Vec<Value> = gateway
        .health
        .transitions(&id, 50)
        .iter()
        .map(|t| json!({"at_ms": t.at_ms, "healthy": t.healthy}))
        .collect();
    entry["receipts"] = receipts.into();
    entry["transitions"] = transitions.into();
    entry["ledger"] = ledger_state(error.as_ref());
    Ok(Json(entry))
}

async fn provider_list(gateway: &Gateway) -> (Vec<Value>, Option<ApiError>) {
    let (providers, models, disputes, rewards) = tokio::join!(
        ledger(gateway.rpc.providers()),
        ledger(gateway.rpc.models()),
        ledger(gateway.rpc.disputes(false, None)),
        latest_rewards(gateway)
    );
    let disputes = disputes.unwrap_or_default();
    let rewards = rewards.ok().flatten();
    let names: BTreeMap<String, String> = match &models {
        Ok(models) => models
            .iter()
            .map(|m| (m.cid.clone(), m.name.clone()))
            .collect(),
        Err(_) => gateway
            .directory
            .models()
            .into_iter()
            .map(|m| (m.cid.to_string(), m.name))
            .collect(),
    };
    let served = gateway.receipts.totals().by_provider;
    let now = std::time::Instant::now();
    let health = |account: &str| -> Value {
        let Ok(id) = account.parse::<AccountId>() else {
            return Value::Null;
        };
        let stats = gateway.health.stats(&id);
        json!({
            "healthy": !stats.cooling(now),
            "cooldown_ms": stats.cooldown_until.map_or(0, |t| t.saturating_duration_since(now).as_millis() as u64),
            "consecutive_failures": stats.consecutive_failures,
            "successes": stats.successes,
            "failures": stats.failures,
            "ttft_ms": stats.ttft_ms,
            "tokens_per_s": stats.tokens_per_s,
        })
    };
    let entry = |account: String, endpoint: String, offers: Vec<Value>, ledger: Value| {
        let mut value = health(&account);
        let cheapest = offers.iter().min_by_key(|o| {
            let price = |key: &str| o[key].as_str().and_then(|s| s.parse::<u128>().ok());
            price("price_in")
                .unwrap_or(u128::MAX)
                .saturating_add(price("price_out").unwrap_or(u128::MAX))
        });
        value["price_in"] = cheapest.map_or(Value::Null, |o| o["price_in"].clone());
        value["price_out"] = cheapest.map_or(Value::Null, |o| o["price_out"].clone());
        value["served"] = usage_json(&served.get(&account).cloned().unwrap_or_default());
        value["endpoint"] = endpoint.into();
        value["models"] = offers.into();
        value["quality"] = rewards.as_ref().map_or(Value::Null, |r| {
            r.providers
                .iter()
                .find(|p| p.provider == account)
                .map_or(Value::Null, |p| {
                    json!({
                        "epoch": r.epoch,
                        "score_ppm": p.consensus_ppm,
                        "tokens": p.tokens,
                        "reward": p.reward,
                    })
                })
        });
        let against: Vec<_> = disputes.iter().filter(|d| d.provider == account).collect();
        let settled = |fraud: bool| {
            against
                .iter()
                .filter(|d| d.outcome.as_ref().is_some_and(|o| o.fraud == fraud))
                .count()
        };
        value["checks"] = json!({
            "transcripts_sent": account
                .parse::<AccountId>()
                .map_or(0, |id| gateway.verification.sent_for(&id)),
            "disputes_open": against.iter().filter(|d| d.outcome.is_none()).count(),
            "disputes_fraud": settled(true),
            "disputes_dismissed": settled(false),
        });
        value["account"] = account.into();
        if let (Value::Object(map), Value::Object(extra)) = (&mut value, ledger) {
            map.extend(extra);
        }
        value
    };
    let offer = |cid: &str, price_in: &str, price_out: &str| {
        json!({
            "cid": cid,
            "name": names.get(cid),
            "price_in": price_in,
            "price_out": price_out,
        })
    };
    match providers {
        Ok(providers) => {
            let list = providers
                .iter()
                .map(|p| {
                    let offers = p
                        .models
                        .iter()
                        .map(|o| offer(&o.cid, &o.price_in, &o.price_out))
                        .collect();
                    entry(
                        p.operator.clone(),
                        p.endpoint.clone(),
                        offers,
                        json!({
                            "stake": p.stake,
                            "status": p.status,
                            "jailed": p.status == "jailed",
                            "region": p.region,
                            "hardware": p.hardware,
                        }),
                    )
                })
                .collect();
            (list, models.err())
        }
        Err(err) => {
            let mut list: Vec<Value> = Vec::new();
            for model in gateway.directory.models() {
                let cid = model.cid.to_string();
                for c in &model.candidates {
                    let account = c.account.to_string();
                    let offer = offer(&cid, &c.price_in.to_string(), &c.price_out.to_string());
                    match list.iter_mut().find(|p| p["account"] == account) {
                        Some(existing) => {
                            if let Some(models) = existing["models"].as_array_mut() {
                                models.push(offer);
                            }
                        }
                        None => list.push(entry(
                            account,
                            c.endpoint.clone(),
                            vec![offer],
                            json!({"stake": null, "status": "unknown", "jailed": null}),
                        )),
                    }
                }
            }
            (list, Some(err))
        }
    }
}

/// `GET /agora/models`: every model governance knows, with its providers, lowest price and the
/// demand seen by this gateway.
pub(crate) async fn models(State(gateway): State<Arc<Gateway>>) -> Result<Json<Value>, ApiError> {
    let (models, providers) = tokio::join!(
        ledger(gateway.rpc.models()),
        ledger(gateway.rpc.providers())
    );
    let (models, providers) = (models?, providers?);
    let demand = gateway.receipts.totals().by_model;
    let list: Vec<Value> = models
        .iter()
        .map(|model| {
            let serving: Vec<(&wire::Provider, &wire::ModelOffer)> = providers
                .iter()
                .filter_map(|p| Some((p, p.models.iter().find(|o| o.cid == model.cid)?)))
                .collect();
            let total = |o: &wire::ModelOffer| {
                let price = |s: &str| s.parse::<u128>().unwrap_or(u128::MAX);
                price(&o.price_in).saturating_add(price(&o.price_out))
            };
            let lowest = serving
                .iter()
                .filter(|(p, _)| p.status == "active")
                .map(|(_, o)| *o)
                .min_by_key(|o| total(o));
            json!({
                "name": model.name,
                "cid": model.cid,
                "status": model.status,
                "architecture": model.architecture,
                "quantization": model.quantization,
                "context_length": model.context_length,
                "license": model.license,
                "size": model.size,
                "providers": serving.iter().map(|(p, o)| json!({
                    "account": p.operator,
                    "status": p.status,
                    "price_in": o.price_in,
                    "price_out": o.price_out,
                })).collect::<Vec<_>>(),
                "lowest_price": lowest.map(|o| json!({"price_in": o.price_in, "price_out": o.price_out})),
                "demand": usage_json(&demand.get(&model.cid).cloned().unwrap_or_default()),
                "quality": null,
            })
        })
        .collect();
    Ok(Json(json!({ "models": list })))
}

/// `GET /agora/proposals`: governance proposals with tallies, and the height their deadlines
/// count against.
pub(crate) async fn proposals(
    State(gateway): State<Arc<Gateway>>,
) -> Result<Json<Value>, ApiError> {
    let (proposals, head) =
        tokio::join!(ledger(gateway.rpc.proposals()), ledger(gateway.rpc.head()));
    let (proposals, head) = (proposals?, head?);
    let list: Vec<Value> = proposals
        .iter()
        .rev()
        .map(|p| {
            json!({
                "id": p.id,
                "proposer": p.proposer,
                "kind": p.kind,
                "deposit": p.deposit,
                "status": p.status,
                "voting_end_height": p.voting_end_height,
                "blocks_left": p.voting_end_height.saturating_sub(head.height),
                "yes": p.yes,
                "no": p.no,
                "abstain": p.abstain,
            })
        })
        .collect();
    Ok(Json(json!({"height": head.height, "proposals": list})))
}

/// The scores of the last epoch the ledger combined (epoch `e` is settled at the end of
/// `e + 1`), if any.
async fn latest_rewards(gateway: &Gateway) -> Result<Option<wire::EpochRewards>, ApiError> {
    let (head, params) = tokio::join!(ledger(gateway.rpc.head()), ledger(gateway.rpc.params()));
    let (head, params) = (head?, params?);
    let blocks: u64 = wire::param(&params, "epoch_blocks").unwrap_or(1);
    let current = head.height / blocks.max(1);
    for epoch in (current.saturating_sub(3)..current).rev() {
        if let Some(rewards) = ledger(gateway.rpc.epoch_rewards(epoch)).await? {
            return Ok(Some(rewards));
        }
    }
    Ok(None)
}

/// Disputes `/agora/verification` lists, newest first.
const LISTED_DISPUTES: usize = 50;

/// `GET /agora/verification`: the verifiers on the ledger, the latest disputes with their
/// committee votes and outcomes, and how many transcripts this gateway sent to verifiers.
pub(crate) async fn verification(
    State(gateway): State<Arc<Gateway>>,
) -> Result<Json<Value>, ApiError> {
    let (verifiers, disputes, head) = tokio::join!(
        ledger(gateway.rpc.verifiers()),
        ledger(gateway.rpc.disputes(false, None)),
        ledger(gateway.rpc.head())
    );
    let (verifiers, mut disputes, head) = (verifiers?, disputes?, head?);
    disputes.sort_by_key(|d| std::cmp::Reverse(d.opened_height));
    disputes.truncate(LISTED_DISPUTES);
    let (sent, refused) = gateway.verification.counts();
    Ok(Json(json!({
        "height": head.height,
        "verify_rate": gateway.config.verify_rate,
        "transcripts_sent": sent,
        "transcripts_refused": refused,
        "verifiers": verifiers.iter().map(|v| json!({
            "account": v.account,
            "endpoint": v.endpoint,
            "stake": v.stake,
            "status": v.status,
            "registered_height": v.registered_height,
        })).collect::<Vec<_>>(),
        "disputes": disputes.iter().map(|d| json!({
            "id": d.id,
            "provider": d.provider,
            "challenger": d.challenger,
            "transcript": d.transcript,
            "opened_height": d.opened_height,
            "deadline_height": d.deadline_height,
            "votes_fraud": d.committee.iter().filter(|m| m.vote == Some(true)).count(),
            "votes_no_fraud": d.committee.iter().filter(|m| m.vote == Some(false)).count(),
            "committee": d.committee.len(),
            "status": match &d.outcome {
                None => "open",
                Some(o) if o.fraud => "fraud",
                Some(_) => "dismissed",
            },
            "slashed": d.outcome.as_ref().map(|o| o.slashed.clone()),
            "refunded": d.outcome.as_ref().map(|o| o.refunded.clone()),
        })).collect::<Vec<_>>(),
    })))
}

/// Query of `/agora/receipts` (a string, so that a bad `limit` gets the API's own 400).
#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    limit: Option<String>,
}

/// `GET /agora/receipts`: the receipts this gateway received, newest first.
pub(crate) async fn receipts(
    State(gateway): State<Arc<Gateway>>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let bad = || ApiError::bad("limit must be a whole number", Some("limit"));
    let limit = match query.map_err(|_| bad())?.0.limit {
        Some(text) => text.parse::<usize>().map_err(|_| bad())?,
        None => 50,
    }
    .min(MAX_LISTED);
    let list: Vec<Value> = gateway
        .receipts
        .recent(limit, |_| true)
        .iter()
        .map(receipt_summary)
        .collect();
    Ok(Json(json!({
        "receipts": list,
        // Verifiers and disputes are not part of the network yet.
        "verifications": [],
        "disputes": [],
    })))
}

fn receipt_summary(stored: &StoredReceipt) -> Value {
    let r = &stored.receipt;
    json!({
        "id": r.id,
        "provider": r.provider,
        "model": r.model,
        "prompt_tokens": r.prompt_tokens,
        "completion_tokens": r.completion_tokens,
        "charge": r.charge,
        "timestamp_ms": r.timestamp_ms,
    })
}

/// `GET /agora/receipts/{id}`: a receipt with each check made here: its signature, its
/// transcript, its inclusion proof and the root the provider committed on the ledger.
pub(crate) async fn receipt(
    State(gateway): State<Arc<Gateway>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let stored = stored_receipt(&gateway, &id)?;
    let signature = match stored.receipt.to_verified() {
        Ok(_) => json!({"ok": true}),
        Err(err) => json!({"ok": false, "error": err.to_string()}),
    };
    let transcript = match transcript_matches(&stored) {
        Ok(()) => json!({"ok": true}),
        Err(err) => json!({"ok": false, "error": err}),
    };
    let inclusion = inclusion(&gateway, &stored).await;
    let (proof, onchain) = match &inclusion {
        None => (
            json!({"status": "pending", "note": "the provider commits its receipts at the end of each epoch"}),
            json!({"status": "pending"}),
        ),
        Some(found) => check_inclusion(&gateway, &stored.receipt, found).await,
    };
    let mut body = receipt_body(&stored, inclusion);
    body["checks"] = json!({
        "signature": signature,
        "transcript": transcript,
        "inclusion": proof,
        "onchain": onchain,
    });
    Ok(Json(body))
}

/// A receipt this gateway keeps, or 404.
pub(crate) fn stored_receipt(gateway: &Gateway, id: &str) -> Result<StoredReceipt, ApiError> {
    gateway
        .receipts
        .get(id)
        .ok_or_else(|| ApiError::NotFound(format!("receipt {id}")))
}

/// A stored receipt as JSON: the receipt, its transcript and its inclusion proof (or null).
pub(crate) fn receipt_body(stored: &StoredReceipt, inclusion: Option<Value>) -> Value {
    json!({
        "receipt": stored.receipt,
        "endpoint": stored.endpoint,
        "transcript": {
            "request": stored.request,
            "output_tokens": stored.output_tokens,
            "output_logits": stored.output_logits,
            "output_text": stored.output_text,
        },
        "inclusion": inclusion,
    })
}

/// The provider's inclusion proof of a receipt, once its epoch is committed.
pub(crate) async fn inclusion(gateway: &Gateway, stored: &StoredReceipt) -> Option<Value> {
    let url = format!(
        "{}/agora/receipts/{}/proof",
        stored.endpoint, stored.receipt.id
    );
    match gateway
        .http
        .get(url)
        .timeout(Duration::from_secs(5))
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => r.json::<Value>().await.ok(),
        _ => None,
    }
}

fn transcript_matches(stored: &StoredReceipt) -> Result<(), String> {
    let receipt = stored
        .receipt
        .receipt()
        .ok_or("the receipt does not decode")?;
    if Hash::of(stored.request.as_bytes()) != receipt.request_hash {
        return Err("the request does not hash to request_hash".into());
    }
    let response = agora_types::receipt::response_hash(
        &stored.output_tokens,
        &stored.output_logits,
        &stored.output_text,
    );
    if response != receipt.response_hash {
        return Err("the output does not hash to response_hash".into());
    }
    Ok(())
}

/// Checks the proof against its root, then that root against the ledger's commitment.
async fn check_inclusion(
    gateway: &Gateway,
    receipt: &ReceiptJson,
    found: &Value,
) -> (Value, Value) {
    let epoch = found["epoch"].as_u64();
    let root = found["root"].as_str().and_then(Hash::from_hex);
    let proof = found["proof"]
        .as_str()
        .and_then(|h| hex::decode(h).ok())
        .and_then(|bytes| encoding::decode_bounded::<MerkleProof>(&bytes, 4096).ok());
    let leaf = Hash::from_hex(&receipt.id).map(|id| merkle::leaf_hash(&id.0));
    let (Some(epoch), Some(root), Some(proof), Some(leaf)) = (epoch, root, proof, leaf) else {
        return (
            json!({"status": "invalid", "error": "the proof is malformed"}),
            json!({"status": "unchecked"}),
        );
    };
    if !merkle::verify(&root, &leaf, &proof) {
        return (
            json!({"status": "invalid", "epoch": epoch, "root": root.to_hex(), "error": "the proof does not lead to the root"}),
            json!({"status": "unchecked"}),
        );
    }
    let proof_state = json!({"status": "ok", "epoch": epoch, "root": root.to_hex()});
    let Ok(provider) = receipt.provider.parse::<AccountId>() else {
        return (proof_state, json!({"status": "unchecked"}));
    };
    let onchain = match ledger(gateway.rpc.receipt_commitment(&provider, epoch)).await {
        Ok(Some(c)) if c.root == root.to_hex() => {
            json!({"status": "ok", "root": c.root, "height": c.height})
        }
        Ok(Some(c)) => {
            json!({"status": "mismatch", "root": c.root, "height": c.height})
        }
        Ok(None) => json!({"status": "not_committed"}),
        Err(err) => json!({"status": "ledger_unreachable", "error": err.to_string()}),
    };
    (proof_state, onchain)
}
