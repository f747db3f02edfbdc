//! The public face of the engine: loading, requests, events and scores.

use std::{
    num::NonZeroU32,
    path::PathBuf,
    sync::{
        atomic::{AtomicU64, Ordering},
        mpsc::{self, SyncSender, TrySendError},
        Arc, OnceLock,
    },
    thread::JoinHandle,
};

use futures::channel::{mpsc as async_mpsc, oneshot};
use llama_cpp_2::{
    llama_backend::LlamaBackend,
    model::{params::LlamaModelParams, LlamaChatMessage, LlamaModel},
    token::LlamaToken,
};

use crate::{scheduler, template::ChatMessage, ChatTemplate, Error, SamplingParams};

/// How to load a model and run its engine.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Path to the GGUF file.
    pub model_path: PathBuf,
    /// CPU threads for decode and prefill.
    pub threads: u32,
    /// Sequences decoded together in one batch (continuous batching slots).
    pub max_sequences: u32,
    /// Tokens one sequence may hold: prompt plus completion.
    pub context_per_sequence: u32,
    /// Tokens per llama.cpp batch (prefill chunk size).
    pub batch_tokens: u32,
    /// Requests that may wait for a free slot before new ones are refused.
    pub queue_capacity: usize,
    /// Share one KV cache between sequences instead of one stream each.
    pub unified_kv: bool,
}

impl EngineConfig {
    /// A configuration for `model_path` sized for a small CPU machine.
    pub fn for_model(model_path: impl Into<PathBuf>) -> Self {
        EngineConfig {
            model_path: model_path.into(),
            threads: std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(2),
            max_sequences: 8,
            context_per_sequence: 2048,
            batch_tokens: 512,
            queue_capacity: 64,
            unified_kv: false,
        }
    }
}

/// What the engine knows about its model.
#[derive(Clone, Debug)]
pub struct ModelInfo {
    /// Vocabulary size.
    pub n_vocab: u32,
    /// Context length the model was trained with.
    pub n_ctx_train: u32,
    /// Tokens one sequence may hold in this engine.
    pub context_per_sequence: u32,
    /// Model size in bytes of weights.
    pub size_bytes: u64,
    /// Parameter count.
    pub n_params: u64,
}

/// One generation request, already tokenized.
#[derive(Clone, Debug)]
pub struct GenerateRequest {
    /// Prompt token ids.
    pub prompt: Vec<u32>,
    /// Sampling rule and seed.
    pub sampling: SamplingParams,
    /// Most tokens to generate; `None` fills the context.
    pub max_tokens: Option<u32>,
    /// Strings that end generation; the output stops before the first one found.
    pub stop: Vec<String>,
    /// Report the chosen token's log-probability plus this many alternatives; `None` for none.
    pub logprobs: Option<u32>,
    /// Output already produced for this answer elsewhere (a provider that failed mid-stream),
    /// which this generation continues; empty for a fresh answer.
    pub continuation: Continuation,
}

/// The part of an answer generated before a failover.
///
/// Its tokens are fed after the prompt and count as output positions, so the seeded sampler
/// picks what an undisturbed run would have picked at each later position; they are not
/// reported again, and `max_tokens` counts only new tokens.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Continuation {
    /// Output tokens already generated.
    pub tokens: Vec<u32>,
    /// Bytes of their text the client has already received; the rest (held back while it
    /// could begin a stop string, or an incomplete character) is released by this generation.
    pub emitted_bytes: usize,
}

/// Log-probability information for one generated token.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenLogprob {
    /// Log-probability of the chosen token under the raw logits.
    pub logprob: f32,
    /// The most likely alternatives, highest first.
    pub top: Vec<TopToken>,
}

/// A token with its raw logit and log-probability.
#[derive(Clone, Debug, PartialEq)]
pub struct TopToken {
    /// Token id.
    pub token: u32,
    /// Raw logit from the model.
    pub logit: f32,
    /// Log-probability under the raw logits.
    pub logprob: f32,
}

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// An end-of-generation token or a stop string.
    Stop,
    /// `max_tokens` or the context limit was reached.
    Length,
}

/// The end of a generation.
#[derive(Clone, Debug, PartialEq)]
pub struct Finish {
    /// Why it ended.
    pub reason: FinishReason,
    /// Tokens in the prompt.
    pub prompt_tokens: u32,
    /// Tokens generated (end-of-generation tokens excluded).
    pub completion_tokens: u32,
    /// Text held back while it could have begun a stop string, released at the end.
    pub tail_text: String,
}

