//! `agora provider`: serve models over the OpenAI API, registered and paid on the ledger.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use agora_engine::EngineConfig;
use agora_types::{amount, Amount, Cid};
use clap::{Args as ClapArgs, Subcommand};

use super::{progress_bar, shutdown_signal, DataDirArgs};

/// Provider flags.
#[derive(ClapArgs, Clone, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    /// One-shot actions instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Address to serve the OpenAI API on.
    #[arg(long, env = "AGORA_PROVIDER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(flatten)]
    pub ledger: LedgerArgs,
    #[command(flatten)]
    pub data: DataDirArgs,
    /// Cheat, for tests and benchmarks of verifiers only: `canned`, `truncate` or
    /// `forged-prefill`.
    #[arg(long, hide = true)]
    pub cheat: Option<agora_provider::cheat::Cheat>,
    #[command(flatten)]
    pub follow: FollowArgs,
}

/// Following governed models.
#[derive(ClapArgs, Clone, Debug)]
pub struct FollowArgs {
    /// Also serve governed models as proposals make them active: `auto` (every active model)
    /// or a comma-separated list of names or CIDs. Each is fetched from peers, verified and
    /// loaded without a restart, and unloaded after `--retire-grace-secs` once retired.
    #[arg(long, value_parser = agora_provider::lifecycle::Selection::parse)]
    pub serve: Option<agora_provider::lifecycle::Selection>,
    /// A peer to fetch model blobs from (base URL serving `/blobs/{cid}`), besides the ledger
    /// node and the providers serving the model; repeatable.
    #[arg(long = "blob-peer")]
    pub blob_peers: Vec<String>,
    /// Seconds a retired model keeps answering requests already routed to it.
    #[arg(long, default_value_t = 30)]
    pub retire_grace_secs: u64,
}

/// One-shot provider actions.
#[derive(Subcommand, Clone, Debug)]
pub enum Command {
    /// Bond stake and register (or update) this provider on the ledger, then exit.
    Register {
        /// Address the provider serves on (the endpoint defaults to it).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Content id of the model offered (default: the default model).
        #[arg(long)]
        model_cid: Option<Cid>,
        #[command(flatten)]
        ledger: LedgerArgs,
        #[command(flatten)]
        data: DataDirArgs,
    },
}

/// Where and how the provider appears on the ledger.
#[derive(ClapArgs, Clone, Debug)]
pub struct LedgerArgs {
    /// JSON-RPC URL of a ledger node; with it the provider registers, requires vouchers and
    /// signs receipts. Without it, it serves for free, off-ledger.
    #[arg(long, env = "AGORA_RPC")]
    pub rpc: Option<String>,
    /// The provider's key file (default `<data-dir>/provider.key`); its account must hold
    /// enough to bond the stake.
    #[arg(long, env = "AGORA_KEY")]
    pub key: Option<PathBuf>,
    /// Public base URL gateways reach this provider at (default `http://<listen>`).
    #[arg(long, env = "AGORA_ENDPOINT")]
    pub endpoint: Option<String>,
    /// Price per million prompt tokens, in AGR.
    #[arg(long, default_value = "0.5", value_parser = parse_agr)]
    pub price_in: Amount,
    /// Price per million completion tokens, in AGR.
    #[arg(long, default_value = "1", value_parser = parse_agr)]
    pub price_out: Amount,
    /// Stake to keep bonded, in AGR (at least the ledger's `min_stake` either way).
    #[arg(long, default_value = "0", value_parser = parse_agr)]
    pub stake: Amount,
    /// Region label.
    #[arg(long, default_value = "local")]
    pub region: String,
    /// Hardware description.
    #[arg(long, default_value = "cpu")]
    pub hardware: String,
    /// How often vouchers are redeemed and receipts committed, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    pub settle_interval_ms: u64,
}

fn parse_agr(text: &str) -> Result<Amount, String> {
    amount::parse_agr(text).map_err(|e| e.to_string())
}

impl LedgerArgs {
    /// The ledger config, when `--rpc` is given.
    pub fn config(
        &self,
        data: &DataDirArgs,
        listen: SocketAddr,
    ) -> anyhow::Result<Option<agora_provider::LedgerConfig>> {
        let Some(rpc) = &self.rpc else {
            return Ok(None);
        };
        let key = self
            .key
            .clone()
            .unwrap_or_else(|| data.path().join("provider.key"));
        let keypair = super::genesis::load_or_create(&key)?;
        Ok(Some(agora_provider::LedgerConfig {
            rpc_url: rpc.clone(),
            keypair,
            endpoint: self
                .endpoint
                .clone()
                .unwrap_or_else(|| format!("http://{listen}")),
            region: self.region.clone(),
            hardware: self.hardware.clone(),
            stake: self.stake,
            settle_interval: Duration::from_millis(self.settle_interval_ms.max(100)),
            journal_dir: Some(data.path().join("payments")),
        }))
    }
}

