//! `agora devnet`: the whole network on this machine, with the bundled model.
//!
//! One process runs a ledger node (a validator set of one, dev genesis with funded keys and the
//! default model active, under `<data-dir>/devnet`) and a provider serving the default model.
//! The gateway and verifier join it as they land.

use std::net::SocketAddr;

use clap::Args as ClapArgs;

use super::{genesis, node, shutdown_signal, DataDirArgs};

/// Devnet flags.
#[derive(ClapArgs, Clone, Debug)]
pub struct Args {
    /// Address of the ledger node's JSON-RPC server.
    #[arg(long, env = "AGORA_RPC_LISTEN", default_value = "127.0.0.1:26657")]
    pub rpc_listen: SocketAddr,
    #[command(flatten)]
    pub provider: super::provider::Args,
}

/// Runs the devnet until SIGINT or SIGTERM.
pub fn run(args: Args) -> anyhow::Result<()> {
    let chain_dir = args.provider.data.path().join("devnet");
    if !chain_dir.join("genesis.json").exists() {
        genesis::init(genesis::InitArgs {
            data: DataDirArgs {
                data_dir: Some(chain_dir.clone()),
            },
            chain_id: "agora-devnet".into(),
            accounts: 3,
            force: false,
            json: false,
        })?;
    }
    let node_config = node::config(node::Args {
        data: DataDirArgs {
            data_dir: Some(chain_dir),
        },
        rpc_listen: args.rpc_listen,
        genesis: None,
        key: None,
        block_interval_ms: 200,
        idle_interval_ms: 1000,
    })?;
    let provider_config = args.provider.config()?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let shutdown = move || {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            }
        };
        let listener = tokio::net::TcpListener::bind(args.provider.listen).await?;
        println!("devnet: ledger node RPC on http://{}", args.rpc_listen);
        println!("devnet: OpenAI API on http://{}/v1", listener.local_addr()?);
        let mut node = tokio::spawn(agora_chain::run(node_config, shutdown()));
        let mut provider = tokio::spawn(agora_provider::run(provider_config, listener, shutdown()));
        // The first of: a signal, or either role stopping (which stops the other).
        let (mut node_result, mut provider_result) = (None, None);
        tokio::select! {
            _ = shutdown_signal() => {}
            res = &mut node => node_result = Some(res),
            res = &mut provider => provider_result = Some(res),
        }
        let _ = stop.send(true);
        let node_result = match node_result {
            Some(res) => res,
            None => node.await,
        };
        let provider_result = match provider_result {
            Some(res) => res,
            None => provider.await,
        };
        node_result??;
        provider_result??;
        anyhow::Ok(())
    })
}
