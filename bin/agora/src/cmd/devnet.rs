//! `agora devnet`: the whole network on this machine, with the bundled model.
//!
//! One process runs a ledger node (a validator set of one, or with `--validators 4` four
//! validators agreeing by BFT consensus; dev genesis with funded keys and the default model
//! active), three providers with their own keys, prices and data folders
//! (each bonds, registers on the ledger and serves the default model), three verifiers (each
//! bonds, registers, checks the transcripts the gateway samples, sits on dispute committees and
//! scores the providers each epoch), and a gateway on `127.0.0.1:8080` that routes to the
//! providers and pays them with vouchers. Everything lives under `<data-dir>/devnet`, so a
//! second start takes up the same chain, keys and API key.

use std::{net::SocketAddr, path::Path, time::Duration};

use agora_types::{Amount, UNITS_PER_AGR};
use clap::Args as ClapArgs;

use super::{gateway, genesis, node, provider, shutdown_signal, DataDirArgs};

/// Credit given to the devnet's API key.
const DEVNET_CREDIT: Amount = 100 * UNITS_PER_AGR;

/// Devnet flags.
#[derive(ClapArgs, Clone, Debug)]
pub struct Args {
    /// Address of the gateway's OpenAI API.
    #[arg(long, env = "AGORA_GATEWAY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Address of the ledger node's JSON-RPC server.
    #[arg(long, env = "AGORA_RPC_LISTEN", default_value = "127.0.0.1:26657")]
    pub rpc_listen: SocketAddr,
    /// Number of validators: one by default; 4 runs BFT consensus between four nodes
    /// (RPC on consecutive ports from `--rpc-listen`, p2p from `--p2p-port`). A devnet
    /// folder keeps the validator count it was created with.
    #[arg(long, default_value_t = 1)]
    pub validators: u16,
    /// Port of the first validator's p2p listener; the others follow.
    #[arg(long, default_value_t = 26670)]
    pub p2p_port: u16,
    /// Number of providers.
    #[arg(long, default_value_t = 3)]
    pub providers: u16,
    /// Port of the first provider; the others follow (0 picks free ports).
    #[arg(long, default_value_t = 8081)]
    pub provider_port: u16,
    /// Number of verifiers (a dispute's committee needs two besides the challenger).
    #[arg(long, default_value_t = 3)]
    pub verifiers: u16,
    /// Port of the first verifier; the others follow (0 picks free ports).
    #[arg(long, default_value_t = 8091)]
    pub verifier_port: u16,
    #[command(flatten)]
    pub engine: provider::EngineArgs,
    #[command(flatten)]
    pub data: DataDirArgs,
}

