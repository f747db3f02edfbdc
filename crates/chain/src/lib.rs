//! Agora's ledger node: mempool, block production, Commonware simplex consensus, redb storage, JSON-RPC and event stream.
//!
//! [`run`] starts a node from a [`Config`] and serves until its shutdown
//! future resolves. By default the node is the only validator: it runs the same
//! simplex engine that a multi-validator network runs, with a validator set of
//! one.
//!
//! # Life of a transaction
//!
//! `submit_tx` decodes the transaction with the bounds of `agora-types`, checks
//! it against the executed state (`agora_ledger::check_tx` plus nonce
//! ordering) and puts it in the [`mempool`]. The proposer builds a block from
//! the mempool on the executed head, stores it durably as a candidate and hands
//! its digest to consensus. When consensus finalizes the digest, the block (and
//! any finalized ancestor not yet executed) is executed with
//! `agora_ledger::apply_block` and committed to redb together with its results,
//! the new state and the tx index, in one write transaction.
//!
//! # Crash safety
//!
//! A candidate block reaches disk before consensus can vote on it, and an
//! executed block reaches disk in one atomic commit, so a node killed at any
//! moment restarts at its last committed block and re-executes the finalized
//! blocks after it from their stored candidates. A failed redb write stops the
//! node.
//!
//! # Threads
//!
//! Consensus runs on Commonware's tokio runtime on its own thread (a follower's
//! fetch loop takes its place, [`follow`]); block execution runs on a dedicated
//! thread; the RPC server runs on the caller's tokio runtime.

mod consensus;
mod follow;
pub mod genesis;
pub mod mempool;
mod node;
pub mod p2p;
mod server;
#[cfg(test)]
mod simulation;
pub mod store;
pub mod sync;

use std::{future::Future, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use agora_types::{Genesis, Keypair};
use commonware_runtime::{Runner as _, Supervisor as _};
use tokio::net::TcpListener;
use tracing::{error, info};

pub use p2p::P2pConfig;
pub use server::MAX_BODY_BYTES;

/// Everything a node needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Directory for the block store (`chain.redb`) and the consensus journal (`consensus/`).
    pub data_dir: PathBuf,
    /// The chain's genesis; must match what the data dir was created with.
    pub genesis: Genesis,
    /// The validator key; its account must be a genesis validator.
    pub key: Keypair,
    /// Address for the RPC server (used by [`run`]; [`run_with_listener`] takes a bound socket).
    pub rpc_listen: SocketAddr,
    /// Most transactions the mempool holds.
    pub mempool_max_txs: usize,
    /// Shortest time between blocks.
    pub min_block_interval: Duration,
    /// Longest time without a block when idle (empty blocks keep time moving).
    pub max_idle_interval: Duration,
    /// The validators' network; required when genesis names more than one validator.
    pub p2p: Option<P2pConfig>,
    /// On first start, begin from the state of the node at this RPC URL instead of
    /// replaying from genesis ([`sync`]); ignored once the data folder has a chain.
    pub state_sync: Option<String>,
    /// Follow the chain through the node(s) at this RPC URL (comma-separated for failover)
    /// instead of taking part in consensus: a full node that checks every block's
    /// certificate against the validator set and serves RPC ([`follow`]).
    pub follow: Option<String>,
}

impl Config {
    /// A config with the documented defaults for everything but the required fields:
    /// 10 000-transaction mempool, 200 ms minimum and 1 s idle block interval.
    pub fn new(data_dir: PathBuf, genesis: Genesis, key: Keypair, rpc_listen: SocketAddr) -> Self {
        Config {
            data_dir,
            genesis,
            key,
            rpc_listen,
            mempool_max_txs: 10_000,
            min_block_interval: Duration::from_millis(200),
            max_idle_interval: Duration::from_secs(1),
            p2p: None,
            state_sync: None,
            follow: None,
        }
    }
}

