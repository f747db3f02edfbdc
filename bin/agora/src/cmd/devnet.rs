//! `agora devnet`: the whole network on this machine, with the bundled model.

use clap::Args as ClapArgs;

/// Devnet flags.
#[derive(ClapArgs, Clone, Debug)]
pub struct Args {
    #[command(flatten)]
    pub provider: super::provider::Args,
}

/// Runs the devnet until SIGINT or SIGTERM.
pub fn run(args: Args) -> anyhow::Result<()> {
    super::provider::run(args.provider)
}
