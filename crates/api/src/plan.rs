//! What a chat request asks the engine to do, validated once for everyone who reads it.
//!
//! The provider plans a request before generating, and a verifier plans the same request
//! bytes from a transcript before checking: both go through [`plan`], so the prompt, the
//! sampling rule and the seed a verifier checks against are exactly the ones the provider
//! was asked for.

use agora_types::Hash;

use crate::{ChatCompletionRequest, MessageContent};

/// Most stop strings a request may give.
pub const MAX_STOP_STRINGS: usize = 16;
/// Most alternatives per position in `top_logprobs`.
pub const MAX_TOP_LOGPROBS: i64 = 20;

/// One message of the conversation, with its role normalized.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedMessage {
    /// `system`, `user`, `assistant` or `tool` (`developer` becomes `system`).
    pub role: &'static str,
    /// The message text (text content parts joined).
    pub content: String,
}

/// A validated chat request, in the terms the engine works in.
#[derive(Clone, Debug, PartialEq)]
pub struct ChatPlan {
    /// The model asked for (name or CID).
    pub model: String,
    /// The conversation, never empty.
    pub messages: Vec<PlannedMessage>,
    /// Temperature in `[0, 2]`; `0` is greedy.
    pub temperature: f32,
    /// Nucleus mass in `(0, 1]`.
    pub top_p: f32,
    /// Top-k as asked; `None` leaves the engine's default.
    pub top_k: Option<u32>,
    /// Most tokens to generate, at least 1; `None` fills the context.
    pub max_tokens: Option<u32>,
    /// Stop strings.
    pub stop: Vec<String>,
    /// Alternatives per position when log-probabilities are asked for.
    pub logprobs: Option<u32>,
    /// The sampler's seed: the request's, or one derived from the request bytes.
    pub seed: u64,
    /// Output tokens already produced elsewhere, which this answer continues.
    pub continuation_tokens: Vec<u32>,
    /// Bytes of the continuation's text the client has received.
    pub continuation_emitted_bytes: usize,
    /// Answer as server-sent events.
    pub stream: bool,
    /// Send a usage chunk at the end of a stream.
    pub include_usage: bool,
    /// Report token ids (Agora extension).
    pub token_ids: bool,
}

/// Why a request cannot be planned: an OpenAI-style 400 about `param`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PlanError {
    /// What is wrong.
    pub message: String,
    /// The offending parameter.
    pub param: Option<&'static str>,
}

fn bad(message: impl Into<String>, param: &'static str) -> PlanError {
    PlanError {
        message: message.into(),
        param: Some(param),
    }
}

