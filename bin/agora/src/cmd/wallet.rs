//! `agora wallet`: keys, balances and transactions from the command line.

use std::{path::PathBuf, time::Duration};

use agora_rpc::{wire, Client};
use agora_types::{amount, AccountId, Hash, Keypair, TxBody};
use anyhow::Context as _;

/// How long a command waits for its transaction to be committed.
pub(crate) const COMMIT_TIMEOUT: Duration = Duration::from_secs(60);

/// Flags shared by wallet and governance commands.
#[derive(clap::Args, Debug)]
pub(crate) struct Common {
    /// Data directory holding the key file (default `~/.agora`).
    #[arg(long, env = "AGORA_DATA_DIR", global = true)]
    pub(crate) data_dir: Option<PathBuf>,
    /// Key file; defaults to `<data-dir>/wallet.key`.
    #[arg(long, env = "AGORA_KEY", global = true)]
    pub(crate) key: Option<PathBuf>,
    /// Node RPC URL.
    #[arg(
        long,
        env = "AGORA_NODE",
        default_value = "http://127.0.0.1:26657",
        global = true
    )]
    pub(crate) node: String,
    /// Fee in AGR (defaults to the chain's minimum fee).
    #[arg(long, global = true)]
    pub(crate) fee: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

/// `agora wallet`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Command,
}

/// `agora wallet` subcommands.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum Command {
    /// Create a new key file (mode 0600).
    New,
    /// Print the key file's address.
    Address,
    /// Show an account's balance (the key file's account by default).
    Balance {
        /// Account to show.
        address: Option<String>,
    },
    /// Send AGR.
    Transfer {
        /// Recipient account.
        to: String,
        /// Amount in AGR, e.g. `1.5`.
        amount: String,
    },
    /// Bond AGR as stake.
    Bond {
        /// Amount in AGR.
        amount: String,
    },
    /// Start unbonding stake.
    Unbond {
        /// Amount in AGR.
        amount: String,
    },
    /// Offer this account as a consensus validator: with `min_stake` bonded, it joins the
    /// set at the next epoch boundary if its stake ranks among the top `max_validators`.
    RegisterValidator {
        /// `host:port` where the other validators reach this node's `--p2p-listen`.
        p2p: String,
    },
    /// Withdraw the validator offer; the account leaves the set at the next epoch boundary.
    DeregisterValidator,
    /// Open a payment channel to a payee.
    OpenChannel {
        /// Payee account.
        payee: String,
        /// Deposit in AGR.
        deposit: String,
        /// Blocks from now until the payer may close it.
        #[arg(long, default_value_t = 100_000)]
        expiry_blocks: u64,
    },
    /// Close a payment channel.
    CloseChannel {
        /// Channel id (hex).
        channel_id: String,
    },
}

impl Common {
    /// The key file path.
    pub(crate) fn key_path(&self) -> anyhow::Result<PathBuf> {
        match &self.key {
            Some(path) => Ok(path.clone()),
            None => {
                let data = super::DataDirArgs {
                    data_dir: self.data_dir.clone(),
                };
                Ok(data.path().join("wallet.key"))
            }
        }
    }

    /// The keypair in the key file.
    pub(crate) fn keypair(&self) -> anyhow::Result<Keypair> {
        let path = self.key_path()?;
        agora_rpc::keyfile::load(&path)
            .context("no usable key (create one with `agora wallet new`)")
    }

    /// A client for the node.
    pub(crate) fn client(&self) -> anyhow::Result<Client> {
        Ok(Client::new(&self.node)?)
    }

    /// The fee flag in base units.
    pub(crate) fn fee(&self) -> anyhow::Result<Option<u128>> {
        self.fee
            .as_deref()
            .map(|fee| amount::parse_agr(fee).with_context(|| format!("fee {fee}")))
            .transpose()
    }

    /// Signs, submits and waits for `body`, then prints the outcome.
    pub(crate) async fn send(&self, what: &str, body: TxBody) -> anyhow::Result<()> {
        let keypair = self.keypair()?;
        let status = self
            .client()?
            .sign_and_submit(&keypair, body, self.fee()?, COMMIT_TIMEOUT)
            .await?;
        print_status(self.json, what, &status)
    }
}