/// What a running generation reports.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// One generated token.
    Token {
        /// Token id.
        id: u32,
        /// Text this token adds to the output (may be empty while a stop string could begin).
        text: String,
        /// Log-probabilities, when requested.
        logprob: Option<TokenLogprob>,
        /// The raw logit of the chosen token and the best logit at this position.
        logits: (f32, f32),
    },
    /// Generation ended normally.
    Done(Finish),
    /// Generation failed.
    Failed(String),
}

/// A finished answer: its tokens and the raw logit the model gave each.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Answer {
    /// Output token ids.
    pub tokens: Vec<u32>,
    /// The raw logit of each token where it was chosen.
    pub logits: Vec<f32>,
}

/// A running generation: a stream of [`Event`]s ending in `Done` or `Failed`.
pub type Generation = async_mpsc::UnboundedReceiver<Event>;

/// The score of one output position from a single prefill pass.
#[derive(Clone, Debug, PartialEq)]
pub struct PositionScore {
    /// The output token at this position.
    pub token: u32,
    /// Its raw logit.
    pub logit: f32,
    /// Its log-probability under the raw logits.
    pub logprob: f32,
    /// The highest raw logit at this position.
    pub max_logit: f32,
    /// Entropy (nats) of the raw distribution at this position.
    pub entropy: f32,
    /// The top-k tokens, highest first.
    pub top: Vec<TopToken>,
}

/// Counters the engine keeps for metrics.
#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) queued: AtomicU64,
    pub(crate) active: AtomicU64,
    pub(crate) last_batch_tokens: AtomicU64,
    pub(crate) prompt_tokens: AtomicU64,
    pub(crate) completion_tokens: AtomicU64,
    pub(crate) decode_steps: AtomicU64,
}

/// A point-in-time copy of the engine's counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct StatsSnapshot {
    /// Requests waiting for a slot.
    pub queued: u64,
    /// Sequences in the running batch.
    pub active: u64,
    /// Tokens in the last decoded batch.
    pub last_batch_tokens: u64,
    /// Prompt tokens processed since start.
    pub prompt_tokens: u64,
    /// Tokens generated since start.
    pub completion_tokens: u64,
    /// Batches decoded since start.
    pub decode_steps: u64,
}

/// Work for the engine thread.
pub(crate) enum Job {
    Generate {
        request: GenerateRequest,
        events: async_mpsc::UnboundedSender<Event>,
    },
    Score {
        prompt: Vec<u32>,
        output: Vec<u32>,
        top_k: usize,
        reply: oneshot::Sender<Result<Vec<PositionScore>, Error>>,
    },
}

/// A loaded model with its engine thread.
pub struct Engine {
    model: Arc<LlamaModel>,
    template: ChatTemplate,
    info: ModelInfo,
    jobs: Option<SyncSender<Job>>,
    stats: Arc<Stats>,
    thread: Option<JoinHandle<()>>,
}

/// llama.cpp's backend may be initialized once per process.
pub(crate) fn backend() -> Result<&'static LlamaBackend, Error> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            let mut backend = LlamaBackend::init().map_err(|err| err.to_string())?;
            if std::env::var_os("AGORA_LLAMA_LOG").is_none() {
                backend.void_logs();
            }
            Ok(backend)
        })
        .as_ref()
        .map_err(|err| Error::Backend(err.clone()))
}