/// Validates `request` (parsed from `body`) and turns it into a [`ChatPlan`].
///
/// Without a seed, one is derived from the request bytes, so the same request samples the
/// same answer.
pub fn plan(request: ChatCompletionRequest, body: &[u8]) -> Result<ChatPlan, PlanError> {
    if request.messages.is_empty() {
        return Err(bad("messages must not be empty", "messages"));
    }
    let mut messages = Vec::with_capacity(request.messages.len());
    for message in &request.messages {
        let role = match message.role.as_str() {
            "system" | "developer" => "system",
            "user" => "user",
            "assistant" => "assistant",
            "tool" => "tool",
            other => return Err(bad(format!("unknown message role '{other}'"), "messages")),
        };
        let content = match &message.content {
            Some(MessageContent::Text(text)) => text.clone(),
            Some(MessageContent::Parts(parts)) => {
                let mut text = String::new();
                for part in parts {
                    match (part.kind.as_str(), &part.text) {
                        ("text", Some(t)) => text.push_str(t),
                        (kind, _) => {
                            return Err(bad(
                                format!("content part type '{kind}' is not supported"),
                                "messages",
                            ))
                        }
                    }
                }
                text
            }
            None => String::new(),
        };
        messages.push(PlannedMessage { role, content });
    }
    if request.n.is_some_and(|n| n != 1) {
        return Err(bad("only n = 1 is supported", "n"));
    }
    let temperature = request.temperature.unwrap_or(1.0);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(bad("temperature must be between 0 and 2", "temperature"));
    }
    let top_p = request.top_p.unwrap_or(1.0);
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(bad("top_p must be in (0, 1]", "top_p"));
    }
    let top_k = match request.top_k {
        None => None,
        Some(k) if (0..=i64::from(u32::MAX)).contains(&k) => Some(k as u32),
        Some(_) => return Err(bad("top_k must be a non-negative integer", "top_k")),
    };
    let max_tokens = match request.requested_max_tokens() {
        None => None,
        Some(n) if n >= 1 => Some(u32::try_from(n).unwrap_or(u32::MAX)),
        Some(_) => return Err(bad("max_tokens must be at least 1", "max_tokens")),
    };
    let stop = request.stop.map(|s| s.into_vec()).unwrap_or_default();
    if stop.len() > MAX_STOP_STRINGS || stop.iter().any(String::is_empty) {
        return Err(bad(
            format!("stop takes up to {MAX_STOP_STRINGS} non-empty strings"),
            "stop",
        ));
    }
    let logprobs = match (request.logprobs.unwrap_or(false), request.top_logprobs) {
        (false, None) => None,
        (false, Some(_)) => {
            return Err(bad(
                "top_logprobs requires logprobs to be true",
                "top_logprobs",
            ))
        }
        (true, top) => {
            let top = top.unwrap_or(0);
            if !(0..=MAX_TOP_LOGPROBS).contains(&top) {
                return Err(bad(
                    format!("top_logprobs must be between 0 and {MAX_TOP_LOGPROBS}"),
                    "top_logprobs",
                ));
            }
            Some(top as u32)
        }
    };
    let seed = match request.seed {
        Some(seed) => seed as u64,
        None => {
            let hash = Hash::of(body);
            u64::from_le_bytes(hash.0[..8].try_into().unwrap_or_default())
        }
    };
    let agora = request.agora.unwrap_or_default();
    let (continuation_tokens, continuation_emitted_bytes) = agora
        .continuation
        .map(|c| (c.tokens, c.emitted_bytes))
        .unwrap_or_default();
    Ok(ChatPlan {
        model: request.model,
        messages,
        temperature: temperature as f32,
        top_p: top_p as f32,
        top_k,
        max_tokens,
        stop,
        logprobs,
        seed,
        continuation_tokens,
        continuation_emitted_bytes,
        stream: request.stream,
        include_usage: request.stream_options.is_some_and(|o| o.include_usage),
        token_ids: agora.token_ids,
    })
}

/// Parses `body` as a chat request and plans it.
pub fn plan_body(body: &[u8]) -> Result<ChatPlan, PlanError> {
    let request: ChatCompletionRequest = serde_json::from_slice(body).map_err(|err| PlanError {
        message: format!("invalid request body: {err}"),
        param: None,
    })?;
    plan(request, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_json(json: &str) -> Result<ChatPlan, PlanError> {
        plan_body(json.as_bytes())
    }

    #[test]
    fn a_request_without_a_seed_gets_one_from_its_bytes() {
        let body = r#"{"model":"m","messages":[{"role":"developer","content":"hi"}]}"#;
        let plan = plan_json(body).unwrap();
        assert_eq!(plan.messages[0].role, "system");
        assert_eq!(plan.seed, plan_json(body).unwrap().seed);
        let other = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
        assert_ne!(plan.seed, plan_json(other).unwrap().seed);
        let seeded = r#"{"model":"m","seed":7,"messages":[{"role":"user","content":"hi"}]}"#;
        assert_eq!(plan_json(seeded).unwrap().seed, 7);
    }

    #[test]
    fn bad_parameters_name_themselves() {
        let cases = [
            (r#"{"model":"m","messages":[]}"#, Some("messages")),
            (
                r#"{"model":"m","temperature":3,"messages":[{"role":"user","content":"x"}]}"#,
                Some("temperature"),
            ),
            (
                r#"{"model":"m","top_p":0,"messages":[{"role":"user","content":"x"}]}"#,
                Some("top_p"),
            ),
            (
                r#"{"model":"m","max_tokens":0,"messages":[{"role":"user","content":"x"}]}"#,
                Some("max_tokens"),
            ),
            (
                r#"{"model":"m","messages":[{"role":"robot","content":"x"}]}"#,
                Some("messages"),
            ),
            (r#"{"model":"m","messages":"#, None),
        ];
        for (body, param) in cases {
            let err = plan_json(body).unwrap_err();
            assert_eq!(err.param, param, "{body}: {err}");
        }
    }
}
