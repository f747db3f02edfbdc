//! `POST /v1/chat/completions`: authenticate, route, pay, forward with failover, keep receipts.
//!
//! The gateway always streams from providers (with token ids), whether or not the client
//! asked for a stream: that gives it time to first token, the tokens to continue from when a
//! provider dies mid-answer, and one code path. A driver task runs the attempts and sends
//! what the client should see over a channel; the handler turns that into SSE or one JSON body.

use std::{sync::Arc, time::Instant};

use agora_api::{ErrorBody, ReceiptJson};
use agora_types::{encoding, Amount, SignedVoucher};
use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, HeaderValue},
    response::{sse, IntoResponse, Response, Sse},
    Json,
};
use futures::StreamExt;
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

use crate::{
    directory::{Candidate, ModelEntry},
    error::ApiError,
    payments::{quote, CreditError},
    receipts::StoredReceipt,
    routing::{self, Preferences},
    Gateway,
};

/// Who pays for a request.
#[derive(Clone)]
enum Payer {
    /// A client with credit under this API key.
    Credit(String),
    /// An agent paying the provider directly with its own voucher.
    Direct(Box<SignedVoucher>, String),
}

/// What the driver tells the handler.
enum Out {
    /// A provider accepted the request; chunks follow.
    Started { provider: Candidate },
    /// A chunk to forward (already rewritten for the client).
    Chunk(Value),
    /// The answer is over.
    Done(Summary),
    /// The request failed before any provider accepted it.
    Failed(ApiError),
    /// The answer broke after it started and could not be continued.
    Broken(String),
}

/// The whole answer, for non-streaming clients and the final event.
#[derive(Default)]
struct Summary {
    content: String,
    logprobs: Vec<Value>,
    finish_reason: Option<String>,
    prompt_tokens: u64,
    completion_tokens: u64,
    seed: Option<u64>,
    receipts: Vec<ReceiptJson>,
    providers: Vec<String>,
}

impl Summary {
    fn agora(&self) -> Value {
        let mut agora = json!({
            "provider": self.providers.last(),
            "failovers": self.providers.iter().skip(1).collect::<Vec<_>>(),
        });
        if let Some(receipt) = self.receipts.last() {
            agora["receipt"] = serde_json::to_value(receipt).unwrap_or(Value::Null);
            agora["receipts"] = self
                .receipts
                .iter()
                .map(|r| Value::from(r.id.clone()))
                .collect();
        }
        agora
    }

    fn usage(&self) -> Value {
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        })
    }
}

pub(crate) async fn completions(
    State(gateway): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let started = Instant::now();
    let response = match handle(&gateway, &headers, body).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    };
    gateway
        .metrics
        .response(response.status().as_u16(), started.elapsed());
    response
}