/// Prints a committed transaction's status; a failed body is an error.
pub(crate) fn print_status(json: bool, what: &str, status: &wire::TxStatus) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(status)?);
    } else if status.success == Some(true) {
        println!(
            "{what}: committed in block {} (tx {})",
            status.height.unwrap_or_default(),
            status.hash
        );
    }
    if status.success == Some(false) {
        anyhow::bail!(
            "{what} failed: {}",
            status.error.as_deref().unwrap_or("unknown error")
        );
    }
    Ok(())
}

fn agr(text: &str) -> anyhow::Result<u128> {
    amount::parse_agr(text).with_context(|| format!("amount {text} is not a decimal AGR amount"))
}

fn account(text: &str) -> anyhow::Result<AccountId> {
    text.parse()
        .map_err(|err| anyhow::anyhow!("account {text}: {err}"))
}

/// Runs a wallet command.
pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(execute(args.common, args.command))
}

async fn execute(common: Common, command: Command) -> anyhow::Result<()> {
    match command {
        Command::New => {
            let path = common.key_path()?;
            let mut secret = [0u8; 32];
            super::genesis::getrandom(&mut secret)?;
            let keypair = Keypair::from_bytes(&secret);
            agora_rpc::keyfile::save(&path, &keypair)?;
            if common.json {
                let out = serde_json::json!({
                    "address": keypair.account_id().to_string(),
                    "key": path.display().to_string(),
                });
                println!("{out}");
            } else {
                println!("{}", keypair.account_id());
                eprintln!("key written to {}", path.display());
            }
            Ok(())
        }
        Command::Address => {
            let keypair = common.keypair()?;
            if common.json {
                println!(
                    "{}",
                    serde_json::json!({"address": keypair.account_id().to_string()})
                );
            } else {
                println!("{}", keypair.account_id());
            }
            Ok(())
        }
        Command::Balance { address } => {
            let id = match address {
                Some(text) => account(&text)?,
                None => common.keypair()?.account_id(),
            };
            let info = common.client()?.account(&id).await?;
            if common.json {
                println!("{}", serde_json::to_string_pretty(&info)?);
            } else {
                let parse = |text: &str| text.parse::<u128>().unwrap_or_default();
                println!("account    {}", info.address);
                println!("balance    {}", amount::format_agr(parse(&info.balance)));
                println!("bonded     {}", amount::format_agr(parse(&info.bonded)));
                println!("unbonding  {}", amount::format_agr(parse(&info.unbonding)));
                println!("nonce      {}", info.nonce);
            }
            Ok(())
        }
        Command::Transfer { to, amount } => {
            let body = TxBody::Transfer {
                to: account(&to)?,
                amount: agr(&amount)?,
            };
            common.send("transfer", body).await
        }
        Command::Bond { amount } => {
            common
                .send(
                    "bond",
                    TxBody::Bond {
                        amount: agr(&amount)?,
                    },
                )
                .await
        }
        Command::Unbond { amount } => {
            common
                .send(
                    "unbond",
                    TxBody::Unbond {
                        amount: agr(&amount)?,
                    },
                )
                .await
        }
        Command::RegisterValidator { p2p } => {
            let p2p = p2p
                .as_str()
                .try_into()
                .map_err(|err| anyhow::anyhow!("p2p address {p2p}: {err}"))?;
            common
                .send("register-validator", TxBody::RegisterValidator { p2p })
                .await
        }
        Command::DeregisterValidator => {
            common
                .send("deregister-validator", TxBody::DeregisterValidator)
                .await
        }
        Command::OpenChannel {
            payee,
            deposit,
            expiry_blocks,
        } => {
            let head = common.client()?.head().await?;
            let body = TxBody::OpenChannel {
                payee: account(&payee)?,
                deposit: agr(&deposit)?,
                expiry_height: head.height.saturating_add(expiry_blocks),
            };
            common.send("open-channel", body).await
        }
        Command::CloseChannel { channel_id } => {
            let channel_id = Hash::from_hex(&channel_id)
                .with_context(|| format!("channel id {channel_id} is not 64 hex characters"))?;
            common
                .send("close-channel", TxBody::CloseChannel { channel_id })
                .await
        }
    }
}
