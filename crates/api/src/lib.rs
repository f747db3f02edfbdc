//! The OpenAI-compatible wire types shared by Agora's provider and gateway.
//!
//! Unknown request fields are ignored, as OpenAI does. Validation (ranges, limits) belongs to
//! the server that turns a request into work; these types only describe the JSON.

use serde::{Deserialize, Serialize};

pub mod plan;
mod receipt;

pub use receipt::{ReceiptError, ReceiptJson};

/// Request header carrying the payer's voucher (hex of the borsh `SignedVoucher`).
pub const VOUCHER_HEADER: &str = "x-agora-voucher";
/// Response header naming the receipt (hex id).
pub const RECEIPT_HEADER: &str = "x-agora-receipt";
/// Response header naming the provider that served the answer (set by gateways).
pub const PROVIDER_HEADER: &str = "x-agora-provider";
/// 402 response header with a payment quote (base64 JSON), in the manner of x402.
pub const PAYMENT_REQUIRED_HEADER: &str = "payment-required";
/// Request header carrying an agent's own voucher (hex borsh `SignedVoucher`), x402-style.
pub const PAYMENT_SIGNATURE_HEADER: &str = "payment-signature";

/// `POST /v1/chat/completions` request body.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct ChatCompletionRequest {
    /// Model name or CID.
    pub model: String,
    /// The conversation so far.
    pub messages: Vec<RequestMessage>,
    /// Stream the answer as server-sent events.
    #[serde(default)]
    pub stream: bool,
    /// Streaming options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    /// Most tokens to generate (legacy name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<i64>,
    /// Most tokens to generate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<i64>,
    /// Sampling temperature in `[0, 2]`; `0` is greedy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus mass in `(0, 1]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Candidates kept before top-p (an extension many servers accept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<i64>,
    /// Seed for sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// Stop strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
    /// Return log-probabilities of the output tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<bool>,
    /// Alternatives per position, `0..=20`, with `logprobs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<i64>,
    /// Number of choices; only 1 is served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<i64>,
    /// Agora's extension, set by gateways talking to providers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agora: Option<AgoraRequest>,
}

/// Agora's extension of a chat request (gateway to provider).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct AgoraRequest {
    /// Report each output token's id and raw logit (`agora.tokens` and `agora.logits` in
    /// stream chunks and completions), so that the answer can be continued elsewhere and
    /// checked by token.
    #[serde(default)]
    pub token_ids: bool,
    /// Continue an answer another provider began and did not finish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuation: Option<ContinuationRequest>,
}

/// The part of an answer already streamed to the client.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct ContinuationRequest {
    /// Output token ids generated so far.
    pub tokens: Vec<u32>,
    /// Bytes of their text the client has received.
    pub emitted_bytes: usize,
}

/// Agora's extension of a completion or chunk (provider to gateway, gateway to client).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct AgoraResponse {
    /// Output token ids (this chunk's, or the whole answer's), when asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tokens: Vec<u32>,
    /// The raw logit the model gave each of `tokens`, in thousandths: the receipt's
    /// `response_hash` commits to them, and a verifier compares them with its own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logits: Vec<i32>,
    /// The provider's signed receipt, in the last chunk or the completion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<ReceiptJson>,
    /// The provider that served the answer (set by gateways).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Providers that took over the answer after a failure, in order (set by gateways).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failovers: Vec<String>,
}

impl ChatCompletionRequest {
    /// The completion limit asked for (`max_completion_tokens`, else `max_tokens`), as sent:
    /// negative values stay negative so that [`plan::plan`] can refuse them.
    pub fn requested_max_tokens(&self) -> Option<i64> {
        self.max_completion_tokens.or(self.max_tokens)
    }

    /// [`Self::requested_max_tokens`] clamped into `u32` (negative as 0), for comparing with
    /// limits before the request is planned.
    pub fn requested_max_tokens_u32(&self) -> Option<u32> {
        self.requested_max_tokens()
            .map(|n| u32::try_from(n.max(0)).unwrap_or(u32::MAX))
    }
}

/// Streaming options.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct StreamOptions {
    /// Send a last chunk carrying `usage`.
    #[serde(default)]
    pub include_usage: bool,
}

/// `stop`: one string or several.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Stop {
    /// A single stop string.
    One(String),
    /// Several stop strings.
    Many(Vec<String>),
}

impl Stop {
    /// The stop strings as a list.
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Stop::One(s) => vec![s],
            Stop::Many(v) => v,
        }
    }
}

/// One message of a request.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct RequestMessage {
    /// `system`, `developer`, `user`, `assistant` or `tool`.
    pub role: String,
    /// Text, or a list of content parts.
    #[serde(default)]
    pub content: Option<MessageContent>,
}

/// Message content: a string or a list of parts.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(untagged)]
pub enum MessageContent {
    /// Plain text.
    Text(String),
    /// Content parts; only `text` parts are understood.
    Parts(Vec<ContentPart>),
}

