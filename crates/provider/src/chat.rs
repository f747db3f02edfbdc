//! `POST /v1/chat/completions`: parse, validate, generate, answer as JSON or as SSE.

use std::{convert::Infallible, sync::Arc, time::Instant};

use agora_api::{
    AgoraResponse, ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, Choice,
    ChoiceLogprobs, ChunkChoice, Delta, ResponseMessage, TopLogprob, Usage,
};
use agora_engine::{Event, Finish, FinishReason, GenerateRequest};
use agora_types::{receipt::logit_milli, Hash};
use axum::{
    body::{Body, Bytes},
    extract::State,
    http::{HeaderMap, HeaderValue},
    response::{sse, IntoResponse, Response, Sse},
    Json,
};
use futures::{Stream, StreamExt};

use crate::{payments, ApiError, Provider, ServedModel};

/// Bytes of an oversized body read and dropped before answering 413; past this the connection
/// is closed.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

/// The handler: every outcome, good or bad, is counted by status.
pub(crate) async fn completions(
    State(provider): State<Arc<Provider>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body = read_body(body, provider.max_body_bytes).await;
    let voucher = headers
        .get(agora_api::VOUCHER_HEADER)
        .and_then(|v| v.to_str().ok());
    let response = match handle(&provider, body, voucher).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    };
    provider.metrics.response(response.status().as_u16());
    response
}

/// A validated request, ready for the engine.
struct Prepared {
    model: Arc<ServedModel>,
    request: GenerateRequest,
    stream: bool,
    include_usage: bool,
    /// Report token ids (Agora extension).
    token_ids: bool,
    /// BLAKE3 of the request body, for the receipt.
    request_hash: Hash,
}

/// What the answer needs to close its books: the reservation and what the receipt says.
struct Billing {
    hold: payments::Hold,
}

impl Billing {
    /// Signs the receipt for the finished answer.
    fn settle(
        self,
        prepared: &Prepared,
        finish: &Finish,
        tokens: &[u32],
        logits: &[i32],
        text: &str,
    ) -> agora_api::ReceiptJson {
        let sampling = &prepared.request.sampling;
        let served = payments::Served {
            request_hash: prepared.request_hash,
            response_hash: agora_types::receipt::response_hash(tokens, logits, text),
            model: prepared.model.cid,
            prompt_tokens: finish.prompt_tokens,
            completion_tokens: finish.completion_tokens,
            sampling: sampling.declared(),
            price_in: prepared.model.price_in,
            price_out: prepared.model.price_out,
        };
        agora_api::ReceiptJson::from_signed(&self.hold.settle(served))
    }
}

/// Reads a request body of at most `limit` bytes.
///
/// A larger body is still read to its end (and dropped), up to [`DRAIN_LIMIT`], so that the
/// client finishes sending and then reads our 413; stopping at once would leave it writing
/// into a closed connection, and it would see a broken pipe instead of the error.
async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let mut stream = body.into_data_stream();
    let mut buffer = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = stream.next().await {
        let chunk = frame
            .map_err(|err| ApiError::bad(format!("cannot read the request body: {err}"), None))?;
        total = total.saturating_add(chunk.len());
        if total > DRAIN_LIMIT {
            break;
        }
        if total <= limit {
            buffer.extend_from_slice(&chunk);
        }
    }
    if total > limit {
        return Err(ApiError::TooLarge { limit });
    }
    Ok(Bytes::from(buffer))
}

async fn handle(
    provider: &Arc<Provider>,
    body: Result<Bytes, ApiError>,
    voucher: Option<&str>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let body = body?;
    let request: ChatCompletionRequest = serde_json::from_slice(&body)
        .map_err(|err| ApiError::bad(format!("invalid request body: {err}"), None))?;
    let prepared = prepare(provider, request, &body).await?;
    let billing = match &provider.payments {
        None => None,
        Some(payments) => {
            let model = &prepared.model;
            let input = prepared.request.prompt.len() + prepared.request.continuation.tokens.len();
            let context = model.engine.info().context_per_sequence as usize;
            let max_tokens = prepared
                .request
                .max_tokens
                .map_or(context.saturating_sub(input), |n| n as usize);
            // An overflowing quote exceeds any deposit, so the voucher check refuses it.
            let quote = agora_types::amount::token_cost(
                input as u64,
                max_tokens as u64,
                model.price_in,
                model.price_out,
            )
            .unwrap_or(agora_types::Amount::MAX);
            Some(Billing {
                hold: payments.accept(voucher, quote).await?,
            })
        }
    };
    let seed = prepared.request.sampling.seed;
    let engine = Arc::clone(&prepared.model.engine);
    let generation = match provider.cheat {
        None => engine.generate(prepared.request.clone())?,
        Some(cheat) => crate::cheat::generate(cheat, &engine, prepared.request.clone()).await?,
    };
    let id = format!("chatcmpl-{}", &Hash::of(&body).to_hex()[..24]);
    let mut response = if prepared.stream {
        stream_response(provider, prepared, generation, id, started, billing).into_response()
    } else {
        collect_response(provider, prepared, generation, id, started, billing)
            .await?
            .into_response()
    };
    if let Ok(value) = HeaderValue::from_str(&seed.to_string()) {
        response.headers_mut().insert("x-agora-seed", value);
    }
    Ok(response)
}

