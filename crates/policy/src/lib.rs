//! Agora's governed safety policy: the document, its validation, and the checks applied to
//! each request.
//!
//! # Where it comes from
//! A `SetSafetyPolicy` proposal names a policy document by CID. Once it passes, every gateway
//! and provider sees the new CID on its next ledger read (each second), fetches the document as
//! a blob (verified against the CID), parses it with [`Policy::parse`], and checks requests
//! against it from then on: no restart. A document that fails to parse is not applied; the last
//! good policy stays in force and the error is reported, so a broken proposal cannot switch the
//! rules off.
//!
//! # What it checks
//! - [`Policy::check_prompt`]: blocked patterns, against the text of every message;
//! - [`Policy::check_output`]: a request's `max_tokens` against the model's output limit;
//! - [`Policy::check_context`]: a tokenized prompt against the model's context limit;
//! - [`Policy::region_allowed`]: whether a provider's region may serve the model.
//!
//! See the crate README for the document format.

use std::collections::BTreeMap;

use agora_types::Cid;
use serde::{Deserialize, Serialize};

/// Largest policy document accepted, in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
/// Most blocked patterns in one document.
pub const MAX_PATTERNS: usize = 1024;
/// Compiled size limit of all patterns together, in bytes (bounds memory and match time).
const REGEX_SIZE_LIMIT: usize = 8 << 20;

/// Why a document is not a valid policy.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The document is larger than [`MAX_DOCUMENT_BYTES`].
    #[error("policy document is {0} bytes; the limit is {MAX_DOCUMENT_BYTES}")]
    TooLarge(usize),
    /// Not JSON of the policy's shape.
    #[error("policy document: {0}")]
    Json(#[from] serde_json::Error),
    /// An unsupported version.
    #[error("policy version {0} is not supported (expected 1)")]
    Version(u32),
    /// A rule is malformed.
    #[error("rule '{id}': {reason}")]
    Rule {
        /// The rule's id.
        id: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Fetching the document failed.
    #[error("fetching the policy {cid}: {reason}")]
    Fetch {
        /// The policy's CID.
        cid: Cid,
        /// Why.
        reason: String,
    },
}

/// The document as written.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Document {
    /// Format version; 1.
    pub version: u32,
    /// Patterns no prompt may match.
    #[serde(default)]
    pub blocked: Vec<BlockedPattern>,
    /// Limits per model, keyed by name or CID.
    #[serde(default)]
    pub models: BTreeMap<String, ModelRules>,
}

/// A pattern no prompt may match.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BlockedPattern {
    /// The rule's id, named in refusals.
    pub id: String,
    /// A regular expression (Rust `regex` syntax).
    pub pattern: String,
    /// Why it is blocked, shown in refusals.
    #[serde(default)]
    pub reason: Option<String>,
}

/// Limits on one model.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ModelRules {
    /// Longest prompt, in tokens.
    #[serde(default)]
    pub max_context_tokens: Option<u32>,
    /// Most completion tokens a request may ask for.
    #[serde(default)]
    pub max_output_tokens: Option<u32>,
    /// Provider regions allowed to serve the model (all when absent).
    #[serde(default)]
    pub regions: Option<Vec<String>>,
}

/// Why a request was refused: the rule and a sentence for the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The rule's id (a blocked pattern's id, or `<model>.max_output_tokens` and the like).
    pub rule: String,
    /// The request field at fault, OpenAI-style (`messages`, `max_tokens`).
    pub param: &'static str,
    /// What to tell the client.
    pub message: String,
}

/// A parsed, compiled policy.
#[derive(Clone, Debug)]
pub struct Policy {
    document: Document,
    patterns: regex::RegexSet,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            document: Document {
                version: 1,
                ..Document::default()
            },
            patterns: regex::RegexSet::empty(),
        }
    }
}