async fn handle(
    gateway: &Arc<Gateway>,
    headers: &HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|_| ApiError::TooLarge {
        limit: gateway.config.max_body_bytes,
    })?;
    let mut request: Map<String, Value> = match serde_json::from_slice(&body) {
        Ok(Value::Object(map)) => map,
        Ok(_) => {
            return Err(ApiError::bad(
                "the request body must be a JSON object",
                None,
            ))
        }
        Err(err) => return Err(ApiError::bad(format!("invalid request body: {err}"), None)),
    };
    let prefs: Preferences = match request.remove("provider") {
        None | Some(Value::Null) => Preferences::default(),
        Some(value) => serde_json::from_value(value).map_err(|err| {
            ApiError::bad(
                format!("invalid provider preferences: {err}"),
                Some("provider"),
            )
        })?,
    };
    // Checked here so that a malformed request never costs a provider round trip (the typed
    // request ignores the `provider` object, as it ignores every unknown field).
    let parsed: agora_api::ChatCompletionRequest = serde_json::from_slice(&body)
        .map_err(|err| ApiError::bad(format!("invalid request body: {err}"), None))?;
    let mut model = gateway
        .directory
        .model(&parsed.model)
        .ok_or_else(|| ApiError::ModelNotFound(parsed.model.clone()))?;
    // The governed safety policy, before any payment or provider is involved.
    let policy = gateway.policy.current();
    policy
        .check_prompt(&parsed.messages)
        .map_err(ApiError::Policy)?;
    policy
        .check_output(&model.name, &model.cid, parsed.requested_max_tokens_u32())
        .map_err(ApiError::Policy)?;
    model
        .candidates
        .retain(|c| policy.region_allowed(&model.name, &model.cid, &c.region));
    let payer = payer(gateway, headers)?;
    let mut plan = routing::plan(
        &model.name,
        &model.candidates,
        &prefs,
        &gateway.health,
        &mut rand::thread_rng(),
    )
    .map_err(ApiError::NoRoute)?;
    let max_tokens = parsed
        .requested_max_tokens()
        .filter(|n| *n > 0)
        .map_or(u64::from(model.context_length), |n| n as u64);
    let input = body.len() as u64;
    let quote_for = move |c: &Candidate| quote(input, max_tokens, c.price_in, c.price_out);
    let credit_quote = plan.iter().map(quote_for).max().unwrap_or(0);
    match &payer {
        None => {
            return Err(payment_required(
                gateway, &model, &plan[0], input, max_tokens, None,
            ))
        }
        Some(Payer::Credit(key)) => match gateway.wallet.reserve_credit(key, credit_quote) {
            Ok(()) => {}
            Err(CreditError::UnknownKey) => return Err(ApiError::Unauthorized),
            Err(CreditError::Exhausted { available, needed }) => {
                return Err(payment_required(
                    gateway,
                    &model,
                    &plan[0],
                    input,
                    max_tokens,
                    Some(format!(
                        "credit exhausted: {available} left, {needed} needed"
                    )),
                ))
            }
        },
        Some(Payer::Direct(voucher, _)) => {
            // The agent's voucher pays one provider: route there or nowhere.
            plan.retain(|c| c.account == voucher.voucher.payee);
            if plan.is_empty() {
                return Err(ApiError::bad(
                    "the PAYMENT-SIGNATURE voucher pays no provider that serves this model",
                    None,
                ));
            }
            plan.truncate(1);
        }
    }
    let stream = parsed.stream;
    let include_usage = parsed
        .stream_options
        .as_ref()
        .is_some_and(|o| o.include_usage);
    let (tx, mut rx) = mpsc::channel(64);
    let driver = Driver {
        gateway: Arc::clone(gateway),
        model: model.clone(),
        request,
        original_max: parsed.requested_max_tokens(),
        plan,
        payer: payer.clone(),
        quote_for: Box::new(quote_for),
        tx,
        id: format!("chatcmpl-{}", &agora_types::Hash::of(&body).to_hex()[..24]),
    };
    let payer_for_settle = payer;
    let gateway_for_settle = Arc::clone(gateway);
    tokio::spawn(async move {
        let charged = driver.run().await;
        if let Some(Payer::Credit(key)) = payer_for_settle {
            gateway_for_settle
                .wallet
                .settle_credit(&key, credit_quote, charged);
        }
    });
    // Nothing is sent to the client until a provider has accepted the request.
    let provider = match rx.recv().await {
        Some(Out::Started { provider }) => provider,
        Some(Out::Failed(err)) => return Err(err),
        _ => {
            return Err(ApiError::Upstream(
                "the request ended before any provider answered".into(),
            ))
        }
    };
    // A stream names the first provider that accepted; a whole answer names the one that
    // finished it (the final `agora` field always does).
    let mut provider_header = HeaderValue::from_str(&provider.account.to_string()).ok();
    let mut response = if stream {
        let events = async_stream::stream! {
            while let Some(out) = rx.recv().await {
                match out {
                    Out::Chunk(chunk) => yield Ok::<_, std::convert::Infallible>(sse::Event::default().data(chunk.to_string())),
                    Out::Done(summary) => {
                        if include_usage {
                            let mut last = json!({"object": "chat.completion.chunk", "choices": [], "usage": summary.usage()});
                            last["agora"] = summary.agora();
                            yield Ok(sse::Event::default().data(last.to_string()));
                        }
                        yield Ok(sse::Event::default().data("[DONE]"));
                        break;
                    }
                    Out::Broken(message) => {
                        let body = ErrorBody::new(message, "server_error", None, Some("upstream_failed"));
                        yield Ok(sse::Event::default().data(serde_json::to_string(&body).unwrap_or_default()));
                        break;
                    }
                    Out::Started { .. } | Out::Failed(_) => {}
                }
            }
        };
        Sse::new(events).into_response()
    } else {
        let summary = loop {
            match rx.recv().await {
                Some(Out::Chunk(_)) | Some(Out::Started { .. }) => {}
                Some(Out::Done(summary)) => break summary,
                Some(Out::Broken(message)) | Some(Out::Failed(ApiError::Upstream(message))) => {
                    return Err(ApiError::Upstream(message))
                }
                Some(Out::Failed(err)) => return Err(err),
                None => return Err(ApiError::Upstream("the answer was cut off".into())),
            }
        };
        if let Some(last) = summary.providers.last() {
            provider_header = HeaderValue::from_str(last).ok();
        }
        completion_body(&model, &summary)
    };
    if let Some(value) = provider_header {
        response
            .headers_mut()
            .insert(agora_api::PROVIDER_HEADER, value);
    }
    Ok(response)
}

