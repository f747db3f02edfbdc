//! `agora model`: governed models on the ledger, and blobs in the local store.

use std::path::PathBuf;

use agora_types::{governance::ProposalKind, BoundedString, Cid, ModelInfo};
use anyhow::Context as _;
use clap::Subcommand;

use super::{gov, progress_bar, wallet::Common, DataDirArgs};

/// `agora model`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Command,
}

/// Model commands.
#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// The ledger's models with their demand and quality over recent epochs (tokens served,
    /// providers, lowest price, mean provider score, disputes and frauds), so a proposal to
    /// retire or replace one can cite the figures.
    List {
        /// Epochs back from the current one.
        #[arg(long, default_value_t = 10)]
        epochs: u64,
    },
    /// One model (by name or CID): the ledger's record and its providers.
    Show {
        /// Name or CID.
        model: String,
    },
    /// Fetch a blob by CID from peers into the local store, verified chunk by chunk.
    ///
    /// Peers are the `--peer` URLs plus, when the node answers, the node itself and the
    /// providers registered as serving the CID. An interrupted fetch resumes.
    Fetch {
        /// The blob's CID.
        cid: String,
        /// A peer serving `/blobs/{cid}`; repeatable.
        #[arg(long = "peer")]
        peers: Vec<String>,
        /// Do not ask the node or the providers it lists, only `--peer`s.
        #[arg(long)]
        no_discovery: bool,
    },
    /// Propose a GGUF file as a governed model (imported into the local store, so the node
    /// sharing this data folder serves it to providers).
    Propose {
        /// The GGUF file.
        file: PathBuf,
        /// The name clients will use (default: the file's `general.name`, else its stem).
        #[arg(long)]
        name: Option<String>,
        /// Retire this active model (CID) in the same proposal, so the name moves over.
        #[arg(long)]
        replace: Option<String>,
        /// The model's licence.
        #[arg(long, default_value = "apache-2.0")]
        license: String,
        /// Deposit in AGR (default: the chain's `proposal_deposit`).
        #[arg(long)]
        deposit: Option<String>,
    },
    /// Remove local blobs nothing on the ledger references: not an active model, not the
    /// safety policy, not the transcript of an open dispute.
    Gc {
        /// Only list what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
    /// Propose retiring a model.
    Retire {
        /// The model's CID.
        cid: String,
        /// Deposit in AGR (default: the chain's `proposal_deposit`).
        #[arg(long)]
        deposit: Option<String>,
    },
    /// Fetch the default model (SmolLM2-135M-Instruct Q4_1) and check its pinned CID.
    FetchDefault,
    /// Hash a file and store it by its CID.
    Import {
        /// The file to import.
        file: PathBuf,
    },
    /// The blobs in the local store.
    Local,
    /// Serve the local store to peers (`GET /blobs/{cid}` with ranges, `/blobs/{cid}/tree`)
    /// until SIGINT or SIGTERM: a seed for models, without a node or provider.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8095")]
        listen: std::net::SocketAddr,
    },
}

/// Runs a model command.
pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let data = DataDirArgs {
        data_dir: args.common.data_dir.clone(),
    };
    match args.command {
        Command::FetchDefault => {
            let store = data.blobs()?;
            let path = agora_store::default_model::ensure(&store, &mut progress_bar("fetch"))?;
            println!("{} {}", agora_store::default_model::CID, path.display());
            Ok(())
        }
        Command::Import { file } => {
            let store = data.blobs()?;
            let cid = store.import_file(&file, None, &mut progress_bar("import"))?;
            println!("{cid} {}", store.path(&cid).display());
            Ok(())
        }
        Command::Local => {
            let store = data.blobs()?;
            for cid in store.list()? {
                let size = std::fs::metadata(store.path(&cid))
                    .map(|m| m.len())
                    .unwrap_or(0);
                println!("{cid} {size}");
            }
            Ok(())
        }
        Command::Serve { listen } => tokio::runtime::Runtime::new()?.block_on(async {
            let routes =
                agora_store::serve::routes(agora_store::serve::BlobServer::new(data.blobs()?));
            let listener = tokio::net::TcpListener::bind(listen).await?;
            println!("serving blobs on http://{}", listener.local_addr()?);
            axum::serve(listener, routes)
                .with_graceful_shutdown(super::shutdown_signal())
                .await?;
            anyhow::Ok(())
        }),
        command => tokio::runtime::Runtime::new()?.block_on(ledger(args.common, data, command)),
    }
}