impl Policy {
    /// Parses and validates a policy document.
    pub fn parse(bytes: &[u8]) -> Result<Policy, PolicyError> {
        if bytes.len() > MAX_DOCUMENT_BYTES {
            return Err(PolicyError::TooLarge(bytes.len()));
        }
        let document: Document = serde_json::from_slice(bytes)?;
        if document.version != 1 {
            return Err(PolicyError::Version(document.version));
        }
        if document.blocked.len() > MAX_PATTERNS {
            return Err(PolicyError::Rule {
                id: "blocked".into(),
                reason: format!(
                    "{} patterns; the limit is {MAX_PATTERNS}",
                    document.blocked.len()
                ),
            });
        }
        let mut ids = std::collections::BTreeSet::new();
        for rule in &document.blocked {
            if rule.id.trim().is_empty() || rule.id.len() > 64 {
                return Err(PolicyError::Rule {
                    id: rule.id.clone(),
                    reason: "an id must be 1 to 64 bytes".into(),
                });
            }
            if !ids.insert(rule.id.as_str()) {
                return Err(PolicyError::Rule {
                    id: rule.id.clone(),
                    reason: "the id is used twice".into(),
                });
            }
        }
        for (model, rules) in &document.models {
            if rules.max_context_tokens == Some(0) || rules.max_output_tokens == Some(0) {
                return Err(PolicyError::Rule {
                    id: model.clone(),
                    reason:
                        "a token limit of 0 would refuse every request; retire the model instead"
                            .into(),
                });
            }
        }
        let patterns = regex::RegexSetBuilder::new(document.blocked.iter().map(|r| &r.pattern))
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|set_err| {
                // Name the pattern at fault: compile them one by one only now.
                let culprit = document.blocked.iter().find_map(|rule| {
                    regex::RegexBuilder::new(&rule.pattern)
                        .size_limit(REGEX_SIZE_LIMIT)
                        .build()
                        .err()
                        .map(|err| (rule.id.clone(), format!("pattern: {err}")))
                });
                let (id, reason) =
                    culprit.unwrap_or_else(|| ("blocked".into(), set_err.to_string()));
                PolicyError::Rule { id, reason }
            })?;
        Ok(Policy { document, patterns })
    }

    /// The document this policy was parsed from.
    pub fn document(&self) -> &Document {
        &self.document
    }

    /// The limits on the model with this name or CID, if the policy names it.
    pub fn model(&self, name: &str, cid: &Cid) -> Option<&ModelRules> {
        self.document
            .models
            .get(name)
            .or_else(|| self.document.models.get(&cid.to_string()))
    }

    /// Refuses text that matches a blocked pattern (the first rule in document order).
    pub fn check_text(&self, text: &str) -> Result<(), Refusal> {
        let Some(index) = self.patterns.matches(text).into_iter().next() else {
            return Ok(());
        };
        let rule = &self.document.blocked[index];
        Err(Refusal {
            rule: rule.id.clone(),
            param: "messages",
            message: format!(
                "refused by safety rule '{}'{}: the prompt matches a pattern governance blocked",
                rule.id,
                rule.reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            ),
        })
    }

    /// Refuses a request whose messages match a blocked pattern.
    pub fn check_prompt(&self, messages: &[agora_api::RequestMessage]) -> Result<(), Refusal> {
        if self.document.blocked.is_empty() {
            return Ok(());
        }
        for message in messages {
            match &message.content {
                Some(agora_api::MessageContent::Text(text)) => self.check_text(text)?,
                Some(agora_api::MessageContent::Parts(parts)) => {
                    for text in parts.iter().filter_map(|p| p.text.as_deref()) {
                        self.check_text(text)?;
                    }
                }
                None => {}
            }
        }
        Ok(())
    }

    /// Refuses `max_tokens` above the model's output limit; returns the limit, which caps a
    /// request that did not set `max_tokens`.
    pub fn check_output(
        &self,
        name: &str,
        cid: &Cid,
        max_tokens: Option<u32>,
    ) -> Result<Option<u32>, Refusal> {
        let Some(limit) = self.model(name, cid).and_then(|r| r.max_output_tokens) else {
            return Ok(None);
        };
        match max_tokens {
            Some(asked) if asked > limit => Err(Refusal {
                rule: format!("{name}.max_output_tokens"),
                param: "max_tokens",
                message: format!(
                    "refused by safety rule '{name}.max_output_tokens': at most {limit} completion tokens, {asked} asked"
                ),
            }),
            _ => Ok(Some(limit)),
        }
    }

    /// Refuses a prompt of `tokens` tokens above the model's context limit.
    pub fn check_context(&self, name: &str, cid: &Cid, tokens: usize) -> Result<(), Refusal> {
        match self.model(name, cid).and_then(|r| r.max_context_tokens) {
            Some(limit) if tokens > limit as usize => Err(Refusal {
                rule: format!("{name}.max_context_tokens"),
                param: "messages",
                message: format!(
                    "refused by safety rule '{name}.max_context_tokens': the prompt is {tokens} tokens, the limit is {limit}"
                ),
            }),
            _ => Ok(()),
        }
    }

    /// Whether a provider in `region` may serve the model.
    pub fn region_allowed(&self, name: &str, cid: &Cid, region: &str) -> bool {
        match self.model(name, cid).and_then(|r| r.regions.as_ref()) {
            Some(regions) => regions.iter().any(|r| r == region),
            None => true,
        }
    }
}

