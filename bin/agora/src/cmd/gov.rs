//! `agora gov`: governance proposals and votes.

use agora_types::{governance::ProposalKind, BoundedString, Cid, ModelInfo, TxBody, Vote};
use anyhow::Context as _;

use super::wallet::Common;

/// `agora gov`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Command,
}

/// `agora gov` subcommands.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum Command {
    /// Submit a proposal with a deposit.
    Propose {
        /// Deposit in AGR (defaults to the chain's `proposal_deposit`).
        #[arg(long)]
        deposit: Option<String>,
        /// What the proposal does.
        #[command(subcommand)]
        kind: Proposal,
    },
    /// Vote on a proposal with your bonded stake.
    Vote {
        /// Proposal id.
        id: u64,
        /// `yes`, `no` or `abstain`.
        vote: String,
    },
    /// List proposals.
    List,
}

/// Kinds of proposal.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum Proposal {
    /// A text-only resolution.
    Text {
        /// The text.
        text: String,
    },
    /// Change a parameter.
    SetParam {
        /// Parameter name, e.g. `min_fee`.
        name: String,
        /// New value (base units for amounts).
        value: u128,
    },
    /// Make a model servable.
    AddModel {
        /// Model CID.
        #[arg(long)]
        cid: String,
        /// Name.
        #[arg(long)]
        name: String,
        /// Architecture.
        #[arg(long)]
        architecture: String,
        /// Quantization.
        #[arg(long)]
        quantization: String,
        /// Context length in tokens.
        #[arg(long)]
        context_length: u32,
        /// Licence.
        #[arg(long)]
        license: String,
        /// File size in bytes.
        #[arg(long)]
        size: u64,
    },
    /// Retire a model.
    RetireModel {
        /// Model CID.
        cid: String,
    },
}

fn label<const MAX: usize>(text: &str) -> anyhow::Result<BoundedString<MAX>> {
    BoundedString::new(text).map_err(|err| anyhow::anyhow!("{text}: {err}"))
}

pub(crate) fn cid(text: &str) -> anyhow::Result<Cid> {
    text.parse()
        .map_err(|err| anyhow::anyhow!("cid {text}: {err}"))
}

fn kind(proposal: Proposal) -> anyhow::Result<ProposalKind> {
    Ok(match proposal {
        Proposal::Text { text } => ProposalKind::Text {
            text: label(&text)?,
        },
        Proposal::SetParam { name, value } => ProposalKind::SetParam {
            name: label(&name)?,
            value,
        },
        Proposal::AddModel {
            cid: model_cid,
            name,
            architecture,
            quantization,
            context_length,
            license,
            size,
        } => ProposalKind::AddModel(ModelInfo {
            cid: cid(&model_cid)?,
            name: label(&name)?,
            architecture: label(&architecture)?,
            quantization: label(&quantization)?,
            context_length,
            license: label(&license)?,
            size,
        }),
        Proposal::RetireModel { cid: model_cid } => ProposalKind::RetireModel {
            cid: cid(&model_cid)?,
        },
    })
}

/// Submits a proposal with `deposit` AGR (default: the chain's `proposal_deposit`) and prints
/// its id.
pub(crate) async fn submit(
    common: &Common,
    kind: ProposalKind,
    deposit: Option<String>,
) -> anyhow::Result<()> {
    let client = common.client()?;
    let deposit = match deposit {
        Some(text) => {
            agora_types::amount::parse_agr(&text).with_context(|| format!("deposit {text}"))?
        }
        None => agora_rpc::wire::param(&client.params().await?, "proposal_deposit")
            .context("node did not report proposal_deposit")?,
    };
    let before = client.proposals().await?.iter().map(|p| p.id).max();
    common
        .send("propose", TxBody::SubmitProposal { kind, deposit })
        .await?;
    let proposer = common.keypair()?.account_id().to_string();
    let mine = client
        .proposals()
        .await?
        .into_iter()
        .filter(|p| p.proposer == proposer && Some(p.id) > before)
        .max_by_key(|p| p.id);
    if let Some(p) = mine {
        if common.json {
            println!("{}", serde_json::to_string_pretty(&p)?);
        } else {
            println!(
                "proposal #{} ({}), voting ends at block {}: agora gov vote {} yes",
                p.id, p.kind, p.voting_end_height, p.id
            );
        }
    }
    Ok(())
}

/// Runs a governance command.
pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(execute(args.common, args.command))
}

async fn execute(common: Common, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Propose {
            deposit,
            kind: proposal,
        } => submit(&common, kind(proposal)?, deposit).await,
        Command::Vote { id, vote } => {
            let vote = match vote.to_ascii_lowercase().as_str() {
                "yes" => Vote::Yes,
                "no" => Vote::No,
                "abstain" => Vote::Abstain,
                other => anyhow::bail!("vote must be yes, no or abstain, not {other}"),
            };
            common
                .send(
                    "vote",
                    TxBody::VoteProposal {
                        proposal_id: id,
                        vote,
                    },
                )
                .await
        }
        Command::List => {
            let proposals = common.client()?.proposals().await?;
            if common.json {
                println!("{}", serde_json::to_string_pretty(&proposals)?);
            } else if proposals.is_empty() {
                println!("no proposals");
            } else {
                for p in proposals {
                    println!(
                        "#{:<4} {:<9} ends {:<8} yes {} no {} abstain {}  {}",
                        p.id, p.status, p.voting_end_height, p.yes, p.no, p.abstain, p.kind
                    );
                }
            }
            Ok(())
        }
    }
}