async fn ledger(common: Common, data: DataDirArgs, command: Command) -> anyhow::Result<()> {
    match command {
        Command::List { epochs } => list(&common, epochs).await,
        Command::Show { model } => show(&common, &model).await,
        Command::Fetch {
            cid,
            peers,
            no_discovery,
        } => fetch(&common, &data, &cid, peers, no_discovery).await,
        Command::Propose {
            file,
            name,
            replace,
            license,
            deposit,
        } => {
            let store = data.blobs()?;
            let cid = store.import_file(&file, None, &mut progress_bar("import"))?;
            let size = std::fs::metadata(store.path(&cid))?.len();
            let header = agora_store::gguf::read_info(&mut std::fs::File::open(&file)?)
                .with_context(|| format!("{}", file.display()))?;
            let name = name.or(header.name.clone()).unwrap_or_else(|| {
                file.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| cid.to_string())
            });
            let info = ModelInfo {
                cid,
                name: label(&name)?,
                architecture: label(&header.architecture)?,
                quantization: label(header.quantization.as_deref().unwrap_or("unknown"))?,
                context_length: header.context_length.unwrap_or(0),
                license: label(&license)?,
                size,
            };
            println!(
                "{cid}: {name} ({}, {}, context {}, {size} bytes)",
                header.architecture,
                info.quantization.as_str(),
                info.context_length
            );
            let kind = match replace {
                Some(old) => ProposalKind::ReplaceModel {
                    old: gov::cid(&old)?,
                    new: info,
                },
                None => ProposalKind::AddModel(info),
            };
            gov::submit(&common, kind, deposit).await
        }
        Command::Gc { dry_run } => gc(&common, &data, dry_run).await,
        Command::Retire { cid, deposit } => {
            let kind = ProposalKind::RetireModel {
                cid: gov::cid(&cid)?,
            };
            gov::submit(&common, kind, deposit).await
        }
        Command::FetchDefault | Command::Import { .. } | Command::Local | Command::Serve { .. } => {
            unreachable!("handled without the ledger")
        }
    }
}

async fn gc(common: &Common, data: &DataDirArgs, dry_run: bool) -> anyhow::Result<()> {
    let client = common.client()?;
    let mut keep = std::collections::BTreeSet::new();
    for model in client.models().await? {
        if model.status == "active" {
            keep.insert(gov::cid(&model.cid)?);
        }
    }
    keep.extend(client.safety_policy().await?);
    for dispute in client.disputes(true, None).await? {
        keep.insert(gov::cid(&dispute.transcript)?);
    }
    let store = data.blobs()?;
    if dry_run {
        for cid in store.list()?.into_iter().filter(|c| !keep.contains(c)) {
            println!("would remove {cid}");
        }
        return Ok(());
    }
    for cid in store.gc(&keep)? {
        println!("removed {cid}");
    }
    Ok(())
}

fn label<const MAX: usize>(text: &str) -> anyhow::Result<BoundedString<MAX>> {
    BoundedString::new(text).map_err(|err| anyhow::anyhow!("{text}: {err}"))
}