/// The non-streaming answer.
fn completion_body(model: &ModelEntry, summary: &Summary) -> Response {
    let logprobs = if summary.logprobs.is_empty() {
        Value::Null
    } else {
        json!({ "content": summary.logprobs })
    };
    let body = json!({
        "id": format!("chatcmpl-{}", summary.receipts.last().map_or("none", |r| &r.id[..24.min(r.id.len())])),
        "object": "chat.completion",
        "created": unix_now(),
        "model": model.name,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": summary.content},
            "logprobs": logprobs,
            "finish_reason": summary.finish_reason.clone().unwrap_or_else(|| "stop".into()),
        }],
        "usage": summary.usage(),
        "system_fingerprint": format!("agora-{}", model.cid),
        "seed": summary.seed,
        "agora": summary.agora(),
    });
    let mut response = Json(body).into_response();
    if let Some(value) = summary
        .receipts
        .last()
        .and_then(|r| HeaderValue::from_str(&r.id).ok())
    {
        response
            .headers_mut()
            .insert(agora_api::RECEIPT_HEADER, value);
    }
    response
}

/// Who pays: `PAYMENT-SIGNATURE` (an agent's voucher), else the Bearer key's credit.
fn payer(gateway: &Gateway, headers: &HeaderMap) -> Result<Option<Payer>, ApiError> {
    if let Some(value) = headers.get(agora_api::PAYMENT_SIGNATURE_HEADER) {
        let text = value
            .to_str()
            .map_err(|_| ApiError::bad("PAYMENT-SIGNATURE is not text", None))?
            .trim()
            .to_owned();
        let bytes = hex::decode(&text)
            .map_err(|_| ApiError::bad("PAYMENT-SIGNATURE must be hex of a voucher", None))?;
        let voucher: SignedVoucher = encoding::decode(&bytes).map_err(|err| {
            ApiError::bad(format!("PAYMENT-SIGNATURE does not decode: {err}"), None)
        })?;
        return Ok(Some(Payer::Direct(Box::new(voucher), text)));
    }
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or(ApiError::Unauthorized)?;
    if gateway.wallet.credit(key).is_none() {
        return Err(ApiError::Unauthorized);
    }
    Ok(Some(Payer::Credit(key.to_owned())))
}