async fn prepare(
    provider: &Provider,
    request: ChatCompletionRequest,
    body: &[u8],
) -> Result<Prepared, ApiError> {
    let model = provider
        .model(&request.model)
        .ok_or_else(|| ApiError::ModelNotFound(request.model.clone()))?;
    // The governed safety policy: a provider enforces it too, whoever routed the request.
    let policy = provider.policy.current();
    policy
        .check_prompt(&request.messages)
        .map_err(ApiError::policy)?;
    if !policy.region_allowed(&model.name, &model.cid, &provider.region) {
        return Err(ApiError::policy(agora_policy::Refusal {
            rule: format!("{}.regions", model.name),
            param: "model",
            message: format!(
                "refused by safety rule '{}.regions': this provider's region '{}' may not serve it",
                model.name, provider.region
            ),
        }));
    }
    let output_limit = policy
        .check_output(&model.name, &model.cid, request.requested_max_tokens_u32())
        .map_err(ApiError::policy)?;
    let plan = agora_api::plan::plan(request, body)
        .map_err(|err| ApiError::bad(err.message, err.param))?;
    let (stream, include_usage, token_ids) = (plan.stream, plan.include_usage, plan.token_ids);
    let engine = Arc::clone(&model.engine);
    let mut request = tokio::task::spawn_blocking(move || engine.request_for(&plan))
        .await
        .map_err(|err| ApiError::Internal(err.to_string()))??;
    policy
        .check_context(&model.name, &model.cid, request.prompt.len())
        .map_err(ApiError::policy)?;
    if let Some(limit) = output_limit {
        request.max_tokens = Some(request.max_tokens.map_or(limit, |n| n.min(limit)));
    }
    Ok(Prepared {
        model,
        request,
        stream,
        include_usage,
        token_ids,
        request_hash: Hash::of(body),
    })
}

fn finish_reason(reason: FinishReason) -> String {
    match reason {
        FinishReason::Stop => "stop".into(),
        FinishReason::Length => "length".into(),
    }
}

