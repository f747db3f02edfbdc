//! Checking a receipt's transcript: first what needs no model (the receipt's claims against
//! the request and answer), then the prefill check of the answer itself.

use agora_api::plan::{self, PlanError};
use agora_engine::Engine;
use agora_types::{transcript::TranscriptError, Cid, Transcript};

use crate::{check, Thresholds, Verdict};

/// A claim of the receipt that the transcript proves false.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The receipt bills a different number of completion tokens than the answer holds.
    CompletionTokens {
        /// Tokens billed.
        billed: u32,
        /// Tokens in the answer.
        delivered: u32,
    },
    /// The receipt bills a different number of prompt tokens than the request renders to.
    PromptTokens {
        /// Tokens billed.
        billed: u32,
        /// Tokens of the rendered prompt (plus any continuation).
        actual: u32,
    },
    /// The answer commits to another number of logits than it has tokens.
    Logits {
        /// Logits committed to.
        logits: usize,
        /// Tokens in the answer.
        tokens: usize,
    },
    /// The receipt declares another sampling rule or seed than the request asked for.
    Sampling {
        /// What the receipt declares.
        declared: agora_types::SamplingParams,
        /// What the request asked for.
        requested: agora_types::SamplingParams,
    },
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::CompletionTokens { billed, delivered } => write!(
                f,
                "billed {billed} completion tokens for an answer of {delivered}"
            ),
            Fault::PromptTokens { billed, actual } => {
                write!(f, "billed {billed} prompt tokens for a prompt of {actual}")
            }
            Fault::Logits { logits, tokens } => {
                write!(
                    f,
                    "committed to {logits} logits for an answer of {tokens} tokens"
                )
            }
            Fault::Sampling {
                declared,
                requested,
            } => write!(
                f,
                "declared sampling {declared:?}, the request asked for {requested:?}"
            ),
        }
    }
}

/// The outcome of checking a transcript.
#[derive(Clone, Debug, PartialEq)]
pub struct TranscriptCheck {
    /// False claims of the receipt.
    pub faults: Vec<Fault>,
    /// The prefill check of the answer under the requested rule.
    pub verdict: Verdict,
}

impl TranscriptCheck {
    /// Whether the transcript proves the provider cheated.
    pub fn fraud(&self) -> bool {
        !self.faults.is_empty() || !self.verdict.passed()
    }

    /// One line saying why the check failed (empty when it passed).
    pub fn reason(&self) -> String {
        let mut parts: Vec<String> = self.faults.iter().map(ToString::to_string).collect();
        if let Some(first) = self.verdict.findings.first() {
            parts.push(format!(
                "{} of {} answer tokens break the rule, first {first:?}",
                self.verdict.findings.len(),
                self.verdict.positions
            ));
        }
        if let Some(drift) = self
            .verdict
            .logit_drift
            .filter(|d| *d > self.verdict.max_logit_drift)
        {
            parts.push(format!(
                "the committed logits are {drift:.2} from the model's on average, beyond {}",
                self.verdict.max_logit_drift
            ));
        }
        if let Some(z) = self.verdict.z.filter(|z| z.abs() > self.verdict.max_z) {
            parts.push(format!(
                "likelihood z = {z:.2} beyond ±{}",
                self.verdict.max_z
            ));
        }
        parts.join("; ")
    }
}

/// Why a transcript could not be checked: none of these is evidence against the provider.
#[derive(Debug, thiserror::Error)]
pub enum TranscriptCheckError {
    /// The transcript does not stand for its receipt (signature or hashes).
    #[error("transcript: {0}")]
    Transcript(#[from] TranscriptError),
    /// The receipt names a model this verifier does not run.
    #[error("the receipt's model {receipt} is not the model checked here ({ours})")]
    OtherModel {
        /// The receipt's model.
        receipt: Cid,
        /// This verifier's model.
        ours: Cid,
    },
    /// The request in the transcript is not a valid chat request.
    #[error("the request is invalid: {0}")]
    Request(#[from] PlanError),
    /// The model could not render or score it.
    #[error(transparent)]
    Check(#[from] crate::Error),
}

/// Checks `transcript` against `engine`, which runs the model with CID `model`.
///
/// The request is planned exactly as a provider plans it ([`plan::plan_body`],
/// [`Engine::request_for`]), so the prompt, rule and seed checked are those asked for.
pub async fn check_transcript(
    engine: &Engine,
    model: Cid,
    transcript: &Transcript,
    thresholds: &Thresholds,
) -> Result<TranscriptCheck, TranscriptCheckError> {
    transcript.check()?;
    let receipt = &transcript.receipt.receipt;
    if receipt.model != model {
        return Err(TranscriptCheckError::OtherModel {
            receipt: receipt.model,
            ours: model,
        });
    }
    let plan = plan::plan_body(&transcript.request)?;
    let request = engine
        .request_for(&plan)
        .map_err(|err| TranscriptCheckError::Check(err.into()))?;
    let mut faults = Vec::new();
    let delivered = u32::try_from(transcript.output_tokens.len()).unwrap_or(u32::MAX);
    if receipt.completion_tokens != delivered {
        faults.push(Fault::CompletionTokens {
            billed: receipt.completion_tokens,
            delivered,
        });
    }
    let first_position = request.continuation.tokens.len() as u64;
    let mut prompt = request.prompt;
    prompt.extend_from_slice(&request.continuation.tokens);
    let actual = u32::try_from(prompt.len()).unwrap_or(u32::MAX);
    if receipt.prompt_tokens != actual {
        faults.push(Fault::PromptTokens {
            billed: receipt.prompt_tokens,
            actual,
        });
    }
    let committed = transcript.output_logits.len() == transcript.output_tokens.len();
    if !committed {
        faults.push(Fault::Logits {
            logits: transcript.output_logits.len(),
            tokens: transcript.output_tokens.len(),
        });
    }
    let claimed: Vec<f32> = transcript
        .output_logits
        .iter()
        .map(|&milli| milli as f32 / 1000.0)
        .collect();
    let requested = request.sampling.declared();
    if receipt.sampling != requested {
        faults.push(Fault::Sampling {
            declared: receipt.sampling,
            requested,
        });
    }
    let verdict = if transcript.output_tokens.is_empty() {
        // Nothing was generated, so no token can break the rule.
        Verdict {
            positions: 0,
            findings: Vec::new(),
            z: None,
            max_z: thresholds.max_z,
            logit_drift: None,
            max_logit_drift: thresholds.max_logit_drift,
            margins: Default::default(),
        }
    } else {
        check(
            engine,
            &prompt,
            &transcript.output_tokens,
            committed.then_some(&claimed[..]),
            &request.sampling,
            first_position,
            thresholds,
        )
        .await?
    };
    Ok(TranscriptCheck { faults, verdict })
}
