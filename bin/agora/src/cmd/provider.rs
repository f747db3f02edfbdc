//! `agora provider`: serve models over the OpenAI API.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use agora_engine::EngineConfig;
use agora_types::Cid;
use clap::Args as ClapArgs;

use super::{progress_bar, shutdown_signal, DataDirArgs};

/// Provider flags.
#[derive(ClapArgs, Clone, Debug)]
pub struct Args {
    /// Address to serve the OpenAI API on.
    #[arg(long, env = "AGORA_PROVIDER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(flatten)]
    pub data: DataDirArgs,
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
        })
    }
}

impl Args {
    /// The provider's config.
    pub fn config(&self) -> anyhow::Result<agora_provider::Config> {
        Ok(agora_provider::Config {
            models: vec![self.engine.model_config(&self.data)?],
            max_body_bytes: agora_provider::DEFAULT_MAX_BODY_BYTES,
            request_timeout: Duration::from_secs(600),
        })
    }
}

/// Runs the provider until SIGINT or SIGTERM.
pub fn run(args: Args) -> anyhow::Result<()> {
    let config = args.config()?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        println!("provider listening on http://{}", listener.local_addr()?);
        agora_provider::run(config, listener, shutdown_signal()).await?;
        anyhow::Ok(())
    })
}
