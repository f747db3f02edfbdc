//! `agora genesis`: create a dev genesis and its keys.

use std::time::{SystemTime, UNIX_EPOCH};

use agora_types::{ChainId, Keypair};
use anyhow::Context as _;

/// `agora genesis` subcommands.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum Command {
    /// Write a dev genesis, a validator key and funded dev account keys.
    Init(InitArgs),
}

/// Flags of `agora genesis init`.
#[derive(clap::Args, Debug)]
pub(crate) struct InitArgs {
    /// Data directory to write into.
    #[command(flatten)]
    pub(crate) data: super::DataDirArgs,
    /// Chain id.
    #[arg(long, default_value = "agora-devnet")]
    pub(crate) chain_id: String,
    /// Number of funded dev accounts (keys in `<data-dir>/keys/dev-N.key`).
    #[arg(long, default_value_t = 3)]
    pub(crate) accounts: usize,
    /// Number of validators: the first key is `<data-dir>/validator.key`, the others
    /// `<data-dir>/validator-N.key`.
    #[arg(long, default_value_t = 1)]
    pub(crate) validators: usize,
    /// Replace an existing genesis file.
    #[arg(long)]
    pub(crate) force: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Runs a `genesis` subcommand.
pub(crate) fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Init(args) => init(args),
    }
}

pub(crate) fn load_or_create(path: &std::path::Path) -> anyhow::Result<Keypair> {
    if path.exists() {
        return Ok(agora_rpc::keyfile::load(path)?);
    }
    let mut secret = [0u8; 32];
    getrandom(&mut secret)?;
    let keypair = Keypair::from_bytes(&secret);
    agora_rpc::keyfile::save(path, &keypair)?;
    Ok(keypair)
}

/// Fills `out` from the operating system's RNG.
pub(crate) fn getrandom(out: &mut [u8]) -> anyhow::Result<()> {
    use std::io::Read as _;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut file| file.read_exact(out))
        .context("reading /dev/urandom")
}

/// Where `agora genesis init` keeps validator `index`'s key.
pub(crate) fn validator_key_path(data_dir: &std::path::Path, index: usize) -> std::path::PathBuf {
    match index {
        0 => data_dir.join("validator.key"),
        n => data_dir.join(format!("validator-{n}.key")),
    }
}

pub(crate) fn init(args: InitArgs) -> anyhow::Result<()> {
    let data_dir = args.data.path();
    std::fs::create_dir_all(&data_dir)?;
    let genesis_path = data_dir.join("genesis.json");
    if genesis_path.exists() && !args.force {
        anyhow::bail!(
            "{} exists (use --force to replace it)",
            genesis_path.display()
        );
    }
    let chain_id = ChainId::new(&args.chain_id)?;
    let mut validators = Vec::new();
    for index in 0..args.validators.max(1) {
        validators.push(load_or_create(&validator_key_path(&data_dir, index))?.account_id());
    }
    let validator = validators[0];
    let mut funded = Vec::new();
    let mut key_paths = Vec::new();
    for idx in 0..args.accounts {
        let path = data_dir.join("keys").join(format!("dev-{idx}.key"));
        funded.push(load_or_create(&path)?.account_id());
        key_paths.push(path);
    }
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let genesis = agora_chain::genesis::dev_validators(&chain_id, now_ms, &validators, &funded);
    agora_chain::genesis::GenesisFile::from_genesis(&genesis).save(&genesis_path)?;
    if args.json {
        let accounts: Vec<_> = funded
            .iter()
            .zip(&key_paths)
            .map(|(account, path)| {
                serde_json::json!({"address": account.to_string(), "key": path.display().to_string()})
            })
            .collect();
        let out = serde_json::json!({
            "genesis": genesis_path.display().to_string(),
            "genesis_hash": genesis.hash().to_hex(),
            "chain_id": chain_id.to_string(),
            "validator": validator.to_string(),
            "validators": validators.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "accounts": accounts,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("wrote {}", genesis_path.display());
        println!("chain id   {chain_id}");
        for validator in &validators {
            println!("validator  {validator}");
        }
        for (account, path) in funded.iter().zip(&key_paths) {
            println!("funded     {account}  ({})", path.display());
        }
    }
    Ok(())
}