/// Why the node stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Storage failed; the node stopped rather than run on inconsistent state.
    #[error("storage: {0}")]
    Store(#[from] store::Error),
    /// The ledger refused the genesis or a finalized block.
    #[error("ledger: {0}")]
    Ledger(String),
    /// Consensus could not start.
    #[error("consensus: {0}")]
    Consensus(#[from] consensus::Error),
    /// A state-sync snapshot was refused or could not be fetched.
    #[error("state sync: {0}")]
    Sync(String),
    /// The validators' network could not start.
    #[error("p2p: {0}")]
    P2p(#[from] p2p::Error),
    /// The validator set has several members but no peer network was configured.
    #[error("the validator set has {0} members: configure --p2p-listen and --peer")]
    NoPeers(usize),
    /// Consensus stopped unexpectedly.
    #[error("consensus stopped: {0}")]
    ConsensusStopped(String),
    /// The node hit a fatal error while running.
    #[error("fatal: {0}")]
    Fatal(String),
    /// The blob store under the data folder could not be opened.
    #[error("blobs: {0}")]
    Blobs(#[from] agora_store::Error),
    /// Binding or serving the RPC socket failed.
    #[error("rpc server: {0}")]
    Io(#[from] std::io::Error),
}

/// Runs a node, binding the RPC server to `config.rpc_listen`, until `shutdown` resolves.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let listener = TcpListener::bind(config.rpc_listen).await?;
    run_with_listener(config, listener, shutdown).await
}

/// Runs a node serving RPC on `listener` until `shutdown` resolves or the node fails.
pub async fn run_with_listener(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    std::fs::create_dir_all(&config.data_dir)?;
    let snapshot = match &config.state_sync {
        Some(url) if !config.data_dir.join("chain.redb").exists() => {
            Some(fetch_snapshot(url).await?)
        }
        _ => None,
    };
    let node = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || node::Node::open_from(&config, snapshot.as_ref()))
            .await
            .map_err(|err| Error::Fatal(err.to_string()))??
    };
    let node = Arc::new(node);
    info!(
        target: "agora::chain",
        height = node.head().height,
        state_root = %node.head().state_root,
        rpc = ?listener.local_addr().ok(),
        "node starting"
    );

    let applier = node::spawn_applier(Arc::clone(&node))?;
    let consensus = match &config.follow {
        Some(_) => follow::spawn(Arc::clone(&node))?,
        None => spawn_consensus(&config, Arc::clone(&node))?,
    };

    // Every node is a peer for blobs: models imported into `<data>/blobs` are fetchable here.
    let blobs = agora_store::BlobStore::open(config.data_dir.join("blobs"))?;
    let app = server::app(Arc::clone(&node)).merge(agora_store::serve::routes(
        agora_store::serve::BlobServer::new(blobs),
    ));
    let fatal = {
        let node = Arc::clone(&node);
        async move { node.wait_fatal().await }
    };
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            tokio::select! {
                () = shutdown => {},
                () = fatal => {},
            }
        })
        .await;

    // Stop consensus first (no new blocks), then the applier.
    node.stop();
    let consensus_result = tokio::task::spawn_blocking(move || consensus.join()).await;
    let applier_result = tokio::task::spawn_blocking(move || applier.join()).await;
    if consensus_result.is_err() || applier_result.is_err() {
        error!(target: "agora::chain", "a node thread did not stop cleanly");
    }
    served?;
    match node.fatal() {
        Some(reason) => Err(Error::Fatal(reason)),
        None => {
            info!(target: "agora::chain", height = node.head().height, "node stopped");
            Ok(())
        }
    }
}

/// Fetches a peer's state snapshot (`GET /state/snapshot`).
async fn fetch_snapshot(url: &str) -> Result<sync::StateSnapshot, Error> {
    let client = agora_rpc::Client::new(url).map_err(|err| Error::Sync(err.to_string()))?;
    let bytes = client
        .state_snapshot(sync::MAX_SNAPSHOT_BYTES)
        .await
        .map_err(|err| Error::Sync(format!("fetching from {url}: {err}")))?;
    let snapshot =
        sync::StateSnapshot::from_bytes(&bytes).map_err(|err| Error::Sync(err.to_string()))?;
    info!(
        target: "agora::chain",
        from = %url,
        height = snapshot.head.height,
        bytes = bytes.len(),
        "fetched state snapshot"
    );
    Ok(snapshot)
}

/// Starts consensus on Commonware's tokio runtime on its own thread.
fn spawn_consensus(
    config: &Config,
    node: Arc<node::Node>,
) -> Result<std::thread::JoinHandle<()>, Error> {
    let consensus_config = consensus::Config {
        signer: node::consensus_key(&config.key),
        partition: "agora-simplex".to_owned(),
        min_block_interval: config.min_block_interval,
        max_idle_interval: config.max_idle_interval,
    };
    let validators = consensus::App::validator_set(&node)
        .map(|set| set.members.len())
        .unwrap_or(0);
    if validators > 1 && config.p2p.is_none() {
        return Err(Error::NoPeers(validators));
    }
    let p2p = config.p2p.clone();
    let runtime = commonware_runtime::tokio::Config::new()
        .with_worker_threads(2)
        .with_storage_directory(config.data_dir.join("consensus"));
    let thread = std::thread::Builder::new()
        .name("agora-consensus".to_owned())
        .spawn(move || {
            let runner = commonware_runtime::tokio::Runner::new(runtime);
            let engine_node = Arc::clone(&node);
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                runner.start(|context| async move {
                    let node = engine_node;
                    let started = match p2p {
                        Some(p2p) => {
                            match p2p::start(
                                context.child("network"),
                                consensus_config.signer.clone(),
                                &p2p,
                            ) {
                                Ok((channels, oracle, peers)) => consensus::start(
                                    context,
                                    consensus_config,
                                    Arc::clone(&node),
                                    channels,
                                    oracle,
                                    peers,
                                )
                                .map_err(|err| err.to_string()),
                                Err(err) => Err(err.to_string()),
                            }
                        }
                        None => consensus::start(
                            context,
                            consensus_config,
                            Arc::clone(&node),
                            consensus::network::channels(),
                            consensus::network::NullBlocker::default(),
                            (),
                        )
                        .map_err(|err| err.to_string()),
                    };
                    let handle = match started {
                        Ok(handle) => handle,
                        Err(err) => {
                            node.set_fatal(format!("consensus: {err}"));
                            return;
                        }
                    };
                    let stopped = node.wait_stopped();
                    tokio::select! {
                        () = stopped => {},
                        result = handle => {
                            node.set_fatal(format!("consensus engine exited: {result:?}"));
                        }
                    }
                })
            }));
            // Consensus ending for any reason but a requested stop is fatal.
            if outcome.is_err() {
                node.set_fatal("consensus panicked".to_owned());
            }
        })?;
    Ok(thread)
}
