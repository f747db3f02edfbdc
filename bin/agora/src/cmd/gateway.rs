//! `agora gateway`: the OpenAI API in front of the network's providers.

use std::{net::SocketAddr, path::PathBuf};

use agora_types::{amount, Amount};
use clap::{Args as ClapArgs, Subcommand};

use super::{shutdown_signal, DataDirArgs};

/// Gateway flags.
#[derive(ClapArgs, Clone, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    /// One-shot actions instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Address to serve the OpenAI API on.
    #[arg(long, env = "AGORA_GATEWAY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Flags shared by serving and key management.
#[derive(ClapArgs, Clone, Debug)]
pub struct CommonArgs {
    /// JSON-RPC URL of a ledger node.
    #[arg(long, env = "AGORA_RPC", default_value = "http://127.0.0.1:26657")]
    pub rpc: String,
    /// The gateway's key file, payer of its channels (default `<data-dir>/gateway.key`).
    #[arg(long, env = "AGORA_KEY")]
    pub key: Option<PathBuf>,
    /// Deposit of each channel the gateway opens, in AGR.
    #[arg(long, default_value = "10", value_parser = parse_agr)]
    pub channel_deposit: Amount,
    /// Base share of answers whose transcripts go to verifiers (0 to 1; new and flagged
    /// providers are checked more often).
    #[arg(long, env = "AGORA_VERIFY_RATE", default_value_t = agora_gateway::DEFAULT_VERIFY_RATE)]
    pub verify_rate: f64,
    #[command(flatten)]
    pub data: DataDirArgs,
}

/// One-shot gateway actions.
#[derive(Subcommand, Clone, Debug)]
pub enum Command {
    /// Issue an API key with credit (or add credit to an existing key) and print it.
    AddKey {
        /// Credit in AGR.
        #[arg(long, default_value = "10", value_parser = parse_agr)]
        credit: Amount,
        /// Whose key it is.
        #[arg(long, default_value = "client")]
        label: String,
        /// Add to this key instead of issuing a new one.
        #[arg(long)]
        api_key: Option<String>,
        #[command(flatten)]
        common: CommonArgs,
    },
}

fn parse_agr(text: &str) -> Result<Amount, String> {
    amount::parse_agr(text).map_err(|e| e.to_string())
}

impl CommonArgs {
    /// The gateway's config.
    pub fn config(&self) -> anyhow::Result<agora_gateway::Config> {
        let key = self
            .key
            .clone()
            .unwrap_or_else(|| self.data.path().join("gateway.key"));
        let keypair = super::genesis::load_or_create(&key)?;
        let mut config =
            agora_gateway::Config::new(&self.rpc, keypair, self.data.path().join("gateway"));
        config.channel_deposit = self.channel_deposit;
        config.verify_rate = self.verify_rate;
        Ok(config)
    }
}

/// A new random API key.
pub fn new_api_key() -> anyhow::Result<String> {
    let mut bytes = [0u8; 24];
    super::genesis::getrandom(&mut bytes)?;
    Ok(format!("sk-agora-{}", hex::encode(bytes)))
}

/// Runs the gateway until SIGINT or SIGTERM, or performs a one-shot action.
pub fn run(args: Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    match args.command {
        Some(Command::AddKey {
            credit,
            label,
            api_key,
            common,
        }) => runtime.block_on(async {
            let config = common.config()?;
            let gateway = agora_gateway::Gateway::connect(config).await?;
            let key = match api_key {
                Some(key) => key,
                None => new_api_key()?,
            };
            gateway.wallet.grant(&key, &label, credit)?;
            println!("{key}");
            anyhow::Ok(())
        }),
        None => runtime.block_on(async {
            let config = args.common.config()?;
            let listener = tokio::net::TcpListener::bind(args.listen).await?;
            println!("gateway listening on http://{}/v1", listener.local_addr()?);
            agora_gateway::run(config, listener, shutdown_signal()).await?;
            anyhow::Ok(())
        }),
    }
}