/// Which model to serve and how.
#[derive(ClapArgs, Clone, Debug)]
pub struct EngineArgs {
    /// GGUF file to serve (imported into the store); default: the bundled default model.
    #[arg(long, env = "AGORA_MODEL")]
    pub model: Option<PathBuf>,
    /// Name clients use for the model (default: the default model's name, or the file stem).
    #[arg(long, env = "AGORA_MODEL_NAME")]
    pub model_name: Option<String>,
    /// CPU threads for inference.
    #[arg(long, env = "AGORA_THREADS")]
    pub threads: Option<u32>,
    /// Sequences decoded together (continuous batching slots).
    #[arg(long, env = "AGORA_PARALLEL", default_value_t = 8)]
    pub parallel: u32,
    /// Tokens per sequence (prompt plus answer).
    #[arg(long, env = "AGORA_CONTEXT", default_value_t = 2048)]
    pub context: u32,
    /// Requests that may wait for a slot before new ones get 429.
    #[arg(long, env = "AGORA_QUEUE", default_value_t = 64)]
    pub queue: usize,
    /// Cheat, for tests and benchmarks of verifiers only: serve `--model` while claiming it is
    /// the model with this CID (named like the default model).
    #[arg(long, hide = true, requires = "model")]
    pub cheat_claim: Option<Cid>,
}

impl EngineArgs {
    /// Resolves the model (fetching or importing it into the store) into a provider model config.
    pub fn model_config(&self, data: &DataDirArgs) -> anyhow::Result<agora_provider::ModelConfig> {
        let store = data.blobs()?;
        let (cid, name): (Cid, String) = match &self.model {
            None => {
                agora_store::default_model::ensure(&store, &mut progress_bar("model"))?;
                (
                    agora_store::default_model::cid(),
                    agora_store::default_model::NAME.into(),
                )
            }
            Some(file) => {
                let cid = store.import_file(file, None, &mut progress_bar("import"))?;
                let stem = file
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| cid.to_string());
                (cid, stem)
            }
        };
        let mut engine = EngineConfig::for_model(store.path(&cid));
        let (cid, name) = match self.cheat_claim {
            Some(claimed) => (claimed, agora_store::default_model::NAME.to_string()),
            None => (cid, name),
        };
        if let Some(threads) = self.threads {
            engine.threads = threads;
        }
        engine.max_sequences = self.parallel;
        engine.context_per_sequence = self.context;
        engine.queue_capacity = self.queue;
        Ok(agora_provider::ModelConfig {
            name: self.model_name.clone().unwrap_or(name),
            cid,
            engine,
            price_in: 0,
            price_out: 0,
        })
    }
}

impl Args {
    /// The provider's config.
    pub fn config(&self) -> anyhow::Result<agora_provider::Config> {
        let mut model = self.engine.model_config(&self.data)?;
        model.price_in = self.ledger.price_in;
        model.price_out = self.ledger.price_out;
        let follow = self
            .follow
            .serve
            .clone()
            .map(|selection| agora_provider::lifecycle::Follow {
                selection,
                engine: model.engine.clone(),
                price_in: self.ledger.price_in,
                price_out: self.ledger.price_out,
                peers: self.follow.blob_peers.clone(),
                grace: Duration::from_secs(self.follow.retire_grace_secs),
                poll: Duration::from_secs(1),
            });
        if follow.is_some() && self.ledger.rpc.is_none() {
            anyhow::bail!("--serve follows the ledger's models, so it needs --rpc");
        }
        Ok(agora_provider::Config {
            models: vec![model],
            max_body_bytes: agora_provider::DEFAULT_MAX_BODY_BYTES,
            request_timeout: Duration::from_secs(600),
            ledger: self.ledger.config(&self.data, self.listen)?,
            cheat: self.cheat,
            blobs: Some(self.data.blobs()?),
            follow,
        })
    }
}

/// Bonds and registers without serving.
fn register(
    listen: SocketAddr,
    model_cid: Option<Cid>,
    ledger: LedgerArgs,
    data: DataDirArgs,
) -> anyhow::Result<()> {
    let config = ledger
        .config(&data, listen)?
        .ok_or_else(|| anyhow::anyhow!("--rpc is required to register"))?;
    let offer = agora_types::ModelOffer {
        cid: model_cid.unwrap_or_else(agora_store::default_model::cid),
        price_in: ledger.price_in,
        price_out: ledger.price_out,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let endpoint = config.endpoint.clone();
        let payments = agora_provider::Payments::connect(config)
            .await
            .map_err(anyhow::Error::msg)?;
        payments
            .ensure_registered(std::slice::from_ref(&offer))
            .await
            .map_err(anyhow::Error::msg)?;
        println!(
            "provider {} registered at {endpoint} for {} ({} / {} per million tokens in / out)",
            payments.account(),
            offer.cid,
            amount::format_agr(offer.price_in),
            amount::format_agr(offer.price_out),
        );
        anyhow::Ok(())
    })
}

/// Runs the provider until SIGINT or SIGTERM.
pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(Command::Register {
        listen,
        model_cid,
        ledger,
        data,
    }) = args.command
    {
        return register(listen, model_cid, ledger, data);
    }
    let config = args.config()?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        println!("provider listening on http://{}", listener.local_addr()?);
        agora_provider::run(config, listener, shutdown_signal()).await?;
        anyhow::Ok(())
    })
}
