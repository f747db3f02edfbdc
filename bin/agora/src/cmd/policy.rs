//! `agora policy`: the governed safety policy (blocked patterns, per-model limits, regions).

use std::path::PathBuf;

use agora_types::governance::ProposalKind;
use anyhow::Context as _;

use super::{gov, wallet::Common, DataDirArgs};

/// `agora policy`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Command,
}

/// Policy commands.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum Command {
    /// Check a policy document and say what it would enforce.
    Check {
        /// The JSON document.
        file: PathBuf,
    },
    /// Propose adopting a policy document (checked first, then stored in the local blob store,
    /// where the node sharing this data folder serves it to gateways and providers).
    Propose {
        /// The JSON document.
        file: PathBuf,
        /// Deposit in AGR (default: the chain's `proposal_deposit`).
        #[arg(long)]
        deposit: Option<String>,
    },
    /// The policy in force on the ledger, fetched from the node.
    Show,
}

/// Runs a policy command.
pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let data = DataDirArgs {
        data_dir: args.common.data_dir.clone(),
    };
    match args.command {
        Command::Check { file } => {
            let policy = read(&file)?;
            let doc = policy.document();
            println!(
                "{}: valid; {} blocked pattern(s), limits for {} model(s)",
                file.display(),
                doc.blocked.len(),
                doc.models.len()
            );
            Ok(())
        }
        Command::Propose { file, deposit } => {
            read(&file)?;
            let store = data.blobs()?;
            let cid = store.import_file(&file, None, &mut |_, _| {})?;
            println!("{cid}: policy stored in {}", store.root().display());
            tokio::runtime::Runtime::new()?.block_on(gov::submit(
                &args.common,
                ProposalKind::SetSafetyPolicy { cid },
                deposit,
            ))
        }
        Command::Show => tokio::runtime::Runtime::new()?.block_on(async {
            let client = args.common.client()?;
            let Some(cid) = client.safety_policy().await? else {
                println!("no safety policy adopted");
                return Ok(());
            };
            let fetcher = agora_store::fetch::Fetcher::new(data.blobs()?);
            let policy = agora_policy::load(&fetcher, cid, &[client.url().to_owned()]).await?;
            println!("{cid}");
            println!("{}", serde_json::to_string_pretty(policy.document())?);
            Ok(())
        }),
    }
}

/// Reads and validates a policy document.
fn read(file: &PathBuf) -> anyhow::Result<agora_policy::Policy> {
    let bytes = std::fs::read(file).with_context(|| format!("{}", file.display()))?;
    agora_policy::Policy::parse(&bytes).with_context(|| format!("{}", file.display()))
}
