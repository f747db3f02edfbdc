//! Shared fixtures: the default model and engines over it.

use std::{path::PathBuf, sync::OnceLock};

use agora_engine::{
    ChatMessage, Engine, EngineConfig, Event, Finish, GenerateRequest, SamplingParams,
};
use futures::{executor::block_on, StreamExt};

/// The default model's path, fetched and verified once per test process.
pub(crate) fn model_path() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        agora_store::default_model::ensure_shared(&mut |_, _| {}).expect("fetch the default model")
    })
    .clone()
}

/// An engine over the default model with `slots` sequences and `threads` threads.
pub(crate) fn engine(slots: u32, threads: u32) -> Engine {
    let mut config = EngineConfig::for_model(model_path());
    config.max_sequences = slots;
    config.threads = threads;
    config.context_per_sequence = 1024;
    Engine::load(config).expect("load the default model")
}

/// The shared 8-slot, 2-thread engine most tests use.
pub(crate) fn shared() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| engine(8, 2))
}

/// A prompt from a single user message.
pub(crate) fn prompt(engine: &Engine, text: &str) -> Vec<u32> {
    engine
        .tokenize_chat(&[ChatMessage::new("user", text)])
        .expect("tokenize")
}

/// A request for `prompt` under `sampling`, at most `max_tokens` tokens.
pub(crate) fn request(
    prompt: Vec<u32>,
    sampling: SamplingParams,
    max_tokens: u32,
) -> GenerateRequest {
    GenerateRequest {
        prompt,
        sampling,
        max_tokens: Some(max_tokens),
        stop: Vec::new(),
        logprobs: None,
        continuation: Default::default(),
    }
}

/// What a finished generation produced.
#[derive(Debug, Clone)]
pub(crate) struct Output {
    pub(crate) ids: Vec<u32>,
    pub(crate) text: String,
    /// (chosen token's logit, best logit) at every position.
    pub(crate) logits: Vec<(f32, f32)>,
    pub(crate) finish: Finish,
}

/// Drains a generation to its end.
pub(crate) fn collect(generation: agora_engine::Generation) -> Output {
    block_on(collect_async(generation))
}

/// Drains a generation to its end, asynchronously.
pub(crate) async fn collect_async(mut generation: agora_engine::Generation) -> Output {
    let mut ids = Vec::new();
    let mut text = String::new();
    let mut logits = Vec::new();
    while let Some(event) = generation.next().await {
        match event {
            Event::Token {
                id,
                text: piece,
                logits: l,
                ..
            } => {
                ids.push(id);
                text.push_str(&piece);
                logits.push(l);
            }
            Event::Done(finish) => {
                text.push_str(&finish.tail_text);
                return Output {
                    ids,
                    text,
                    logits,
                    finish,
                };
            }
            Event::Failed(reason) => panic!("generation failed: {reason}"),
        }
    }
    panic!("generation ended without Done");
}

/// Runs one request to its end.
pub(crate) fn run(engine: &Engine, request: GenerateRequest) -> Output {
    collect(engine.generate(request).expect("queue the request"))
}
