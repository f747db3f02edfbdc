//! The engine's error type.

/// What can go wrong loading a model or running a request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The llama.cpp backend could not be initialized.
    #[error("llama.cpp backend: {0}")]
    Backend(String),
    /// The model file could not be loaded.
    #[error("cannot load model {path}: {reason}")]
    Load {
        /// The file that failed to load.
        path: std::path::PathBuf,
        /// llama.cpp's reason.
        reason: String,
    },
    /// The inference context could not be created.
    #[error("cannot create inference context: {0}")]
    Context(String),
    /// The chat template failed to compile or render.
    #[error("chat template: {0}")]
    Template(String),
    /// The request does not fit in a sequence's context window.
    #[error("this model's maximum context length is {limit} tokens, but the request needs {needed} ({prompt} in the prompt)")]
    ContextOverflow {
        /// Tokens a sequence can hold.
        limit: u32,
        /// Tokens the request needs: prompt plus the requested completion.
        needed: u64,
        /// Tokens in the prompt.
        prompt: u32,
    },
    /// The request is empty or otherwise unusable.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A token id is outside the vocabulary.
    #[error("token id {0} is outside the vocabulary")]
    BadToken(u32),
    /// The bounded request queue is full.
    #[error("the engine's request queue is full")]
    QueueFull,
    /// The engine thread has stopped.
    #[error("the engine has stopped")]
    Stopped,
    /// llama.cpp failed to decode a batch.
    #[error("decode failed: {0}")]
    Decode(String),
}
