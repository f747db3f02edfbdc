//! `agora node`: run a ledger node (a validator set of one by default).

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
    let key = agora_rpc::keyfile::load(&key_path)?;
    let mut config = agora_chain::Config::new(data_dir, genesis, key, args.rpc_listen);
    config.min_block_interval = Duration::from_millis(args.block_interval_ms);
    config.max_idle_interval =
        Duration::from_millis(args.idle_interval_ms.max(args.block_interval_ms));
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
