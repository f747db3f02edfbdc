//! The `agora` command: glue that turns flags into each role's `Config` and runs it.
//!
//! No business logic lives here; every subcommand hands over to a library crate.

// A binary exports nothing: `pub` inside it only means "shared between its modules".
#![allow(unreachable_pub)]

mod cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Agora: a decentralized AI inference network.
#[derive(Parser)]
#[command(name = "agora", version, about)]
struct Cli {
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, global = true, env = "AGORA_LOG_JSON")]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a local network on this machine with the bundled model.
    Devnet(cmd::devnet::Args),
    /// Serve models over the OpenAI API as a provider.
    Provider(Box<cmd::provider::Args>),
    /// Serve the OpenAI API in front of the network's providers.
    Gateway(cmd::gateway::Args),
    /// Check providers' answers, challenge cheaters, vote on disputes and score providers.
    Verifier(cmd::verifier::Args),
    /// Check receipts.
    #[command(subcommand)]
    Receipt(cmd::receipt::Command),
    /// Governed models (list, show, propose, retire) and the local blob store (fetch, import).
    Model(cmd::model::Args),
    /// The governed safety policy: check, propose, show.
    Policy(cmd::policy::Args),
    /// Run a ledger node (a validator set of one by default).
    Node(cmd::node::Args),
    /// Create a dev genesis and its keys.
    #[command(subcommand)]
    Genesis(cmd::genesis::Command),
    /// Keys, balances and transactions.
    Wallet(cmd::wallet::Args),
    /// Governance proposals and votes.
    Gov(cmd::gov::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_json);
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Devnet(args) => cmd::devnet::run(args),
        Command::Provider(args) => cmd::provider::run(*args),
        Command::Gateway(args) => cmd::gateway::run(args),
        Command::Verifier(args) => cmd::verifier::run(args),
        Command::Receipt(command) => cmd::receipt::run(command),
        Command::Model(args) => cmd::model::run(args),
        Command::Policy(args) => cmd::policy::run(args),
        Command::Node(args) => cmd::node::run(args),
        Command::Genesis(command) => cmd::genesis::run(command),
        Command::Wallet(args) => cmd::wallet::run(args),
        Command::Gov(args) => cmd::gov::run(args),
    }
}

/// Installs the one tracing subscriber: human output by default, JSON with `--log-json`.
fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