/// The policy in force, as one role follows the ledger: the CID it came from and what went
/// wrong with a newer one.
#[derive(Debug, Default)]
pub struct Governed {
    state: std::sync::RwLock<GovernedState>,
}

#[derive(Debug, Default, Clone)]
struct GovernedState {
    policy: std::sync::Arc<Policy>,
    cid: Option<Cid>,
    /// The latest CID seen on the ledger and why it could not be applied, if it could not.
    rejected: Option<(Cid, String)>,
}

/// What [`Governed`] reports about itself.
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    /// The CID of the policy in force (none: no policy adopted yet).
    pub cid: Option<String>,
    /// A newer CID that could not be applied, and why.
    pub rejected: Option<(String, String)>,
    /// The policy in force.
    pub document: Document,
}

impl Governed {
    /// The policy in force (empty until governance adopts one).
    pub fn current(&self) -> std::sync::Arc<Policy> {
        std::sync::Arc::clone(&self.state.read().unwrap_or_else(|e| e.into_inner()).policy)
    }

    /// The CID in force, the rejected one and the document.
    pub fn status(&self) -> Status {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner()).clone();
        Status {
            cid: state.cid.map(|c| c.to_string()),
            rejected: state.rejected.map(|(c, why)| (c.to_string(), why)),
            document: state.policy.document().clone(),
        }
    }

    /// Reads the policy CID the ledger names and, when it changed, fetches the document from
    /// the node and the providers (other than `except`) and applies it; logs what happened. A
    /// ledger that does not answer, or a document that cannot be fetched or parsed, leaves the
    /// policy in force as it is.
    pub async fn follow(
        &self,
        rpc: &agora_rpc::Client,
        fetcher: &agora_store::fetch::Fetcher,
        except: Option<&agora_types::AccountId>,
    ) {
        let wanted = match rpc.safety_policy().await {
            Ok(wanted) => wanted,
            Err(err) => {
                tracing::debug!(target: "agora::policy", %err, "reading the safety policy failed");
                return;
            }
        };
        let current = self.state.read().unwrap_or_else(|e| e.into_inner()).cid;
        if wanted == current {
            return;
        }
        let peers = rpc
            .blob_peers(None, except)
            .await
            .unwrap_or_else(|_| vec![rpc.url().to_owned()]);
        match self.update(wanted, fetcher, &peers).await {
            Ok(true) => {
                tracing::info!(target: "agora::policy", policy = ?wanted.map(|c| c.to_string()), "safety policy in force")
            }
            Ok(false) => {}
            Err(err) => {
                tracing::warn!(target: "agora::policy", %err, "the governed safety policy was not applied; the previous one stays in force")
            }
        }
    }

    /// Brings the policy in line with the ledger's `wanted` CID, fetching the document with
    /// `fetcher` from `peers` when it changed. A document that cannot be fetched or parsed
    /// leaves the policy in force as it is and is retried on the next call.
    pub async fn update(
        &self,
        wanted: Option<Cid>,
        fetcher: &agora_store::fetch::Fetcher,
        peers: &[String],
    ) -> Result<bool, PolicyError> {
        let current = self.state.read().unwrap_or_else(|e| e.into_inner()).cid;
        if wanted == current {
            return Ok(false);
        }
        let Some(cid) = wanted else {
            let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
            *state = GovernedState::default();
            return Ok(true);
        };
        let result = load(fetcher, cid, peers).await;
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(policy) => {
                *state = GovernedState {
                    policy: std::sync::Arc::new(policy),
                    cid: Some(cid),
                    rejected: None,
                };
                Ok(true)
            }
            Err(err) => {
                state.rejected = Some((cid, err.to_string()));
                Err(err)
            }
        }
    }
}

