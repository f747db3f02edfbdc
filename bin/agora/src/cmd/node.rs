//! `agora node`: run a ledger node: a validator set of one by default, one of several
//! validators (`--p2p-listen` and a `--peer` for each other validator), or a follower that
//! is no validator (`--follow URL`).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Context as _;

/// Flags of `agora node`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Data directory (blocks, state, consensus journal, keys).
    #[command(flatten)]
    pub(crate) data: super::DataDirArgs,
    /// Address of the JSON-RPC server.
    #[arg(long, env = "AGORA_RPC_LISTEN", default_value = "127.0.0.1:26657")]
    pub(crate) rpc_listen: SocketAddr,
    /// Genesis file (JSON); defaults to `<data-dir>/genesis.json`.
    #[arg(long, env = "AGORA_GENESIS")]
    pub(crate) genesis: Option<PathBuf>,
    /// Validator key file; defaults to `<data-dir>/validator.key`.
    #[arg(long, env = "AGORA_VALIDATOR_KEY")]
    pub(crate) key: Option<PathBuf>,
    /// Shortest time between blocks, in milliseconds.
    #[arg(long, default_value_t = 200)]
    pub(crate) block_interval_ms: u64,
    /// Longest time without a block when idle, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub(crate) idle_interval_ms: u64,
    /// Address for connections from the other validators (needed when genesis names
    /// more than one validator).
    #[arg(long, env = "AGORA_P2P_LISTEN")]
    pub(crate) p2p_listen: Option<SocketAddr>,
    /// Another validator, as `agora1…@host:port`; repeat for each (or comma-separate).
    #[arg(long = "peer", env = "AGORA_PEERS", value_delimiter = ',')]
    pub(crate) peers: Vec<String>,
    /// On first start, begin from the state of the node at this RPC URL (checked against
    /// its state root, then against the finalized chain) instead of replaying from genesis.
    #[arg(long, env = "AGORA_STATE_SYNC")]
    pub(crate) state_sync: Option<String>,
    /// Follow the chain through the node(s) at this RPC URL (comma-separated for
    /// failover) as a full node that is no validator: it checks each block's certificate
    /// against the validator set, serves RPC and passes `submit_tx` on. No key is needed.
    #[arg(long, env = "AGORA_FOLLOW", conflicts_with_all = ["p2p_listen", "peers"])]
    pub(crate) follow: Option<String>,
}

/// Parses `agora1…@host:port`.
fn parse_peer(text: &str) -> anyhow::Result<(agora_types::AccountId, SocketAddr)> {
    let (account, addr) = text
        .split_once('@')
        .with_context(|| format!("peer {text:?} is not account@host:port"))?;
    let account = account
        .parse()
        .map_err(|err| anyhow::anyhow!("peer {text:?}: {err}"))?;
    let addr = std::net::ToSocketAddrs::to_socket_addrs(addr)
        .with_context(|| format!("peer {text:?}: bad address"))?
        .next()
        .with_context(|| format!("peer {text:?}: address does not resolve"))?;
    Ok((account, addr))
}

/// Turns flags into the node's config.
pub(crate) fn config(args: Args) -> anyhow::Result<agora_chain::Config> {
    let data_dir = args.data.path();
    let genesis_path = args
        .genesis
        .unwrap_or_else(|| data_dir.join("genesis.json"));
    let key_path = args.key.unwrap_or_else(|| data_dir.join("validator.key"));
    let genesis = agora_chain::genesis::GenesisFile::load(&genesis_path)
        .with_context(|| {
            format!(
                "reading {} (run `agora genesis init` first?)",
                genesis_path.display()
            )
        })?
        .to_genesis()?;
    // A follower signs nothing; it needs a key only if it is to become a validator.
    let key = match (&args.follow, key_path.exists()) {
        (Some(_), false) => agora_types::Keypair::from_bytes(&rand::random()),
        _ => agora_rpc::keyfile::load(&key_path)?,
    };
    let mut config = agora_chain::Config::new(data_dir, genesis, key, args.rpc_listen);
    config.min_block_interval = Duration::from_millis(args.block_interval_ms);
    config.max_idle_interval =
        Duration::from_millis(args.idle_interval_ms.max(args.block_interval_ms));
    config.state_sync = args.state_sync;
    config.follow = args.follow;
    if let Some(listen) = args.p2p_listen {
        let peers = args
            .peers
            .iter()
            .map(|peer| parse_peer(peer))
            .collect::<anyhow::Result<_>>()?;
        config.p2p = Some(agora_chain::P2pConfig { listen, peers });
    } else if !args.peers.is_empty() {
        anyhow::bail!("--peer needs --p2p-listen");
    }
    Ok(config)
}

/// Runs the node until SIGINT or SIGTERM.
pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let config = config(args)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        agora_chain::run(config, super::shutdown_signal()).await?;
        Ok(())
    })
}
