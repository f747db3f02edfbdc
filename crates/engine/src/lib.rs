//! Agora's inference engine: llama.cpp backend, continuous batching, chat templates, sampling
//! and verification scoring.
//!
//! # Shape
//! [`Engine::load`] loads one GGUF model and starts one engine thread that owns the llama.cpp
//! context. Requests enter a bounded queue ([`Error::QueueFull`] when it is full); the thread
//! admits them into free sequence slots, decodes every active sequence in one batch per step,
//! and retires finished ones (continuous batching). Each sequence has its own KV cache stream
//! unless [`EngineConfig::unified_kv`] is set.
//!
//! # Determinism
//! Sampling is ours ([`sampling`]), not llama.cpp's, so a verifier can re-run it. Logits are not
//! bit-identical across thread counts, batch layouts, or one-pass prefill versus token-by-token
//! decode; compare them with a measured tolerance, never with `==`.
//!
//! # Scoring
//! [`Engine::score`] runs one prefill pass over prompt + output and returns, at every output
//! position, the output token's logit and log-probability and the top-k alternatives. It is the
//! verifier's cheap check of a claimed answer.

mod engine;
mod error;
pub mod quantize;
pub mod sampling;
mod scheduler;
pub mod template;

pub use engine::{
    Answer, Continuation, Engine, EngineConfig, Event, Finish, FinishReason, GenerateRequest,
    Generation, ModelInfo, PositionScore, StatsSnapshot, TokenLogprob, TopToken,
};
pub use error::Error;
pub use sampling::SamplingParams;
pub use template::{ChatMessage, ChatTemplate};