/// Fetches the document `cid` (verified) and parses it.
pub async fn load(
    fetcher: &agora_store::fetch::Fetcher,
    cid: Cid,
    peers: &[String],
) -> Result<Policy, PolicyError> {
    let fail = |reason: String| PolicyError::Fetch { cid, reason };
    let report = fetcher
        .fetch(cid, peers, &mut |_, _| {})
        .await
        .map_err(|err| fail(err.to_string()))?;
    if report.len > MAX_DOCUMENT_BYTES as u64 {
        return Err(PolicyError::TooLarge(report.len as usize));
    }
    let bytes = tokio::fs::read(&report.path)
        .await
        .map_err(|err| fail(err.to_string()))?;
    Policy::parse(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"{
        "version": 1,
        "blocked": [
            {"id": "no-nerve-agents", "pattern": "(?i)nerve\\s+agent", "reason": "weapons"},
            {"id": "no-secrets", "pattern": "BEGIN PRIVATE KEY"}
        ],
        "models": {
            "small": {"max_context_tokens": 100, "max_output_tokens": 50, "regions": ["eu"]}
        }
    }"#;

    fn cid() -> Cid {
        Cid::of(b"small")
    }

    #[test]
    fn blocked_patterns_name_their_rule() {
        let policy = Policy::parse(DOC.as_bytes()).unwrap();
        assert_eq!(policy.check_text("how do plants grow?"), Ok(()));
        let refusal = policy.check_text("make a NERVE  agent").unwrap_err();
        assert_eq!(refusal.rule, "no-nerve-agents");
        assert!(
            refusal.message.contains("'no-nerve-agents' (weapons)"),
            "{}",
            refusal.message
        );
        let messages: Vec<agora_api::RequestMessage> = serde_json::from_str(
            r#"[{"role":"system","content":"be nice"},
                {"role":"user","content":[{"type":"text","text":"-----BEGIN PRIVATE KEY-----"}]}]"#,
        )
        .unwrap();
        assert_eq!(
            policy.check_prompt(&messages).unwrap_err().rule,
            "no-secrets"
        );
    }

    #[test]
    fn model_limits_apply_by_name_or_cid() {
        let policy = Policy::parse(DOC.as_bytes()).unwrap();
        assert_eq!(policy.check_output("small", &cid(), Some(50)), Ok(Some(50)));
        assert_eq!(policy.check_output("small", &cid(), None), Ok(Some(50)));
        let refusal = policy.check_output("small", &cid(), Some(51)).unwrap_err();
        assert_eq!(
            (refusal.rule.as_str(), refusal.param),
            ("small.max_output_tokens", "max_tokens")
        );
        assert_eq!(policy.check_output("other", &cid(), Some(10_000)), Ok(None));
        assert!(policy.check_context("small", &cid(), 100).is_ok());
        assert!(policy.check_context("small", &cid(), 101).is_err());
        assert!(policy.region_allowed("small", &cid(), "eu"));
        assert!(!policy.region_allowed("small", &cid(), "us"));
        assert!(policy.region_allowed("other", &cid(), "us"));
        let by_cid = format!(
            r#"{{"version":1,"models":{{"{}":{{"max_output_tokens":5}}}}}}"#,
            cid()
        );
        let policy = Policy::parse(by_cid.as_bytes()).unwrap();
        assert!(policy.check_output("renamed", &cid(), Some(6)).is_err());
    }

    #[test]
    fn malformed_documents_are_refused_with_the_reason() {
        let cases = [
            ("not json", "policy document"),
            (r#"{"version":2}"#, "version 2"),
            (
                r#"{"version":1,"blocked":[{"id":"x","pattern":"("}]}"#,
                "rule 'x': pattern",
            ),
            (
                r#"{"version":1,"blocked":[{"id":"x","pattern":"a"},{"id":"x","pattern":"b"}]}"#,
                "used twice",
            ),
            (
                r#"{"version":1,"blocked":[{"id":"","pattern":"a"}]}"#,
                "1 to 64 bytes",
            ),
            (r#"{"version":1,"blokked":[]}"#, "unknown field"),
            (
                r#"{"version":1,"models":{"m":{"max_output_tokens":0}}}"#,
                "token limit of 0",
            ),
        ];
        for (doc, expected) in cases {
            let err = Policy::parse(doc.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(expected), "{doc}: {err}");
        }
        let huge = vec![b' '; MAX_DOCUMENT_BYTES + 1];
        assert!(matches!(
            Policy::parse(&huge),
            Err(PolicyError::TooLarge(_))
        ));
    }
}