/// A content part.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ContentPart {
    /// Part type, e.g. `text`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The text of a `text` part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// `POST /v1/chat/completions` response without streaming.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ChatCompletion {
    /// Completion id.
    pub id: String,
    /// Always `chat.completion`.
    pub object: String,
    /// Unix seconds.
    pub created: u64,
    /// The model that answered.
    pub model: String,
    /// One choice.
    pub choices: Vec<Choice>,
    /// Token counts.
    pub usage: Usage,
    /// Identifies the serving configuration.
    pub system_fingerprint: String,
    /// The sampling seed used (given or derived).
    pub seed: u64,
    /// Agora's extension: token ids and the receipt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agora: Option<AgoraResponse>,
}

/// One answer.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Choice {
    /// Choice index.
    pub index: u32,
    /// The answer.
    pub message: ResponseMessage,
    /// Log-probabilities, when requested.
    pub logprobs: Option<ChoiceLogprobs>,
    /// `stop` or `length`.
    pub finish_reason: String,
}

/// The assistant's message.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ResponseMessage {
    /// Always `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

/// Token counts.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt_tokens: u32,
    /// Generated tokens.
    pub completion_tokens: u32,
    /// Their sum.
    pub total_tokens: u32,
}

/// Log-probabilities of a choice.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct ChoiceLogprobs {
    /// One entry per output token.
    pub content: Vec<TokenLogprob>,
}

/// One token's log-probability with alternatives.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct TokenLogprob {
    /// Token text.
    pub token: String,
    /// Natural log-probability.
    pub logprob: f32,
    /// UTF-8 bytes of the token.
    pub bytes: Vec<u8>,
    /// Most likely alternatives.
    pub top_logprobs: Vec<TopLogprob>,
}

/// One alternative token.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct TopLogprob {
    /// Token text.
    pub token: String,
    /// Natural log-probability.
    pub logprob: f32,
    /// UTF-8 bytes of the token.
    pub bytes: Vec<u8>,
}

/// One server-sent event of a streamed completion.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ChatCompletionChunk {
    /// Completion id, the same in every chunk.
    pub id: String,
    /// Always `chat.completion.chunk`.
    pub object: String,
    /// Unix seconds.
    pub created: u64,
    /// The model that answers.
    pub model: String,
    /// Zero or one choice deltas.
    pub choices: Vec<ChunkChoice>,
    /// Token counts: only in the last chunk, when `include_usage` was set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Identifies the serving configuration.
    pub system_fingerprint: String,
    /// Agora's extension: token ids and, in the last chunk, the receipt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agora: Option<AgoraResponse>,
}

/// A choice delta.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ChunkChoice {
    /// Choice index.
    pub index: u32,
    /// What this chunk adds.
    pub delta: Delta,
    /// Log-probabilities of the tokens in this chunk.
    pub logprobs: Option<ChoiceLogprobs>,
    /// Set in the chunk that ends the choice.
    pub finish_reason: Option<String>,
}

/// The part of the message a chunk adds.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct Delta {
    /// `assistant` in the first chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Text added.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

/// `GET /v1/models` response.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ModelList {
    /// Always `list`.
    pub object: String,
    /// The models.
    pub data: Vec<Model>,
}

/// One model.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Model {
    /// The name clients use.
    pub id: String,
    /// Always `model`.
    pub object: String,
    /// Unix seconds.
    pub created: u64,
    /// Who serves it.
    pub owned_by: String,
    /// The model's content id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cid: Option<String>,
}

/// OpenAI's error body: `{"error": {...}}`.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The error itself.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ErrorDetail {
    /// Human-readable message.
    pub message: String,
    /// OpenAI's error type, e.g. `invalid_request_error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The offending parameter, if any.
    pub param: Option<String>,
    /// A machine-readable code, e.g. `model_not_found`.
    pub code: Option<String>,
}

impl ErrorBody {
    /// An error body with `message`, `kind`, `param` and `code`.
    pub fn new(
        message: impl Into<String>,
        kind: &str,
        param: Option<&str>,
        code: Option<&str>,
    ) -> Self {
        ErrorBody {
            error: ErrorDetail {
                message: message.into(),
                kind: kind.to_owned(),
                param: param.map(str::to_owned),
                code: code.map(str::to_owned),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_accepts_string_or_parts_and_ignores_unknown_fields() {
        let req: ChatCompletionRequest = serde_json::from_str(
            r#"{"model":"m","messages":[{"role":"user","content":"hi"},
                {"role":"user","content":[{"type":"text","text":"there"}]}],
                "stop":"x","frequency_penalty":0.5,"user":"u"}"#,
        )
        .unwrap();
        assert_eq!(req.messages.len(), 2);
        assert!(matches!(req.stop, Some(Stop::One(ref s)) if s == "x"));
        assert!(matches!(
            req.messages[1].content,
            Some(MessageContent::Parts(_))
        ));
    }

    #[test]
    fn chunk_omits_usage_until_the_end() {
        let chunk = ChatCompletionChunk {
            id: "c".into(),
            object: "chat.completion.chunk".into(),
            created: 1,
            model: "m".into(),
            choices: vec![],
            usage: None,
            system_fingerprint: "f".into(),
            agora: None,
        };
        let json = serde_json::to_value(&chunk).unwrap();
        assert!(json.get("usage").is_none());
    }
}
