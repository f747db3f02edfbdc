//! The engine thread: continuous batching over llama.cpp sequences.
//!
//! Each step builds one batch: first one token for every sequence that is decoding, then
//! prompt chunks of sequences still in prefill, up to `batch_tokens`. After `decode` it reads the
//! logits each sequence asked for, samples or scores, and retires sequences that are done.
//! New requests are admitted whenever a slot is free, between steps.

use std::{
    num::NonZeroU32,
    sync::{
        atomic::{AtomicU64, Ordering},
        mpsc::{Receiver, Sender, TryRecvError},
    },
};

use futures::channel::{mpsc::UnboundedSender, oneshot};
use llama_cpp_2::{
    context::{params::LlamaContextParams, LlamaContext},
    llama_backend::LlamaBackend,
    llama_batch::LlamaBatch,
    model::LlamaModel,
    token::LlamaToken,
};

use crate::{
    engine::{
        Event, Finish, FinishReason, GenerateRequest, Job, PositionScore, Stats, TokenLogprob,
        TopToken,
    },
    sampling, Error,
};

/// Context settings for the engine thread.
pub(crate) struct Params {
    pub(crate) threads: u32,
    pub(crate) max_sequences: u32,
    pub(crate) n_ctx: NonZeroU32,
    pub(crate) batch_tokens: u32,
    pub(crate) unified_kv: bool,
}