/// Runs the devnet until SIGINT or SIGTERM.
pub fn run(args: Args) -> anyhow::Result<()> {
    let chain_dir = args.data.path().join("devnet");
    let chain_data = DataDirArgs {
        data_dir: Some(chain_dir.clone()),
    };
    if !chain_dir.join("genesis.json").exists() {
        genesis::init(genesis::InitArgs {
            data: chain_data.clone(),
            chain_id: "agora-devnet".into(),
            accounts: usize::from(args.providers) + usize::from(args.verifiers) + 1,
            validators: usize::from(args.validators),
            force: false,
            json: false,
        })?;
    }
    let node_configs = validator_configs(&args, &chain_dir)?;
    // Roles fail over between the validators' RPC servers.
    let rpc_url = node_configs
        .iter()
        .map(|config| format!("http://{}", config.rpc_listen))
        .collect::<Vec<_>>()
        .join(",");
    let model = args.engine.model_config(&args.data)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        // The roles stop first, so that providers can still redeem and commit on the node.
        let (stop_node, node_stopped) = tokio::sync::watch::channel(false);
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let shutdown = move || {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            }
        };
        let mut tasks = tokio::task::JoinSet::new();
        let mut nodes = tokio::task::JoinSet::new();
        for (index, config) in node_configs.into_iter().enumerate() {
            let mut node_stopped = node_stopped.clone();
            if index > 0 {
                println!(
                    "devnet: validator {index} on http://{} ({})",
                    config.rpc_listen,
                    config.data_dir.display()
                );
            }
            nodes.spawn(async move {
                agora_chain::run(config, async move {
                    let _ = node_stopped.wait_for(|s| *s).await;
                })
                .await
                .map_err(anyhow::Error::from)
            });
        }
        drop(node_stopped);
        wait_for_node(&rpc_url).await?;

        let mut provider_urls = Vec::new();
        for index in 1..=args.providers {
            let port = if args.provider_port == 0 {
                0
            } else {
                args.provider_port + index - 1
            };
            let listener = tokio::net::TcpListener::bind((args.listen.ip(), port)).await?;
            let addr = listener.local_addr()?;
            let mut model = model.clone();
            // Distinct prices, so routing has something to choose between.
            model.price_in = Amount::from(index) * UNITS_PER_AGR / 10;
            model.price_out = Amount::from(index) * UNITS_PER_AGR / 5;
            // Every devnet provider follows governance, so a passed proposal is served within
            // seconds (fetched from the node, where `agora model import` puts it).
            let follow = agora_provider::lifecycle::Follow {
                selection: agora_provider::lifecycle::Selection::Auto,
                engine: model.engine.clone(),
                price_in: model.price_in,
                price_out: model.price_out,
                peers: Vec::new(),
                grace: Duration::from_secs(10),
                poll: Duration::from_secs(1),
            };
            let config = agora_provider::Config {
                models: vec![model],
                max_body_bytes: agora_provider::DEFAULT_MAX_BODY_BYTES,
                request_timeout: Duration::from_secs(600),
                ledger: Some(agora_provider::LedgerConfig {
                    rpc_url: rpc_url.clone(),
                    keypair: agora_rpc::keyfile::load(
                        &chain_dir.join("keys").join(format!("dev-{index}.key")),
                    )?,
                    endpoint: format!("http://{addr}"),
                    region: "local".into(),
                    hardware: "cpu".into(),
                    stake: 0,
                    settle_interval: Duration::from_secs(2),
                    journal_dir: Some(chain_dir.join("payments")),
                }),
                cheat: None,
                blobs: Some(args.data.blobs()?),
                follow: Some(follow),
            };
            println!("devnet: provider {index} on http://{addr}");
            provider_urls.push(format!("http://{addr}"));
            let stopping = shutdown();
            tasks.spawn(async move {
                agora_provider::run(config, listener, stopping)
                    .await
                    .map_err(anyhow::Error::from)
            });
        }

        // Providers answer /health once registered and loaded; the gateway starts after.
        for url in &provider_urls {
            wait_for_health(url, &mut tasks).await?;
        }
        let funder = agora_rpc::keyfile::load(&chain_dir.join("keys").join("dev-0.key"))?;
        for index in 1..=args.verifiers {
            let port = if args.verifier_port == 0 {
                0
            } else {
                args.verifier_port + index - 1
            };
            let listener = tokio::net::TcpListener::bind((args.listen.ip(), port)).await?;
            let addr = listener.local_addr()?;
            let key = chain_dir
                .join("keys")
                .join(format!("dev-{}.key", args.providers + index));
            let keypair = genesis::load_or_create(&key)?;
            fund(&rpc_url, &funder, &keypair.account_id()).await?;
            let mut engine = agora_engine::EngineConfig::for_model(&model.engine.model_path);
            engine.threads = 1;
            engine.max_sequences = 1;
            engine.context_per_sequence = model.engine.context_per_sequence.max(2048);
            let state = chain_dir
                .join("verifiers")
                .join(keypair.account_id().to_string());
            let config = agora_verifier::role::Config::new(
                &rpc_url,
                keypair,
                format!("http://{addr}"),
                state,
                model.cid,
                engine,
            );
            let verifier = agora_verifier::role::Verifier::connect(config).await?;
            println!("devnet: verifier {index} on http://{addr}");
            let stopping = shutdown();
            tasks.spawn(async move {
                agora_verifier::role::serve(verifier, listener, stopping)
                    .await
                    .map_err(anyhow::Error::from)
            });
        }
        let keypair = funder;
        let config = agora_gateway::Config::new(&rpc_url, keypair, chain_dir.join("gateway"));
        let gateway = agora_gateway::Gateway::connect(config).await?;
        let api_key = api_key(&chain_dir, &gateway)?;
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        let url = format!("http://{}/v1", listener.local_addr()?);
        let stopping = shutdown();
        tasks.spawn(async move {
            agora_gateway::serve(gateway, listener, stopping)
                .await
                .map_err(anyhow::Error::from)
        });
        print_welcome(&url, &rpc_url, &api_key, &chain_dir);

        // The first of: a signal, or any role stopping (which stops the others).
        let mut failure = None;
        let mut node_result = None;
        tokio::select! {
            _ = shutdown_signal() => {}
            Some(result) = tasks.join_next() => {
                failure = flatten(result).err();
            }
            Some(result) = nodes.join_next() => node_result = Some(result),
        }
        let _ = stop.send(true);
        while let Some(result) = tasks.join_next().await {
            if let Err(err) = flatten(result) {
                failure.get_or_insert(err);
            }
        }
        let _ = stop_node.send(true);
        if let Some(Err(err)) = node_result.map(flatten) {
            failure.get_or_insert(err);
        }
        while let Some(result) = nodes.join_next().await {
            if let Err(err) = flatten(result) {
                failure.get_or_insert(err);
            }
        }
        match failure {
            Some(err) => Err(err),
            None => Ok(()),
        }
    })
}

/// What a devnet verifier is given when it holds less: stake plus bonds for many challenges.
const VERIFIER_FUNDS: Amount = 1_000 * UNITS_PER_AGR;