impl Engine {
    /// Loads the model, compiles its chat template and starts the engine thread.
    pub fn load(config: EngineConfig) -> Result<Self, Error> {
        if config.max_sequences == 0 || config.context_per_sequence == 0 || config.threads == 0 {
            return Err(Error::InvalidRequest(
                "threads, max_sequences and context_per_sequence must be positive".into(),
            ));
        }
        let backend = backend()?;
        let model =
            LlamaModel::load_from_file(backend, &config.model_path, &LlamaModelParams::default())
                .map_err(|err| Error::Load {
                path: config.model_path.clone(),
                reason: err.to_string(),
            })?;
        let model = Arc::new(model);
        let template = load_template(&model)?;
        let info = ModelInfo {
            n_vocab: model.n_vocab().max(0) as u32,
            n_ctx_train: model.n_ctx_train(),
            context_per_sequence: config.context_per_sequence,
            size_bytes: model.size(),
            n_params: model.n_params(),
        };
        let (jobs, receiver) = mpsc::sync_channel(config.queue_capacity);
        let stats = Arc::new(Stats::default());
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = {
            let model = Arc::clone(&model);
            let stats = Arc::clone(&stats);
            let params = scheduler::Params {
                threads: config.threads,
                max_sequences: config.max_sequences,
                n_ctx: NonZeroU32::new(config.context_per_sequence * config.max_sequences)
                    .ok_or_else(|| Error::InvalidRequest("context size overflows".into()))?,
                batch_tokens: config.batch_tokens.max(1),
                unified_kv: config.unified_kv,
            };
            std::thread::Builder::new()
                .name("agora-engine".into())
                .spawn(move || scheduler::run(backend, &model, params, receiver, &stats, ready_tx))
                .map_err(|err| Error::Context(err.to_string()))?
        };
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(err)) => return Err(err),
            Err(_) => return Err(Error::Stopped),
        }
        Ok(Engine {
            model,
            template,
            info,
            jobs: Some(jobs),
            stats,
            thread: Some(thread),
        })
    }

    /// What the engine knows about its model.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The chat template from the GGUF.
    pub fn template(&self) -> &ChatTemplate {
        &self.template
    }

    /// Turns a planned chat request into what [`Engine::generate`] takes: the prompt rendered
    /// with the model's template and tokenized, the sampling rule (top-k defaulting to
    /// [`sampling::DEFAULT_TOP_K`]) and the continuation. Provider and verifier both build
    /// their requests here, so a verifier checks exactly what a provider was asked.
    pub fn request_for(&self, plan: &agora_api::plan::ChatPlan) -> Result<GenerateRequest, Error> {
        let messages: Vec<ChatMessage> = plan
            .messages
            .iter()
            .map(|m| ChatMessage::new(m.role, m.content.clone()))
            .collect();
        Ok(GenerateRequest {
            prompt: self.tokenize_chat(&messages)?,
            sampling: SamplingParams {
                temperature: plan.temperature,
                top_p: plan.top_p,
                top_k: plan.top_k.unwrap_or(crate::sampling::DEFAULT_TOP_K),
                seed: plan.seed,
            },
            max_tokens: plan.max_tokens,
            stop: plan.stop.clone(),
            logprobs: plan.logprobs,
            continuation: Continuation {
                tokens: plan.continuation_tokens.clone(),
                emitted_bytes: plan.continuation_emitted_bytes,
            },
        })
    }

    /// Renders `messages` with the model's template and tokenizes the prompt.
    pub fn tokenize_chat(&self, messages: &[ChatMessage]) -> Result<Vec<u32>, Error> {
        if messages.is_empty() {
            return Err(Error::InvalidRequest("messages must not be empty".into()));
        }
        let prompt = self.template.render(messages, true)?;
        Ok(self.tokenize(&prompt))
    }

    /// Renders `messages` with llama.cpp's own built-in template engine, for cross-checking
    /// [`Engine::tokenize_chat`]. llama.cpp recognizes the template family (e.g. ChatML) rather
    /// than running the Jinja source, so it can differ where a template adds logic of its own.
    pub fn render_with_llama_cpp(&self, messages: &[ChatMessage]) -> Result<String, Error> {
        let template = self
            .model
            .chat_template(None)
            .map_err(|err| Error::Template(err.to_string()))?;
        let chat = messages
            .iter()
            .map(|m| LlamaChatMessage::new(m.role.clone(), m.content.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| Error::Template(err.to_string()))?;
        self.model
            .apply_chat_template(&template, &chat, true)
            .map_err(|err| Error::Template(err.to_string()))
    }

    /// Tokenizes text the way llama.cpp's server does: special tokens parsed, BOS as the model says.
    pub fn tokenize(&self, text: &str) -> Vec<u32> {
        self.model
            .vocab()
            .tokenize(text.as_bytes(), true, true)
            .into_iter()
            .map(|t| t.0 as u32)
            .collect()
    }

    /// The text of `tokens`, special tokens left out.
    pub fn detokenize(&self, tokens: &[u32]) -> String {
        let vocab = self.model.vocab();
        let mut bytes = Vec::new();
        for &token in tokens {
            bytes.extend(vocab.token_to_piece(LlamaToken(token as i32), false, None));
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The bytes of one token's text.
    pub fn token_bytes(&self, token: u32) -> Vec<u8> {
        self.model
            .vocab()
            .token_to_piece(LlamaToken(token as i32), false, None)
    }

    /// Queues a generation; the returned stream yields its events.
    ///
    /// Fails at once with [`Error::ContextOverflow`] when prompt plus `max_tokens` does not fit,
    /// and with [`Error::QueueFull`] when the queue is full.
    pub fn generate(&self, mut request: GenerateRequest) -> Result<Generation, Error> {
        self.check_tokens(&request.prompt)?;
        if request.prompt.is_empty() {
            return Err(Error::InvalidRequest("the prompt has no tokens".into()));
        }
        if request.max_tokens == Some(0) {
            return Err(Error::InvalidRequest(
                "max_tokens must be at least 1".into(),
            ));
        }
        self.check_tokens(&request.continuation.tokens)?;
        let prompt = (request.prompt.len() + request.continuation.tokens.len()) as u64;
        let limit = self.info.context_per_sequence;
        let needed = prompt + u64::from(request.max_tokens.unwrap_or(1));
        if needed > u64::from(limit) {
            return Err(Error::ContextOverflow {
                limit,
                needed,
                prompt: prompt as u32,
            });
        }
        // Without a limit, a generation may fill what is left of its sequence's context.
        request.max_tokens = Some(request.max_tokens.unwrap_or(limit - prompt as u32));
        let (events, receiver) = async_mpsc::unbounded();
        self.submit(Job::Generate { request, events })?;
        Ok(receiver)
    }

    /// Runs a generation to its end and returns its token ids (for callers that do not
    /// stream: benchmarks, calibration, tests).
    pub async fn generate_tokens(&self, request: GenerateRequest) -> Result<Vec<u32>, Error> {
        Ok(self.generate_answer(request).await?.tokens)
    }

    /// Runs a generation to its end and returns its tokens with the raw logit of each, as a
    /// provider commits to them.
    pub async fn generate_answer(&self, request: GenerateRequest) -> Result<Answer, Error> {
        use futures::StreamExt as _;
        let mut generation = self.generate(request)?;
        let mut answer = Answer::default();
        while let Some(event) = generation.next().await {
            match event {
                Event::Token {
                    id,
                    logits: (logit, _),
                    ..
                } => {
                    answer.tokens.push(id);
                    answer.logits.push(logit);
                }
                Event::Done(_) => return Ok(answer),
                Event::Failed(reason) => return Err(Error::Decode(reason)),
            }
        }
        Err(Error::Stopped)
    }

    /// Scores `output` after `prompt` in one prefill pass; see [`PositionScore`].
    pub async fn score(
        &self,
        prompt: &[u32],
        output: &[u32],
        top_k: usize,
    ) -> Result<Vec<PositionScore>, Error> {
        self.check_tokens(prompt)?;
        self.check_tokens(output)?;
        if prompt.is_empty() || output.is_empty() {
            return Err(Error::InvalidRequest(
                "scoring needs a prompt and an output".into(),
            ));
        }
        let needed = (prompt.len() + output.len()) as u64;
        let limit = self.info.context_per_sequence;
        if needed > u64::from(limit) {
            return Err(Error::ContextOverflow {
                limit,
                needed,
                prompt: prompt.len() as u32,
            });
        }
        let (reply, receiver) = oneshot::channel();
        self.submit(Job::Score {
            prompt: prompt.to_vec(),
            output: output.to_vec(),
            top_k,
            reply,
        })?;
        receiver.await.map_err(|_| Error::Stopped)?
    }

    /// A copy of the engine's counters.
    pub fn stats(&self) -> StatsSnapshot {
        StatsSnapshot {
            queued: self.stats.queued.load(Ordering::Relaxed),
            active: self.stats.active.load(Ordering::Relaxed),
            last_batch_tokens: self.stats.last_batch_tokens.load(Ordering::Relaxed),
            prompt_tokens: self.stats.prompt_tokens.load(Ordering::Relaxed),
            completion_tokens: self.stats.completion_tokens.load(Ordering::Relaxed),
            decode_steps: self.stats.decode_steps.load(Ordering::Relaxed),
        }
    }

    fn check_tokens(&self, tokens: &[u32]) -> Result<(), Error> {
        match tokens.iter().find(|&&t| t >= self.info.n_vocab) {
            Some(&bad) => Err(Error::BadToken(bad)),
            None => Ok(()),
        }
    }

    fn submit(&self, job: Job) -> Result<(), Error> {
        let jobs = self.jobs.as_ref().ok_or(Error::Stopped)?;
        self.stats.queued.fetch_add(1, Ordering::Relaxed);
        let res = jobs.try_send(job);
        if res.is_err() {
            self.stats.queued.fetch_sub(1, Ordering::Relaxed);
        }
        match res {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(Error::QueueFull),
            Err(TrySendError::Disconnected(_)) => Err(Error::Stopped),
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Closing the queue lets the thread finish its running sequences and exit.
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn load_template(model: &LlamaModel) -> Result<ChatTemplate, Error> {
    let source = model
        .meta_val_str("tokenizer.chat_template")
        .map_err(|_| Error::Template("the model has no tokenizer.chat_template".into()))?;
    let vocab = model.vocab();
    let piece = |token: LlamaToken| {
        String::from_utf8_lossy(&vocab.token_to_piece(token, true, None)).into_owned()
    };
    ChatTemplate::new(&source, &piece(vocab.bos()), &piece(vocab.eos()))
}