/// Runs until the job queue closes and every admitted sequence has finished.
pub(crate) fn run(
    backend: &LlamaBackend,
    model: &LlamaModel,
    params: Params,
    jobs: Receiver<Job>,
    stats: &Stats,
    ready: Sender<Result<(), Error>>,
) {
    let context_params = LlamaContextParams::default()
        .with_n_ctx(Some(params.n_ctx))
        .with_n_batch(params.batch_tokens)
        .with_n_ubatch(params.batch_tokens)
        .with_n_seq_max(params.max_sequences)
        .with_n_threads(params.threads as i32)
        .with_n_threads_batch(params.threads as i32)
        .with_kv_unified(params.unified_kv);
    let mut ctx = match model.new_context(backend, context_params) {
        Ok(ctx) => ctx,
        Err(err) => {
            let _ = ready.send(Err(Error::Context(err.to_string())));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    let mut batch = LlamaBatch::new(params.batch_tokens as usize, 1);
    let mut slots: Vec<Option<Sequence>> = (0..params.max_sequences).map(|_| None).collect();
    let mut open = true;
    loop {
        // Admit waiting requests into free slots; block only when nothing is running.
        while open {
            let Some(free) = slots.iter().position(Option::is_none) else {
                break;
            };
            let idle = slots.iter().all(Option::is_none);
            let job = if idle {
                jobs.recv().map_err(|_| TryRecvError::Disconnected)
            } else {
                jobs.try_recv()
            };
            match job {
                Ok(job) => {
                    stats.queued.fetch_sub(1, Ordering::Relaxed);
                    // A fresh slot starts with an empty cache; a failure here only means there was none.
                    let _ = ctx.clear_kv_cache_seq(Some(free as u32), None, None);
                    slots[free] = Some(Sequence::new(job, model));
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => open = false,
            }
        }
        if slots.iter().all(Option::is_none) {
            if open {
                continue;
            }
            return;
        }
        stats.active.store(
            slots.iter().filter(|s| s.is_some()).count() as u64,
            Ordering::Relaxed,
        );
        step(
            &mut ctx,
            model,
            &mut batch,
            &mut slots,
            params.batch_tokens as usize,
            stats,
        );
    }
}

/// One sequence in a slot.
struct Sequence {
    /// Tokens to feed into the KV cache, in order: the prompt (and, for scoring, the output).
    tokens: Vec<LlamaToken>,
    /// How many of `tokens` are in the KV cache.
    fed: usize,
    kind: Kind,
}

enum Kind {
    Generate(Generating),
    Score(Scoring),
}

struct Generating {
    request: GenerateRequest,
    events: UnboundedSender<Event>,
    /// Tokens fed before the first new one: the prompt plus any continued output.
    prompt_len: usize,
    /// Output positions produced before this generation (see [`crate::Continuation`]).
    offset: u64,
    generated: u32,
    max_tokens: u32,
    text: TextState,
}

struct Scoring {
    prompt_len: usize,
    top_k: usize,
    scores: Vec<PositionScore>,
    reply: Option<oneshot::Sender<Result<Vec<PositionScore>, Error>>>,
}

/// What happened to a sequence after a step.
enum Outcome {
    Continue,
    Retire,
}

impl Sequence {
    fn new(job: Job, model: &LlamaModel) -> Self {
        let to_tokens = |ids: &[u32]| {
            ids.iter()
                .map(|&t| LlamaToken(t as i32))
                .collect::<Vec<_>>()
        };
        match job {
            Job::Generate { request, events } => {
                // `Engine::generate` always sets the limit; one token is the safe reading otherwise.
                let max_tokens = request.max_tokens.unwrap_or(1);
                let continued = &request.continuation;
                let mut tokens = to_tokens(&request.prompt);
                tokens.extend(to_tokens(&continued.tokens));
                let mut text = TextState::new(request.stop.clone());
                let earlier: Vec<u8> = continued
                    .tokens
                    .iter()
                    .flat_map(|&t| token_piece(model, t))
                    .collect();
                text.resume(&earlier, continued.emitted_bytes);
                Sequence {
                    kind: Kind::Generate(Generating {
                        prompt_len: tokens.len(),
                        offset: continued.tokens.len() as u64,
                        generated: 0,
                        max_tokens,
                        text,
                        request,
                        events,
                    }),
                    tokens,
                    fed: 0,
                }
            }
            Job::Score {
                prompt,
                output,
                top_k,
                reply,
            } => {
                let mut tokens = to_tokens(&prompt);
                tokens.extend(to_tokens(&output));
                Sequence {
                    tokens,
                    fed: 0,
                    kind: Kind::Score(Scoring {
                        prompt_len: prompt.len(),
                        top_k,
                        scores: Vec::with_capacity(output.len()),
                        reply: Some(reply),
                    }),
                }
            }
        }
    }

    /// Whether the token at `pos` needs its logits read after decode.
    fn wants_logits(&self, pos: usize) -> bool {
        match &self.kind {
            Kind::Generate(_) => pos + 1 == self.tokens.len(),
            Kind::Score(s) => pos + 1 >= s.prompt_len && pos + 1 < self.tokens.len(),
        }
    }

    fn fail(&mut self, message: &str) {
        match &mut self.kind {
            Kind::Generate(g) => {
                let _ = g.events.unbounded_send(Event::Failed(message.to_owned()));
            }
            Kind::Score(s) => {
                if let Some(reply) = s.reply.take() {
                    let _ = reply.send(Err(Error::Decode(message.to_owned())));
                }
            }
        }
    }
}

fn step(
    ctx: &mut LlamaContext<'_>,
    model: &LlamaModel,
    batch: &mut LlamaBatch<'_>,
    slots: &mut [Option<Sequence>],
    budget: usize,
    stats: &Stats,
) {
    batch.clear();
    // (slot, position in the sequence, index in the batch) for every logits row requested.
    let mut reads: Vec<(usize, usize, i32)> = Vec::new();
    let mut n_tokens = 0usize;
    let mut prompt_tokens = 0u64;
    // Decoding sequences first (one token each), then prefill chunks, so a long prompt never
    // stalls running streams.
    for decoding_pass in [true, false] {
        for (slot, seq) in slots.iter_mut().enumerate() {
            let Some(seq) = seq else { continue };
            let remaining = seq.tokens.len() - seq.fed;
            if remaining == 0 || (remaining == 1) != decoding_pass {
                continue;
            }
            let take = remaining.min(budget - n_tokens);
            for pos in seq.fed..seq.fed + take {
                let logits = seq.wants_logits(pos);
                if batch
                    .add(seq.tokens[pos], pos as i32, &[slot as i32], logits)
                    .is_err()
                {
                    break;
                }
                if logits {
                    reads.push((slot, pos, n_tokens as i32));
                }
                n_tokens += 1;
            }
            if !decoding_pass {
                prompt_tokens += take as u64;
            }
            seq.fed += take;
            if n_tokens == budget {
                break;
            }
        }
    }
    if n_tokens == 0 {
        return;
    }
    stats
        .last_batch_tokens
        .store(n_tokens as u64, Ordering::Relaxed);
    stats.decode_steps.fetch_add(1, Ordering::Relaxed);
    stats
        .prompt_tokens
        .fetch_add(prompt_tokens, Ordering::Relaxed);
    if let Err(err) = ctx.decode(batch) {
        let message = err.to_string();
        for slot in slots.iter_mut() {
            if let Some(mut seq) = slot.take() {
                seq.fail(&message);
            }
        }
        return;
    }
    let mut outcomes: Vec<(usize, Outcome)> = Vec::new();
    for (slot, pos, batch_idx) in reads {
        let Some(seq) = slots[slot].as_mut() else {
            continue;
        };
        let logits = ctx.get_logits_ith(batch_idx);
        let outcome = match &mut seq.kind {
            Kind::Generate(g) => {
                let outcome = generate_next(g, logits, model, &stats.completion_tokens);
                if let Some(token) = outcome {
                    seq.tokens.push(LlamaToken(token as i32));
                    Outcome::Continue
                } else {
                    Outcome::Retire
                }
            }
            Kind::Score(s) => {
                let token = seq.tokens[pos + 1].0 as u32;
                s.scores.push(score_position(logits, token, s.top_k));
                if pos + 2 == seq.tokens.len() {
                    if let Some(reply) = s.reply.take() {
                        let _ = reply.send(Ok(std::mem::take(&mut s.scores)));
                    }
                    Outcome::Retire
                } else {
                    Outcome::Continue
                }
            }
        };
        outcomes.push((slot, outcome));
    }
    for (slot, outcome) in outcomes {
        if matches!(outcome, Outcome::Retire) {
            slots[slot] = None;
        }
    }
    // A generation whose client went away is dropped at once.
    for slot in slots.iter_mut() {
        if let Some(Sequence {
            kind: Kind::Generate(g),
            ..
        }) = slot
        {
            if g.events.is_closed() {
                *slot = None;
            }
        }
    }
}

/// Samples the next token, reports it, and returns it if generation goes on.
fn generate_next(
    g: &mut Generating,
    logits: &[f32],
    model: &LlamaModel,
    completion_counter: &AtomicU64,
) -> Option<u32> {
    let position = g.offset + u64::from(g.generated);
    let Some(token) = sampling::sample(logits, &g.request.sampling, position) else {
        let _ = g
            .events
            .unbounded_send(Event::Failed("the model returned no usable logits".into()));
        return None;
    };
    let finish = |g: &mut Generating, reason: FinishReason| {
        let tail_text = g.text.finish();
        let _ = g.events.unbounded_send(Event::Done(Finish {
            reason,
            prompt_tokens: g.prompt_len as u32,
            completion_tokens: g.generated,
            tail_text,
        }));
    };
    if model.vocab().is_eog(LlamaToken(token as i32)) {
        finish(g, FinishReason::Stop);
        return None;
    }
    g.generated += 1;
    completion_counter.fetch_add(1, Ordering::Relaxed);
    let logprob = g
        .request
        .logprobs
        .map(|n| token_logprob(logits, token, n as usize));
    let best = sampling::argmax(logits).map_or(f32::NAN, |b| logits[b as usize]);
    let (text, hit_stop) = g.text.push(&token_piece(model, token));
    let _ = g.events.unbounded_send(Event::Token {
        id: token,
        text,
        logprob,
        logits: (logits[token as usize], best),
    });
    if hit_stop {
        finish(g, FinishReason::Stop);
        return None;
    }
    // `max_tokens` was capped by the engine so that prompt plus output fits the sequence.
    if g.generated >= g.max_tokens {
        finish(g, FinishReason::Length);
        return None;
    }
    Some(token)
}

/// A token's bytes as they appear in output text.
fn token_piece(model: &LlamaModel, token: u32) -> Vec<u8> {
    model
        .vocab()
        .token_to_piece(LlamaToken(token as i32), false, None)
}

fn token_logprob(logits: &[f32], token: u32, top: usize) -> TokenLogprob {
    let (log_z, _) = sampling::log_z_and_entropy(logits);
    TokenLogprob {
        logprob: logits[token as usize] - log_z,
        top: top_tokens(logits, log_z, top),
    }
}

/// The `n` highest-logit tokens with their logits and log-probabilities.
fn top_tokens(logits: &[f32], log_z: f32, n: usize) -> Vec<TopToken> {
    sampling::top_n(logits, n)
        .into_iter()
        .map(|t| TopToken {
            token: t,
            logit: logits[t as usize],
            logprob: logits[t as usize] - log_z,
        })
        .collect()
}

fn score_position(logits: &[f32], token: u32, top_k: usize) -> PositionScore {
    let (log_z, entropy) = sampling::log_z_and_entropy(logits);
    let max_logit = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    PositionScore {
        token,
        logit: logits[token as usize],
        logprob: logits[token as usize] - log_z,
        max_logit,
        entropy,
        top: top_tokens(logits, log_z, top_k),
    }
}

/// Output text as it is released: whole UTF-8 characters, held back while it may begin a stop string.
struct TextState {
    stop: Vec<String>,
    pending: Vec<u8>,
    text: String,
    sent: usize,
}

impl TextState {
    fn new(stop: Vec<String>) -> Self {
        TextState {
            stop: stop.into_iter().filter(|s| !s.is_empty()).collect(),
            pending: Vec::new(),
            text: String::new(),
            sent: 0,
        }
    }

    /// Takes up an answer another generation began: `earlier` is its output so far, of which
    /// the first `emitted` bytes were already released. Stop strings are not searched in it
    /// (the earlier generation would have stopped).
    fn resume(&mut self, earlier: &[u8], emitted: usize) {
        self.pending.extend_from_slice(earlier);
        let valid = match std::str::from_utf8(&self.pending) {
            Ok(text) => text.len(),
            Err(err) => err.valid_up_to(),
        };
        let decoded: Vec<u8> = self.pending.drain(..valid).collect();
        self.text.push_str(&String::from_utf8_lossy(&decoded));
        let mut sent = emitted.min(self.text.len());
        while !self.text.is_char_boundary(sent) {
            sent -= 1;
        }
        self.sent = sent;
    }

    /// Adds a token's bytes; returns the text to release now and whether a stop string was hit.
    fn push(&mut self, bytes: &[u8]) -> (String, bool) {
        self.pending.extend_from_slice(bytes);
        let valid = match std::str::from_utf8(&self.pending) {
            Ok(text) => text.len(),
            Err(err) if err.error_len().is_some() => self.pending.len(),
            Err(err) => err.valid_up_to(),
        };
        let decoded: Vec<u8> = self.pending.drain(..valid).collect();
        self.text.push_str(&String::from_utf8_lossy(&decoded));
        if let Some(at) = self
            .stop
            .iter()
            .filter_map(|s| self.text.find(s.as_str()))
            .min()
        {
            self.text.truncate(at);
            let out = self.text[self.sent.min(at)..].to_owned();
            self.sent = self.text.len();
            return (out, true);
        }
        let hold = self.held_back();
        let release_to = self.text.len() - hold;
        let out = self.text[self.sent..release_to.max(self.sent)].to_owned();
        self.sent = release_to.max(self.sent);
        (out, false)
    }

    /// Bytes at the end of the text that could be the start of a stop string.
    fn held_back(&self) -> usize {
        let mut hold = 0;
        for stop in &self.stop {
            for len in (1..stop.len()).rev() {
                if len <= hold {
                    break;
                }
                if stop.is_char_boundary(len) && self.text.ends_with(&stop[..len]) {
                    hold = len;
                    break;
                }
            }
        }
        hold
    }

    /// Releases whatever was held back.
    fn finish(&mut self) -> String {
        if !self.pending.is_empty() {
            let rest: Vec<u8> = self.pending.drain(..).collect();
            self.text.push_str(&String::from_utf8_lossy(&rest));
        }
        let out = self.text[self.sent..].to_owned();
        self.sent = self.text.len();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::TextState;

    fn run(stop: &[&str], pieces: &[&[u8]]) -> (String, bool) {
        let mut state = TextState::new(stop.iter().map(|s| s.to_string()).collect());
        let mut out = String::new();
        for piece in pieces {
            let (text, hit) = state.push(piece);
            out.push_str(&text);
            if hit {
                return (out, true);
            }
        }
        out.push_str(&state.finish());
        (out, false)
    }

    #[test]
    fn stop_string_split_across_tokens_is_cut_before_it() {
        assert_eq!(
            run(&["END"], &[b"hello E", b"N", b"D more"]),
            ("hello ".into(), true)
        );
    }

    #[test]
    fn held_text_that_is_not_a_stop_is_released() {
        assert_eq!(
            run(&["END"], &[b"hello E", b"N"]),
            ("hello EN".into(), false)
        );
        assert_eq!(run(&["END"], &[b"E", b"x"]), ("Ex".into(), false));
    }

    #[test]
    fn resumed_text_releases_what_the_earlier_generation_held_back() {
        let mut state = TextState::new(vec!["END".into()]);
        state.resume(b"hello E", 6);
        assert_eq!(state.push(b"x"), ("Ex".into(), false));
        let mut state = TextState::new(vec!["END".into()]);
        state.resume(b"hello E", 6);
        assert_eq!(state.push(b"ND"), (String::new(), true));
    }

    #[test]
    fn multibyte_characters_split_across_tokens_arrive_whole() {
        let euro = "€".as_bytes();
        let mut state = TextState::new(Vec::new());
        assert_eq!(state.push(&euro[..1]).0, "");
        assert_eq!(state.push(&euro[1..]).0, "€");
    }
}