/// Tops `account` up to [`VERIFIER_FUNDS`] from `funder` (a devnet made before it had
/// verifiers did not fund their keys in genesis).
async fn fund(
    rpc_url: &str,
    funder: &agora_types::Keypair,
    account: &agora_types::AccountId,
) -> anyhow::Result<()> {
    let client = agora_rpc::Client::new(rpc_url)?;
    let state = client.account(account).await?;
    let held =
        state.balance.parse::<Amount>().unwrap_or(0) + state.bonded.parse::<Amount>().unwrap_or(0);
    if held >= VERIFIER_FUNDS {
        return Ok(());
    }
    client
        .execute(
            funder,
            agora_types::TxBody::Transfer {
                to: *account,
                amount: VERIFIER_FUNDS - held,
            },
            Duration::from_secs(30),
        )
        .await
        .map_err(|err| anyhow::anyhow!("funding verifier {account}: {err}"))?;
    Ok(())
}

/// The validators' node configs: the first in the devnet folder, validator N in
/// `<devnet>/validator-N`, all on the devnet's genesis.
fn validator_configs(args: &Args, chain_dir: &Path) -> anyhow::Result<Vec<agora_chain::Config>> {
    let genesis =
        agora_chain::genesis::GenesisFile::load(&chain_dir.join("genesis.json"))?.to_genesis()?;
    let count = genesis.validators.len();
    if count != usize::from(args.validators.max(1)) {
        anyhow::bail!(
            "the devnet in {} was created with {count} validator(s); start it with \
             --validators {count}, or use another --data-dir",
            chain_dir.display()
        );
    }
    let p2p = |index: usize| -> anyhow::Result<SocketAddr> {
        let port = u16::try_from(usize::from(args.p2p_port) + index)?;
        Ok(SocketAddr::new(args.rpc_listen.ip(), port))
    };
    let mut configs = Vec::new();
    for index in 0..count {
        let data = match index {
            0 => chain_dir.to_path_buf(),
            n => chain_dir.join(format!("validator-{n}")),
        };
        let rpc_port = u16::try_from(usize::from(args.rpc_listen.port()) + index)?;
        let peers = (0..count)
            .filter(|other| *other != index && count > 1)
            .map(|other| {
                Ok(format!(
                    "{}@{}",
                    genesis.validators[other].account,
                    p2p(other)?
                ))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        configs.push(node::config(node::Args {
            data: DataDirArgs {
                data_dir: Some(data),
            },
            rpc_listen: SocketAddr::new(args.rpc_listen.ip(), rpc_port),
            genesis: Some(chain_dir.join("genesis.json")),
            key: Some(genesis::validator_key_path(chain_dir, index)),
            block_interval_ms: 200,
            idle_interval_ms: 1000,
            p2p_listen: (count > 1).then(|| p2p(index)).transpose()?,
            peers,
            state_sync: None,
            follow: None,
        })?);
    }
    Ok(configs)
}

fn flatten(result: Result<anyhow::Result<()>, tokio::task::JoinError>) -> anyhow::Result<()> {
    result.map_err(anyhow::Error::from)?
}

async fn wait_for_node(rpc_url: &str) -> anyhow::Result<()> {
    let client = agora_rpc::Client::new(rpc_url)?;
    for _ in 0..300 {
        if client.head().await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("the ledger node did not answer on {rpc_url}")
}

/// Waits until `url/health` answers, failing if a role stops meanwhile.
async fn wait_for_health(
    url: &str,
    tasks: &mut tokio::task::JoinSet<anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    loop {
        if http.get(format!("{url}/health")).send().await.is_ok() {
            return Ok(());
        }
        if let Some(result) = tasks.try_join_next() {
            flatten(result)?;
            anyhow::bail!("a devnet role stopped during start-up");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The devnet's API key: read from `<chain>/api-key`, or issued with credit and written there.
fn api_key(chain_dir: &Path, gateway: &agora_gateway::Gateway) -> anyhow::Result<String> {
    let path = chain_dir.join("api-key");
    if let Ok(key) = std::fs::read_to_string(&path) {
        let key = key.trim().to_owned();
        if gateway.wallet.credit(&key).is_some() {
            return Ok(key);
        }
    }
    let key = gateway::new_api_key()?;
    gateway.wallet.grant(&key, "devnet", DEVNET_CREDIT)?;
    std::fs::write(&path, format!("{key}\n"))?;
    Ok(key)
}

fn print_welcome(url: &str, rpc_url: &str, api_key: &str, chain_dir: &Path) {
    println!(
        r#"
devnet is up.
  OpenAI API   {url}
  API key      {api_key}   (also in {key_file})
  ledger RPC   {rpc_url}

Try it:
  curl {url}/chat/completions -H "Authorization: Bearer {api_key}" -H "Content-Type: application/json" \
    -d '{{"model": "SmolLM2-135M-Instruct", "messages": [{{"role": "user", "content": "Say hello."}}]}}'

  python3 -c 'from openai import OpenAI; c = OpenAI(base_url="{url}", api_key="{api_key}"); print(c.chat.completions.create(model="SmolLM2-135M-Instruct", messages=[{{"role": "user", "content": "Say hello."}}]).choices[0].message.content)'

Ctrl-C stops everything (providers redeem their vouchers first).
"#,
        key_file = chain_dir.join("api-key").display()
    );
}