/// A 402 with an x402-style quote for paying `provider` directly.
fn payment_required(
    gateway: &Gateway,
    model: &ModelEntry,
    provider: &Candidate,
    input: u64,
    max_tokens: u64,
    reason: Option<String>,
) -> ApiError {
    let amount = quote(input, max_tokens, provider.price_in, provider.price_out);
    let quote = json!({
        "x402Version": 1,
        "scheme": "agora-channel",
        "network": gateway.wallet.chain_id().as_str(),
        "model": model.cid.to_string(),
        "payTo": provider.account.to_string(),
        "endpoint": provider.endpoint,
        "maxAmountRequired": amount.to_string(),
        "priceIn": provider.price_in.to_string(),
        "priceOut": provider.price_out.to_string(),
        "maxTokens": max_tokens,
        "description": "sign a voucher on your channel to payTo whose cumulative amount covers what you owe plus maxAmountRequired; retry with it, hex-encoded, in PAYMENT-SIGNATURE",
    });
    let encoded = data_encoding::BASE64.encode(quote.to_string().as_bytes());
    ApiError::PaymentRequired {
        message: reason.unwrap_or_else(|| {
            "payment required: send an API key with credit, or pay the provider directly (see the PAYMENT-REQUIRED header)".into()
        }),
        quote: encoded,
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Runs the attempts for one request.
struct Driver {
    gateway: Arc<Gateway>,
    model: ModelEntry,
    request: Map<String, Value>,
    original_max: Option<i64>,
    plan: Vec<Candidate>,
    payer: Option<Payer>,
    quote_for: Box<dyn Fn(&Candidate) -> Amount + Send + Sync>,
    tx: mpsc::Sender<Out>,
    id: String,
}

/// How one attempt ended.
enum Attempt {
    /// The answer finished.
    Finished,
    /// The provider failed before accepting (connection, 5xx, 429, 402, timeout).
    Refused(String),
    /// The provider refused the request itself (4xx): the client's error, not retried.
    Rejected(ApiError),
    /// The provider failed after accepting.
    Broke(String),
}

impl Driver {
    /// Tries the plan in order; returns the total charged by receipts.
    async fn run(self) -> Amount {
        let mut summary = Summary::default();
        let mut tokens: Vec<u32> = Vec::new();
        // The raw logits the providers committed to, one per token (thousandths).
        let mut logits: Vec<i32> = Vec::new();
        let mut emitted = 0usize;
        let mut started = false;
        let mut last_error = String::from("no provider was tried");
        let mut charged: Amount = 0;
        for (attempt, provider) in self.plan.iter().enumerate() {
            let quote = match &self.payer {
                Some(Payer::Direct(..)) => 0,
                _ => (self.quote_for)(provider),
            };
            let voucher = match &self.payer {
                Some(Payer::Direct(_, hex)) => hex.clone(),
                _ => match self
                    .gateway
                    .wallet
                    .voucher_for(&provider.account, quote)
                    .await
                {
                    Ok(v) => v,
                    Err(err) => {
                        tracing::warn!(target: "agora::gateway", provider = %provider.account, %err, "cannot pay provider");
                        last_error = err.to_string();
                        continue;
                    }
                },
            };
            if attempt > 0 {
                self.gateway.metrics.failover(started);
            }
            let body = self.body(&tokens, emitted, summary.seed);
            let (tokens_at, logits_at, text_at) =
                (tokens.len(), logits.len(), summary.content.len());
            let (outcome, receipt) = self
                .attempt(
                    provider,
                    &voucher,
                    &body,
                    &mut summary,
                    &mut tokens,
                    &mut logits,
                    &mut emitted,
                    &mut started,
                )
                .await;
            let charge = receipt
                .as_ref()
                .and_then(|r| r.charge.parse::<Amount>().ok())
                .unwrap_or(0);
            if !matches!(self.payer, Some(Payer::Direct(..))) {
                self.gateway
                    .wallet
                    .settle_channel(&provider.account, quote, charge);
            }
            charged = charged.saturating_add(charge);
            if let Some(receipt) = receipt {
                let stored = StoredReceipt {
                    receipt: receipt.clone(),
                    endpoint: provider.endpoint.clone(),
                    request: body.to_string(),
                    output_tokens: tokens[tokens_at..].to_vec(),
                    output_logits: logits[logits_at..].to_vec(),
                    output_text: summary.content[text_at..].to_owned(),
                };
                crate::verification::offer(&self.gateway, &stored);
                self.gateway.receipts.insert(stored);
                summary.receipts.push(receipt);
            }
            match outcome {
                Attempt::Finished => {
                    self.gateway.health.success(&provider.account);
                    let _ = self.tx.send(Out::Done(summary)).await;
                    return charged;
                }
                Attempt::Rejected(err) => {
                    let _ = self.tx.send(Out::Failed(err)).await;
                    return charged;
                }
                Attempt::Refused(reason) | Attempt::Broke(reason) => {
                    tracing::warn!(target: "agora::gateway", provider = %provider.account, %reason, "provider failed; trying the next");
                    self.gateway.health.failure(&provider.account);
                    last_error = reason;
                }
            }
        }
        let message = format!("every provider failed; last error: {last_error}");
        let _ = self
            .tx
            .send(if started {
                Out::Broken(message)
            } else {
                Out::Failed(ApiError::Upstream(message))
            })
            .await;
        charged
    }

    /// The body sent to a provider: the client's request, streamed with token ids, continuing
    /// after `tokens` when an earlier provider failed.
    fn body(&self, tokens: &[u32], emitted: usize, seed: Option<u64>) -> Value {
        let mut body = self.request.clone();
        body.insert("stream".into(), Value::Bool(true));
        body.insert("stream_options".into(), json!({"include_usage": true}));
        let mut agora = json!({"token_ids": true});
        if !tokens.is_empty() {
            agora["continuation"] = json!({"tokens": tokens, "emitted_bytes": emitted});
            if let Some(max) = self.original_max {
                let left = (max - tokens.len() as i64).max(1);
                body.remove("max_completion_tokens");
                body.insert("max_tokens".into(), Value::from(left));
            }
        }
        // The same seed everywhere, so a continued sampled answer is the one the first
        // provider would have given.
        // The API's seed is a signed 64-bit integer; providers read its bits back as u64.
        if let Some(seed) = seed {
            body.entry("seed").or_insert(Value::from(seed as i64));
        }
        body.insert("agora".into(), agora);
        Value::Object(body)
    }

    #[allow(clippy::too_many_arguments)]
    async fn attempt(
        &self,
        provider: &Candidate,
        voucher: &str,
        body: &Value,
        summary: &mut Summary,
        tokens: &mut Vec<u32>,
        logits: &mut Vec<i32>,
        emitted: &mut usize,
        started: &mut bool,
    ) -> (Attempt, Option<ReceiptJson>) {
        let config = &self.gateway.config;
        let sent_at = Instant::now();
        let request = self
            .gateway
            .http
            .post(format!("{}/v1/chat/completions", provider.endpoint))
            .header(agora_api::VOUCHER_HEADER, voucher)
            .header(axum::http::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send();
        let response = match tokio::time::timeout(config.first_byte_timeout, request).await {
            Err(_) => {
                return (
                    Attempt::Refused("timed out waiting for the provider".into()),
                    None,
                )
            }
            Ok(Err(err)) => {
                return (
                    Attempt::Refused(format!("cannot reach the provider: {err}")),
                    None,
                )
            }
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        if !status.is_success() {
            let retry = status.is_server_error() || matches!(status.as_u16(), 402 | 408 | 429);
            let text = response.text().await.unwrap_or_default();
            if retry || *started {
                return (
                    Attempt::Refused(format!("provider answered {status}: {text}")),
                    None,
                );
            }
            return (
                Attempt::Rejected(ApiError::Forwarded { status, body: text }),
                None,
            );
        }
        if summary.seed.is_none() {
            summary.seed = response
                .headers()
                .get("x-agora-seed")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok());
        }
        if !*started {
            *started = true;
            let _ = self
                .tx
                .send(Out::Started {
                    provider: provider.clone(),
                })
                .await;
        }
        summary.providers.push(provider.account.to_string());
        let mut events = sse_events(response);
        let mut first_token_at = None;
        let mut new_tokens = 0u32;
        let mut finish: Option<Value> = None;
        let mut receipt = None;
        loop {
            let next = tokio::time::timeout(config.idle_timeout, events.next()).await;
            let data = match next {
                Err(_) => {
                    return (
                        Attempt::Broke("the provider stalled mid-answer".into()),
                        receipt,
                    )
                }
                Ok(None) => {
                    // The stream ended without [DONE]: complete only if the answer finished.
                    return match finish {
                        Some(chunk) => {
                            self.finish(chunk, summary).await;
                            (Attempt::Finished, receipt)
                        }
                        None => (
                            Attempt::Broke("the provider's stream ended mid-answer".into()),
                            receipt,
                        ),
                    };
                }
                Ok(Some(Err(err))) => {
                    return match finish {
                        Some(chunk) => {
                            self.finish(chunk, summary).await;
                            (Attempt::Finished, receipt)
                        }
                        None => (
                            Attempt::Broke(format!("the provider's stream broke: {err}")),
                            receipt,
                        ),
                    }
                }
                Ok(Some(Ok(data))) => data,
            };
            if data == "[DONE]" {
                return match finish {
                    Some(chunk) => {
                        self.finish(chunk, summary).await;
                        self.gateway.health.throughput(
                            &provider.account,
                            new_tokens,
                            first_token_at.map_or_else(Default::default, |t: Instant| t.elapsed()),
                        );
                        (Attempt::Finished, receipt)
                    }
                    None => (
                        Attempt::Broke("the provider ended without finishing".into()),
                        receipt,
                    ),
                };
            }
            // Anything that is not a well-formed chunk is a failure, never forwarded.
            let Ok(mut chunk) = serde_json::from_str::<Value>(&data) else {
                return (
                    Attempt::Broke("the provider sent a malformed chunk".into()),
                    receipt,
                );
            };
            if chunk.get("error").is_some() {
                return (
                    Attempt::Broke(format!("the provider failed: {}", chunk["error"])),
                    receipt,
                );
            }
            let Some(object) = chunk.as_object_mut() else {
                return (
                    Attempt::Broke("the provider sent a malformed chunk".into()),
                    receipt,
                );
            };
            let agora = object.remove("agora");
            if let Some(r) = agora.as_ref().and_then(|a| a.get("receipt")) {
                match serde_json::from_value::<ReceiptJson>(r.clone()).map(|r| (r.to_verified(), r))
                {
                    Ok((Ok(signed), json)) if signed.receipt.provider == provider.account => {
                        receipt = Some(json)
                    }
                    _ => {
                        tracing::warn!(target: "agora::gateway", provider = %provider.account, "provider sent an invalid receipt")
                    }
                }
            }
            if let Some(usage) = object.remove("usage").filter(|u| !u.is_null()) {
                summary.prompt_tokens = usage["prompt_tokens"].as_u64().unwrap_or(0);
                summary.completion_tokens += usage["completion_tokens"].as_u64().unwrap_or(0);
            }
            let Some(choice) = object
                .get("choices")
                .and_then(|c| c.as_array())
                .and_then(|c| c.first())
                .cloned()
            else {
                continue;
            };
            if let Some(ids) = agora
                .as_ref()
                .and_then(|a| a.get("tokens"))
                .and_then(|t| t.as_array())
            {
                let ids: Vec<u32> = ids
                    .iter()
                    .filter_map(|t| t.as_u64().map(|t| t as u32))
                    .collect();
                if first_token_at.is_none() && !ids.is_empty() {
                    first_token_at = Some(Instant::now());
                    self.gateway
                        .health
                        .first_token(&provider.account, sent_at.elapsed());
                }
                new_tokens += ids.len() as u32;
                tokens.extend(ids);
            }
            if let Some(values) = agora
                .as_ref()
                .and_then(|a| a.get("logits"))
                .and_then(|t| t.as_array())
            {
                logits.extend(
                    values
                        .iter()
                        .filter_map(|v| v.as_i64().and_then(|v| i32::try_from(v).ok())),
                );
            }
            let text = choice["delta"]["content"].as_str().unwrap_or("").to_owned();
            // A continuing provider opens with a role chunk; the client already had one.
            let is_role_opening = choice["delta"].get("role").is_some() && text.is_empty();
            if is_role_opening && summary.providers.len() > 1 {
                continue;
            }
            *emitted += text.len();
            summary.content.push_str(&text);
            if let Some(list) = choice["logprobs"]["content"].as_array() {
                summary.logprobs.extend(list.iter().cloned());
            }
            object.insert("id".into(), Value::from(self.id.clone()));
            object.insert("model".into(), Value::from(self.model.name.clone()));
            if let Some(reason) = choice["finish_reason"].as_str() {
                summary.finish_reason = Some(reason.to_owned());
                finish = Some(chunk);
                continue;
            }
            if text.is_empty() && !is_role_opening && choice["logprobs"].is_null() {
                continue;
            }
            let _ = self.tx.send(Out::Chunk(chunk)).await;
        }
    }

    /// Sends the held finishing chunk (with the receipt when no usage chunk follows).
    async fn finish(&self, mut chunk: Value, summary: &Summary) {
        let include_usage = self
            .request
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if !include_usage {
            chunk["agora"] = summary.agora();
        }
        let _ = self.tx.send(Out::Chunk(chunk)).await;
    }
}

/// The `data:` payloads of a server-sent event stream.
fn sse_events(
    response: reqwest::Response,
) -> impl futures::Stream<Item = Result<String, String>> + Unpin {
    let mut bytes = response.bytes_stream();
    Box::pin(async_stream::stream! {
        let mut buffer: Vec<u8> = Vec::new();
        loop {
            while let Some(end) = find_event_end(&buffer) {
                let event: Vec<u8> = buffer.drain(..end.0).collect();
                buffer.drain(..end.1);
                let text = String::from_utf8_lossy(&event);
                let data: Vec<&str> = text
                    .lines()
                    .filter_map(|line| line.strip_prefix("data:"))
                    .map(|d| d.strip_prefix(' ').unwrap_or(d))
                    .collect();
                if !data.is_empty() {
                    yield Ok(data.join("\n"));
                }
            }
            match bytes.next().await {
                Some(Ok(chunk)) => buffer.extend_from_slice(&chunk),
                Some(Err(err)) => { yield Err(err.to_string()); return; }
                None => return,
            }
        }
    })
}

/// Where the first event in `buffer` ends: (event length, separator length).
fn find_event_end(buffer: &[u8]) -> Option<(usize, usize)> {
    let lf = buffer.windows(2).position(|w| w == b"\n\n").map(|p| (p, 2));
    let crlf = buffer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| (p, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::find_event_end;

    #[test]
    fn events_split_on_blank_lines() {
        assert_eq!(find_event_end(b"data: a\n\ndata: b"), Some((7, 2)));
        assert_eq!(find_event_end(b"data: a\r\n\r\n"), Some((7, 4)));
        assert_eq!(find_event_end(b"data: a\n"), None);
    }
}
