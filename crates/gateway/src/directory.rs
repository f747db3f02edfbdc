//! What the ledger says: active models by name and the providers serving them, the active
//! verifiers, and the providers with an open dispute.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::RwLock,
};

use agora_rpc::{wire, Client};
use agora_types::{AccountId, Amount, Cid};

/// A provider offering one model, as the ledger lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Operator account.
    pub account: AccountId,
    /// Base URL, without a trailing slash.
    pub endpoint: String,
    /// Price per million prompt tokens.
    pub price_in: Amount,
    /// Price per million completion tokens.
    pub price_out: Amount,
    /// The region label it registered (the safety policy may limit models by region).
    pub region: String,
}

impl Candidate {
    /// Input plus output price: what `sort=price` and the default weighting compare.
    pub fn price_total(&self) -> Amount {
        self.price_in.saturating_add(self.price_out)
    }
}

/// An active model.
#[derive(Clone, Debug)]
pub struct ModelEntry {
    /// Its name.
    pub name: String,
    /// Its governed CID.
    pub cid: Cid,
    /// Context length in tokens.
    pub context_length: u32,
    /// Providers serving it (active, staked, not jailed).
    pub candidates: Vec<Candidate>,
}

/// An active verifier, as the ledger lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifierEntry {
    /// Its account.
    pub account: AccountId,
    /// Base URL, without a trailing slash.
    pub endpoint: String,
}

/// The gateway's copy of the registry, refreshed from a ledger node.
#[derive(Default)]
pub struct Directory {
    models: RwLock<BTreeMap<String, ModelEntry>>,
    verifiers: RwLock<Vec<VerifierEntry>>,
    flagged: RwLock<BTreeSet<AccountId>>,
}

/// Why the registry could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the registry from the ledger: {0}")]
pub struct RefreshError(String);

impl Directory {
    /// Reads models and providers from the ledger.
    pub async fn refresh(&self, rpc: &Client) -> Result<(), RefreshError> {
        let models = rpc
            .models()
            .await
            .map_err(|e| RefreshError(e.to_string()))?;
        let providers = rpc
            .providers()
            .await
            .map_err(|e| RefreshError(e.to_string()))?;
        let verifiers = rpc
            .verifiers()
            .await
            .map_err(|e| RefreshError(e.to_string()))?;
        let disputes = rpc
            .disputes(true, None)
            .await
            .map_err(|e| RefreshError(e.to_string()))?;
        *self.models.write().unwrap_or_else(|e| e.into_inner()) = build(&models, &providers);
        *self.verifiers.write().unwrap_or_else(|e| e.into_inner()) = verifiers
            .iter()
            .filter(|v| v.status == "active")
            .filter_map(|v| {
                Some(VerifierEntry {
                    account: v.account.parse().ok()?,
                    endpoint: v.endpoint.trim_end_matches('/').to_owned(),
                })
            })
            .collect();
        *self.flagged.write().unwrap_or_else(|e| e.into_inner()) = disputes
            .iter()
            .filter_map(|d| d.provider.parse().ok())
            .collect();
        Ok(())
    }

    /// The active verifiers.
    pub fn verifiers(&self) -> Vec<VerifierEntry> {
        self.verifiers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether `provider` has an open dispute.
    pub fn is_flagged(&self, provider: &AccountId) -> bool {
        self.flagged
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(provider)
    }

    /// The model a request names (by name or CID), if active.
    pub fn model(&self, name: &str) -> Option<ModelEntry> {
        let models = self.models.read().unwrap_or_else(|e| e.into_inner());
        models
            .get(name)
            .or_else(|| models.values().find(|m| m.cid.to_string() == name))
            .cloned()
    }

    /// Every active model.
    pub fn models(&self) -> Vec<ModelEntry> {
        let models = self.models.read().unwrap_or_else(|e| e.into_inner());
        models.values().cloned().collect()
    }

    /// The provider with this account, whatever it serves.
    pub fn provider(&self, account: &AccountId) -> Option<Candidate> {
        let models = self.models.read().unwrap_or_else(|e| e.into_inner());
        models
            .values()
            .flat_map(|m| m.candidates.iter())
            .find(|c| c.account == *account)
            .cloned()
    }

    /// Every provider, once each.
    pub fn providers(&self) -> Vec<Candidate> {
        let models = self.models.read().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<Candidate> = Vec::new();
        for candidate in models.values().flat_map(|m| m.candidates.iter()) {
            if !out.iter().any(|c| c.account == candidate.account) {
                out.push(candidate.clone());
            }
        }
        out
    }
}

fn build(models: &[wire::Model], providers: &[wire::Provider]) -> BTreeMap<String, ModelEntry> {
    let mut out = BTreeMap::new();
    for model in models.iter().filter(|m| m.status == "active") {
        let Ok(cid) = model.cid.parse::<Cid>() else {
            continue;
        };
        let candidates = providers
            .iter()
            .filter(|p| p.status == "active")
            .filter_map(|p| {
                let offer = p.models.iter().find(|o| o.cid == model.cid)?;
                Some(Candidate {
                    account: p.operator.parse().ok()?,
                    endpoint: p.endpoint.trim_end_matches('/').to_owned(),
                    price_in: offer.price_in.parse().ok()?,
                    price_out: offer.price_out.parse().ok()?,
                    region: p.region.clone(),
                })
            })
            .collect();
        out.insert(
            model.name.clone(),
            ModelEntry {
                name: model.name.clone(),
                cid,
                context_length: model.context_length,
                candidates,
            },
        );
    }
    out
}