fn fingerprint(model: &ServedModel) -> String {
    format!("agora-{}", model.cid)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn to_api_logprob(
    model: &ServedModel,
    id: u32,
    logprob: &agora_engine::TokenLogprob,
) -> agora_api::TokenLogprob {
    let entry = |token: u32| {
        let bytes = model.engine.token_bytes(token);
        (String::from_utf8_lossy(&bytes).into_owned(), bytes)
    };
    let (token, bytes) = entry(id);
    agora_api::TokenLogprob {
        token,
        logprob: logprob.logprob,
        bytes,
        top_logprobs: logprob
            .top
            .iter()
            .map(|t| {
                let (token, bytes) = entry(t.token);
                TopLogprob {
                    token,
                    logprob: t.logprob,
                    bytes,
                }
            })
            .collect(),
    }
}

async fn collect_response(
    provider: &Provider,
    prepared: Prepared,
    mut generation: agora_engine::Generation,
    id: String,
    started: Instant,
    billing: Option<Billing>,
) -> Result<Response, ApiError> {
    let model = &prepared.model;
    let mut content = String::new();
    let (mut tokens, mut logits) = (Vec::new(), Vec::new());
    let mut logprobs = prepared.request.logprobs.map(|_| ChoiceLogprobs::default());
    let mut first_token_at = None;
    while let Some(event) = generation.next().await {
        match event {
            Event::Token {
                id: token,
                text,
                logprob,
                logits: (logit, _),
            } => {
                if first_token_at.is_none() {
                    first_token_at = Some(Instant::now());
                    provider.metrics.first_token(started.elapsed());
                }
                content.push_str(&text);
                tokens.push(token);
                logits.push(logit_milli(logit));
                if let (Some(list), Some(lp)) = (logprobs.as_mut(), logprob.as_ref()) {
                    list.content.push(to_api_logprob(model, token, lp));
                }
            }
            Event::Done(finish) => {
                content.push_str(&finish.tail_text);
                if let Some(at) = first_token_at {
                    provider
                        .metrics
                        .decode(finish.completion_tokens.saturating_sub(1), at.elapsed());
                }
                let receipt =
                    billing.map(|b| b.settle(&prepared, &finish, &tokens, &logits, &content));
                let receipt_id = receipt.as_ref().map(|r| r.id.clone());
                if !prepared.token_ids {
                    (tokens, logits) = (Vec::new(), Vec::new());
                }
                let agora = (receipt.is_some() || prepared.token_ids).then(|| AgoraResponse {
                    tokens,
                    logits,
                    receipt,
                    ..Default::default()
                });
                let mut response = Json(ChatCompletion {
                    id,
                    object: "chat.completion".into(),
                    created: unix_now(),
                    model: model.name.clone(),
                    choices: vec![Choice {
                        index: 0,
                        message: ResponseMessage {
                            role: "assistant".into(),
                            content,
                        },
                        logprobs,
                        finish_reason: finish_reason(finish.reason),
                    }],
                    usage: Usage {
                        prompt_tokens: finish.prompt_tokens,
                        completion_tokens: finish.completion_tokens,
                        total_tokens: finish.prompt_tokens + finish.completion_tokens,
                    },
                    system_fingerprint: fingerprint(model),
                    seed: prepared.request.sampling.seed,
                    agora,
                })
                .into_response();
                if let Some(value) = receipt_id.and_then(|id| HeaderValue::from_str(&id).ok()) {
                    response
                        .headers_mut()
                        .insert(agora_api::RECEIPT_HEADER, value);
                }
                return Ok(response);
            }
            Event::Failed(reason) => return Err(ApiError::Internal(reason)),
        }
    }
    Err(ApiError::Internal(
        "the engine ended the generation without a result".into(),
    ))
}

fn stream_response(
    provider: &Arc<Provider>,
    prepared: Prepared,
    mut generation: agora_engine::Generation,
    id: String,
    started: Instant,
    billing: Option<Billing>,
) -> Sse<impl Stream<Item = Result<sse::Event, Infallible>>> {
    let provider = Arc::clone(provider);
    let created = unix_now();
    let model = Arc::clone(&prepared.model);
    let chunk = move |delta: Delta, logprobs: Option<ChoiceLogprobs>, finish: Option<String>| {
        ChatCompletionChunk {
            id: id.clone(),
            object: "chat.completion.chunk".into(),
            created,
            model: model.name.clone(),
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                logprobs,
                finish_reason: finish,
            }],
            usage: None,
            system_fingerprint: fingerprint(&model),
            agora: None,
        }
    };
    let model = Arc::clone(&prepared.model);
    let include_usage = prepared.include_usage;
    let token_ids = prepared.token_ids;
    let mut billing = billing;
    let events = async_stream::stream! {
        let (mut tokens, mut logits) = (Vec::new(), Vec::new());
        let mut content = String::new();
        yield data(&chunk(Delta { role: Some("assistant".into()), content: Some(String::new()) }, None, None));
        let mut first_token_at = None;
        let mut finished = false;
        while let Some(event) = generation.next().await {
            match event {
                Event::Token { id: token, text, logprob, logits: (logit, _) } => {
                    if first_token_at.is_none() {
                        first_token_at = Some(Instant::now());
                        provider.metrics.first_token(started.elapsed());
                    }
                    let logprobs = logprob.as_ref().map(|lp| ChoiceLogprobs {
                        content: vec![to_api_logprob(&model, token, lp)],
                    });
                    let logit = logit_milli(logit);
                    tokens.push(token);
                    logits.push(logit);
                    content.push_str(&text);
                    if !text.is_empty() || logprobs.is_some() || token_ids {
                        let mut c = chunk(Delta { role: None, content: Some(text) }, logprobs, None);
                        if token_ids {
                            c.agora = Some(AgoraResponse { tokens: vec![token], logits: vec![logit], ..Default::default() });
                        }
                        yield data(&c);
                    }
                }
                Event::Done(finish) => {
                    if !finish.tail_text.is_empty() {
                        content.push_str(&finish.tail_text);
                        yield data(&chunk(Delta { role: None, content: Some(finish.tail_text.clone()) }, None, None));
                    }
                    if let Some(at) = first_token_at {
                        provider.metrics.decode(finish.completion_tokens.saturating_sub(1), at.elapsed());
                    }
                    yield data(&chunk(Delta::default(), None, Some(finish_reason(finish.reason))));
                    if include_usage {
                        let mut last = chunk(Delta::default(), None, None);
                        last.choices.clear();
                        last.usage = Some(Usage {
                            prompt_tokens: finish.prompt_tokens,
                            completion_tokens: finish.completion_tokens,
                            total_tokens: finish.prompt_tokens + finish.completion_tokens,
                        });
                        yield data(&last);
                    }
                    if let Some(b) = billing.take() {
                        let mut last = chunk(Delta::default(), None, None);
                        last.choices.clear();
                        last.agora = Some(AgoraResponse {
                            receipt: Some(b.settle(&prepared, &finish, &tokens, &logits, &content)),
                            ..Default::default()
                        });
                        yield data(&last);
                    }
                    yield Ok(sse::Event::default().data("[DONE]"));
                    finished = true;
                    break;
                }
                Event::Failed(reason) => {
                    tracing::error!(target: "agora::provider", %reason, "generation failed mid-stream");
                    yield data(&agora_api::ErrorBody::new("generation failed", "server_error", None, None));
                    finished = true;
                    break;
                }
            }
        }
        if !finished {
            yield data(&agora_api::ErrorBody::new("generation ended unexpectedly", "server_error", None, None));
        }
    };
    Sse::new(events)
}

fn data(value: &impl serde::Serialize) -> Result<sse::Event, Infallible> {
    Ok(sse::Event::default().data(serde_json::to_string(value).unwrap_or_default()))
}
