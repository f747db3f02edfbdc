//! Ways to cheat, for tests and benchmarks of the verifiers that must catch them (DESIGN §7).
//!
//! None is ever on by default: `agora provider --cheat MODE` turns one on. A provider that
//! serves another GGUF while claiming the governed CID needs no code here: the CLI's
//! `--cheat-claim CID` loads whatever `--model` names under the claimed CID.

use std::sync::Arc;

use agora_engine::{Engine, Event, Finish, FinishReason, GenerateRequest, Generation};
use futures::{channel::mpsc, StreamExt};

use crate::ApiError;

/// Answers the provider gives instead of generating (plausible English, so each token is a
/// likely word piece).
const CANNED: [&str; 3] = [
    "I'm sorry, but I can't help with that request right now. Please try again later.",
    "The answer depends on several factors, but in most cases the simplest option works best.",
    "Sure! Here is a short summary: it is a common question, and the answer is yes.",
];

/// How a cheating provider cheats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cheat {
    /// Returns a canned answer (chosen by the seed) without running the model.
    Canned,
    /// Generates honestly, delivers the first half of the answer and bills the whole.
    Truncate,
    /// Returns a canned answer and prefills it through the model to report real-looking
    /// log-probabilities.
    ForgedPrefill,
}

impl std::str::FromStr for Cheat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "canned" => Ok(Cheat::Canned),
            "truncate" => Ok(Cheat::Truncate),
            "forged-prefill" => Ok(Cheat::ForgedPrefill),
            other => Err(format!(
                "unknown cheat '{other}' (canned, truncate, forged-prefill)"
            )),
        }
    }
}

/// Starts a generation the way `cheat` cheats.
pub(crate) async fn generate(
    cheat: Cheat,
    engine: &Arc<Engine>,
    request: GenerateRequest,
) -> Result<Generation, ApiError> {
    match cheat {
        Cheat::Truncate => truncate(engine.generate(request)?),
        Cheat::Canned => canned(engine, &request, false).await,
        Cheat::ForgedPrefill => canned(engine, &request, true).await,
    }
}

/// Runs the honest generation to its end, then forwards half of its tokens and the full count.
fn truncate(mut honest: Generation) -> Result<Generation, ApiError> {
    let (sender, receiver) = mpsc::unbounded();
    tokio::spawn(async move {
        let mut tokens = Vec::new();
        while let Some(event) = honest.next().await {
            match event {
                Event::Token { .. } => tokens.push(event),
                Event::Done(finish) => {
                    let keep = tokens.len().div_ceil(2);
                    for token in tokens.drain(..).take(keep) {
                        let _ = sender.unbounded_send(token);
                    }
                    let _ = sender.unbounded_send(Event::Done(Finish {
                        tail_text: String::new(),
                        ..finish
                    }));
                    return;
                }
                Event::Failed(reason) => {
                    let _ = sender.unbounded_send(Event::Failed(reason));
                    return;
                }
            }
        }
    });
    Ok(receiver)
}

/// A canned answer, cut to the request's `max_tokens`, optionally with log-probabilities from
/// one prefill pass over it.
async fn canned(
    engine: &Arc<Engine>,
    request: &GenerateRequest,
    prefill: bool,
) -> Result<Generation, ApiError> {
    let text = CANNED[(request.sampling.seed % CANNED.len() as u64) as usize];
    let mut tokens = engine.tokenize(text);
    if let Some(max) = request.max_tokens {
        tokens.truncate(max as usize);
    }
    let mut prompt = request.prompt.clone();
    prompt.extend_from_slice(&request.continuation.tokens);
    let logprobs = match (prefill, request.logprobs) {
        (true, _) if !tokens.is_empty() => {
            let top = request.logprobs.unwrap_or(0).max(1) as usize;
            Some(engine.score(&prompt, &tokens, top).await?)
        }
        _ => None,
    };
    let (sender, receiver) = mpsc::unbounded();
    for (position, &id) in tokens.iter().enumerate() {
        let score = logprobs.as_ref().map(|scores| &scores[position]);
        let _ = sender.unbounded_send(Event::Token {
            id,
            text: String::from_utf8_lossy(&engine.token_bytes(id)).into_owned(),
            logprob: score.filter(|_| request.logprobs.is_some()).map(|s| {
                agora_engine::TokenLogprob {
                    logprob: s.logprob,
                    top: s.top.clone(),
                }
            }),
            logits: score.map_or((0.0, 0.0), |s| (s.logit, s.max_logit)),
        });
    }
    let _ = sender.unbounded_send(Event::Done(Finish {
        reason: FinishReason::Stop,
        prompt_tokens: prompt.len() as u32,
        completion_tokens: tokens.len() as u32,
        tail_text: String::new(),
    }));
    Ok(receiver)
}
