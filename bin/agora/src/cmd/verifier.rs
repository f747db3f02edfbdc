//! `agora verifier`: check providers' answers, challenge cheaters, vote on disputes and score
//! providers each epoch.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use agora_engine::EngineConfig;
use agora_types::{amount, Amount};
use clap::Args as ClapArgs;

use super::{progress_bar, shutdown_signal, DataDirArgs};

/// Verifier flags.
#[derive(ClapArgs, Clone, Debug)]
pub struct Args {
    /// Address to serve on (transcripts in, published transcripts out).
    #[arg(long, env = "AGORA_VERIFIER_LISTEN", default_value = "127.0.0.1:8090")]
    pub listen: SocketAddr,
    /// JSON-RPC URL of a ledger node.
    #[arg(long, env = "AGORA_RPC", default_value = "http://127.0.0.1:26657")]
    pub rpc: String,
    /// The verifier's key file (default `<data-dir>/verifier.key`); its account must hold
    /// enough to bond the stake and put up challenge bonds. Its state lives in
    /// `<data-dir>/verifiers/<account>/`.
    #[arg(long, env = "AGORA_KEY")]
    pub key: Option<PathBuf>,
    /// Public base URL gateways and other verifiers reach this verifier at (default
    /// `http://<listen>`).
    #[arg(long, env = "AGORA_ENDPOINT")]
    pub endpoint: Option<String>,
    /// Stake to keep bonded, in AGR (at least the ledger's `min_stake` either way).
    #[arg(long, default_value = "0", value_parser = parse_agr)]
    pub stake: Amount,
    /// GGUF file of the governed model to check (default: the bundled default model); its
    /// CID must be the one receipts name.
    #[arg(long, env = "AGORA_MODEL")]
    pub model: Option<PathBuf>,
    /// CPU threads for checks.
    #[arg(long, env = "AGORA_THREADS")]
    pub threads: Option<u32>,
    /// Tokens one check may hold (prompt plus answer).
    #[arg(long, default_value_t = 4096)]
    pub context: u32,
    /// How often the ledger is read (disputes, epochs, probes), in milliseconds.
    #[arg(long, default_value_t = 500)]
    pub poll_interval_ms: u64,
    /// Do not time providers with paid probe requests (scores then rest on uptime and checks).
    #[arg(long)]
    pub no_paid_probes: bool,
    #[command(flatten)]
    pub data: DataDirArgs,
}

fn parse_agr(text: &str) -> Result<Amount, String> {
    amount::parse_agr(text).map_err(|e| e.to_string())
}

impl Args {
    /// The verifier's config (fetching or importing the model into the store).
    pub fn config(&self) -> anyhow::Result<agora_verifier::role::Config> {
        let data = self.data.path();
        let store = self.data.blobs()?;
        let cid = match &self.model {
            None => {
                agora_store::default_model::ensure(&store, &mut progress_bar("model"))?;
                agora_store::default_model::cid()
            }
            Some(file) => store.import_file(file, None, &mut progress_bar("import"))?,
        };
        let mut engine = EngineConfig::for_model(store.path(&cid));
        if let Some(threads) = self.threads {
            engine.threads = threads;
        }
        // One check at a time: a single sequence with the whole context.
        engine.max_sequences = 1;
        engine.context_per_sequence = self.context;
        let key = self
            .key
            .clone()
            .unwrap_or_else(|| data.join("verifier.key"));
        let keypair = super::genesis::load_or_create(&key)?;
        // Each verifier's own folder, so several can share one data folder.
        let state = data
            .join("verifiers")
            .join(keypair.account_id().to_string());
        let endpoint = self
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen));
        let mut config =
            agora_verifier::role::Config::new(&self.rpc, keypair, endpoint, state, cid, engine);
        config.stake = self.stake;
        config.poll_interval = Duration::from_millis(self.poll_interval_ms.max(50));
        config.paid_probes = !self.no_paid_probes;
        Ok(config)
    }
}

/// Runs the verifier until SIGINT or SIGTERM.
pub fn run(args: Args) -> anyhow::Result<()> {
    let config = args.config()?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        println!("verifier listening on http://{}", listener.local_addr()?);
        agora_verifier::role::run(config, listener, shutdown_signal()).await?;
        anyhow::Ok(())
    })
}