async fn list(common: &Common, epochs: u64) -> anyhow::Result<()> {
    let client = common.client()?;
    let mut stats = Vec::new();
    for model in client.models().await? {
        let cid = gov::cid(&model.cid)?;
        if let Some(s) = client.model_stats(&cid, Some(epochs)).await? {
            stats.push((model, s));
        }
    }
    if common.json {
        let rows: Vec<_> = stats
            .iter()
            .map(|(model, s)| serde_json::json!({"model": model, "stats": s}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if let Some((_, s)) = stats.first() {
        println!("epochs {}..={}", s.from_epoch, s.to_epoch);
    }
    println!(
        "{:<8} {:<24} {:<7} {:>9} {:>11} {:>9} {:>14} {:>7} {:>8}  cid",
        "status",
        "name",
        "quant",
        "providers",
        "tokens out",
        "requests",
        "min price out",
        "score",
        "frauds"
    );
    for (m, s) in stats {
        let price = s
            .min_price_out
            .as_deref()
            .and_then(|p| p.parse().ok())
            .map_or("-".into(), agora_types::amount::format_agr);
        let score = s
            .mean_score_ppm
            .map_or("-".into(), |ppm| format!("{:.2}", ppm as f64 / 1e6));
        println!(
            "{:<8} {:<24} {:<7} {:>9} {:>11} {:>9} {:>14} {:>7} {:>4}/{:<3}  {}",
            m.status,
            m.name,
            m.quantization,
            s.providers,
            s.tokens_out,
            s.requests,
            price,
            score,
            s.frauds,
            s.disputes,
            m.cid
        );
    }
    Ok(())
}

async fn show(common: &Common, wanted: &str) -> anyhow::Result<()> {
    let client = common.client()?;
    let models = client.models().await?;
    let model = models
        .iter()
        .filter(|m| m.cid == wanted || m.name == wanted)
        .max_by_key(|m| m.status == "active")
        .with_context(|| format!("no model named or with CID {wanted} on the ledger"))?;
    let providers: Vec<_> = client
        .providers()
        .await?
        .into_iter()
        .filter(|p| p.models.iter().any(|o| o.cid == model.cid))
        .collect();
    let stats = client.model_stats(&gov::cid(&model.cid)?, None).await?;
    if common.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "model": model,
                "providers": providers,
                "stats": stats,
            }))?
        );
        return Ok(());
    }
    println!("{} ({})", model.name, model.status);
    println!("  cid           {}", model.cid);
    println!("  architecture  {}", model.architecture);
    println!("  quantization  {}", model.quantization);
    println!("  context       {}", model.context_length);
    println!("  licence       {}", model.license);
    println!("  size          {} bytes", model.size);
    if let Some(s) = stats {
        println!(
            "  epochs {}..={}: {} requests, {} tokens in, {} out; {} dispute(s), {} fraud",
            s.from_epoch, s.to_epoch, s.requests, s.tokens_in, s.tokens_out, s.disputes, s.frauds
        );
    }
    for p in providers {
        let offer = p.models.iter().find(|o| o.cid == model.cid);
        println!(
            "  provider {} {} {} in {} / out {} per million tokens",
            p.operator,
            p.endpoint,
            p.status,
            offer.map_or("?", |o| o.price_in.as_str()),
            offer.map_or("?", |o| o.price_out.as_str()),
        );
    }
    Ok(())
}

async fn fetch(
    common: &Common,
    data: &DataDirArgs,
    cid: &str,
    mut peers: Vec<String>,
    no_discovery: bool,
) -> anyhow::Result<()> {
    let cid: Cid = gov::cid(cid)?;
    if !no_discovery {
        match common.client()?.blob_peers(Some(&cid), None).await {
            Ok(found) => peers.extend(found),
            Err(err) => tracing::warn!(%err, "the node did not answer; fetching from --peer only"),
        }
    }
    let fetcher = agora_store::fetch::Fetcher::new(data.blobs()?);
    let mut bar = progress_bar("fetch");
    let report = fetcher.fetch(cid, &peers, &mut bar).await?;
    if common.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "cid": cid.to_string(),
                "path": report.path,
                "bytes": report.len,
                "present": report.present,
                "resumed_bytes": report.resumed_bytes,
                "from_peers": report.from_peers,
                "liars": report.liars,
                "failed": report.failed,
            }))?
        );
        return Ok(());
    }
    if report.present {
        println!(
            "{cid}: already present and intact at {}",
            report.path.display()
        );
        return Ok(());
    }
    println!(
        "{cid}: {} bytes verified into {}",
        report.len,
        report.path.display()
    );
    if report.resumed_bytes > 0 {
        println!(
            "  resumed {} bytes from an interrupted fetch",
            report.resumed_bytes
        );
    }
    for (peer, bytes) in &report.from_peers {
        println!("  {peer}: {bytes} bytes");
    }
    for liar in &report.liars {
        println!("  liar: {liar} sent bytes that do not match the CID");
    }
    for failed in &report.failed {
        println!("  dropped: {failed} failed repeatedly");
    }
    Ok(())
}
