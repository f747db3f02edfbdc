//! Following governance: fetch, verify and load models as proposals make them active, and
//! retire them as proposals retire them, without a restart.
//!
//! Each second [`run`] reads the ledger's models and compares them with what is served:
//! - an active model that [`Follow`] selects and that is not loaded is fetched from peers
//!   (the ledger node, providers registered as serving its CID, configured peers) into the
//!   blob store, verified by the fetcher, loaded, and offered on the ledger at the configured
//!   prices;
//! - a served model the ledger no longer lists as active is withdrawn from the ledger offer and
//!   from `/v1/models` at once, answers what was already routed to it for [`Follow::grace`],
//!   and is then unloaded.
//!
//! A model that cannot be fetched or loaded is reported in `/health` (`failed`) and retried
//! with a growing delay; the provider keeps serving everything else.

use std::{
    collections::BTreeMap,
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant},
};

use agora_engine::{Engine, EngineConfig};
use agora_store::{fetch::Fetcher, BlobStore};
use agora_types::{Amount, Cid};

use crate::{Payments, Provider, ServedModel};

/// Longest wait before retrying a model that failed to fetch or load.
const MAX_RETRY: Duration = Duration::from_secs(300);

/// Which governed models to serve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    /// Every active model.
    Auto,
    /// Active models with one of these names or CIDs.
    Only(Vec<String>),
}

impl Selection {
    /// Parses `auto` or a comma-separated list of names and CIDs.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("auto") {
            return Ok(Selection::Auto);
        }
        let names: Vec<String> = text
            .split(',')
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())
            .collect();
        if names.is_empty() {
            return Err("expected `auto` or a comma-separated list of model names or CIDs".into());
        }
        Ok(Selection::Only(names))
    }

    fn wants(&self, name: &str, cid: &str) -> bool {
        match self {
            Selection::Auto => true,
            Selection::Only(names) => names.iter().any(|n| n == name || n == cid),
        }
    }
}

/// How the provider follows governed models.
#[derive(Clone, Debug)]
pub struct Follow {
    /// Which models.
    pub selection: Selection,
    /// How to run each model loaded (its path is set per model).
    pub engine: EngineConfig,
    /// Price per million prompt tokens offered for each model loaded.
    pub price_in: Amount,
    /// Price per million completion tokens offered for each model loaded.
    pub price_out: Amount,
    /// Peers to fetch from besides the ledger node and the providers serving the model.
    pub peers: Vec<String>,
    /// How long a retired model keeps answering requests already routed to it.
    pub grace: Duration,
    /// How often the ledger's models are read.
    pub poll: Duration,
}

/// A model that failed, and when to try it again.
struct Retry {
    at: Instant,
    delay: Duration,
}

/// Follows the ledger until `shutdown` turns true; see the module docs.
pub async fn run(
    provider: Arc<Provider>,
    payments: Arc<Payments>,
    blobs: BlobStore,
    follow: Follow,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let fetcher = Fetcher::new(blobs);
    let mut retries: BTreeMap<Cid, Retry> = BTreeMap::new();
    let mut retiring: BTreeMap<Cid, Instant> = BTreeMap::new();
    let mut ticker = tokio::time::interval(follow.poll);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let rpc = payments.rpc();
        let models = match rpc.models().await {
            Ok(models) => models,
            Err(err) => {
                tracing::debug!(target: "agora::provider", %err, "reading the ledger's models failed");
                continue;
            }
        };
        let active: BTreeMap<Cid, String> = models
            .iter()
            .filter(|m| m.status == "active")
            .filter_map(|m| Some((m.cid.parse().ok()?, m.name.clone())))
            .collect();
        let mut changed = false;

        // Retire what governance retired.
        for model in provider.models() {
            if active.contains_key(&model.cid) {
                continue;
            }
            let since = *retiring.entry(model.cid).or_insert_with(|| {
                model.retiring.store(true, Ordering::Relaxed);
                changed = true;
                tracing::info!(target: "agora::provider", model = %model.name, cid = %model.cid, grace_s = follow.grace.as_secs(), "retired on the ledger; withdrawn, unloading after the grace period");
                Instant::now()
            });
            if since.elapsed() >= follow.grace {
                if let Some(model) = provider.remove_model(&model.cid) {
                    retiring.remove(&model.cid);
                    tracing::info!(target: "agora::provider", model = %model.name, cid = %model.cid, "unloaded");
                    // The engine joins its thread when the last request holding it is done.
                    tokio::task::spawn_blocking(move || drop(model));
                }
            }
        }

        // Load what governance added.
        let served: Vec<Cid> = provider.models().iter().map(|m| m.cid).collect();
        for (cid, name) in &active {
            if served.contains(cid) || !follow.selection.wants(name, &cid.to_string()) {
                continue;
            }
            if retries.get(cid).is_some_and(|r| Instant::now() < r.at) {
                continue;
            }
            match load(&payments, &fetcher, &follow, *cid, name).await {
                Ok(model) => {
                    retries.remove(cid);
                    provider.insert_model(model);
                    changed = true;
                }
                Err(reason) => {
                    tracing::warn!(target: "agora::provider", model = %name, %cid, %reason, "could not serve a governed model; will retry");
                    provider.record_failure(*cid, reason);
                    let delay = retries
                        .get(cid)
                        .map_or(Duration::from_secs(5), |r| (r.delay * 2).min(MAX_RETRY));
                    retries.insert(
                        *cid,
                        Retry {
                            at: Instant::now() + delay,
                            delay,
                        },
                    );
                }
            }
        }

        if changed {
            if let Err(err) = payments.ensure_registered(&provider.offers()).await {
                tracing::warn!(target: "agora::provider", %err, "updating the ledger offer failed");
            }
        }
    }
}

/// Fetches (or finds intact in the store), verifies and loads one governed model.
async fn load(
    payments: &Payments,
    fetcher: &Fetcher,
    follow: &Follow,
    cid: Cid,
    name: &str,
) -> Result<ServedModel, String> {
    let peers = peers(payments, follow, &cid).await;
    tracing::info!(target: "agora::provider", model = %name, %cid, peers = peers.len(), "fetching a governed model");
    let report = fetcher
        .fetch(cid, &peers, &mut |_, _| {})
        .await
        .map_err(|err| err.to_string())?;
    if !report.present {
        tracing::info!(target: "agora::provider", model = %name, %cid, bytes = report.len, liars = ?report.liars, "fetched and verified");
    }
    let mut engine = follow.engine.clone();
    engine.model_path = report.path;
    let loaded = tokio::task::spawn_blocking(move || Engine::load(engine))
        .await
        .map_err(|err| err.to_string())?
        .map_err(|err| format!("loading: {err}"))?;
    tracing::info!(target: "agora::provider", model = %name, %cid, "model loaded");
    Ok(ServedModel::new(
        name.to_owned(),
        cid,
        loaded,
        follow.price_in,
        follow.price_out,
    ))
}

/// Where `cid` may be fetched from: the ledger node, the providers registered as serving it
/// (not this one), and the configured peers.
async fn peers(payments: &Payments, follow: &Follow, cid: &Cid) -> Vec<String> {
    let rpc = payments.rpc();
    let mut peers = rpc
        .blob_peers(Some(cid), Some(&payments.account()))
        .await
        .unwrap_or_else(|_| vec![rpc.url().to_owned()]);
    peers.extend(follow.peers.iter().cloned());
    peers
}
