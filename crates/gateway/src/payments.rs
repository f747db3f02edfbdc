//! The gateway's money: channels it holds to providers, and its clients' credit.
//!
//! For each provider the gateway keeps one channel: `billed` (charges of the receipts it
//! received) and `reserved` (quotes of requests in flight). Each request's voucher promises
//! `billed + reserved`, so it covers everything running; the provider claims only the charges.
//! Clients hold credit under API keys; a request reserves its quote from the credit and is
//! debited its receipt's charge, so the client's credit falls by exactly what providers redeem.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use agora_rpc::Client;
use agora_types::{encoding, AccountId, Amount, ChainId, Hash, Keypair, TxBody, Voucher};
use serde::{Deserialize, Serialize};

/// How long a channel transaction may take to commit.
const TX_TIMEOUT: Duration = Duration::from_secs(30);
/// Blocks a new channel stays open before the gateway may reclaim it.
const CHANNEL_LIFETIME_BLOCKS: u64 = 1_000_000;

/// Why a payment step failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The ledger refused or could not be reached.
    #[error("ledger: {0}")]
    Ledger(String),
    /// The state file could not be written.
    #[error("state file: {0}")]
    Io(#[from] std::io::Error),
}

/// One channel to one provider.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct ChannelState {
    id: String,
    deposit: Amount,
    billed: Amount,
    #[serde(skip)]
    reserved: Amount,
}

/// A client's account at the gateway.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CreditAccount {
    /// Who the key belongs to (label or `agora1…` address).
    pub account: String,
    /// Credit left, in base units.
    pub credit: Amount,
    /// Reserved by requests in flight.
    #[serde(skip)]
    pub reserved: Amount,
}

/// What is persisted.
#[derive(Default, Serialize, Deserialize)]
struct State {
    /// API key → account.
    keys: HashMap<String, CreditAccount>,
    /// Provider account → channel.
    channels: HashMap<String, ChannelState>,
}

/// Tokens a prompt may have beyond its body's bytes (chat-template markup).
const TEMPLATE_TOKENS: u64 = 64;

/// The most a request whose body has `body_bytes` bytes may cost at a provider's prices: every
/// byte a prompt token, plus the chat template's, and `max_tokens` completion tokens. An
/// overflow quotes more than any credit or channel holds, so the request is refused.
pub fn quote(body_bytes: u64, max_tokens: u64, price_in: Amount, price_out: Amount) -> Amount {
    agora_types::amount::token_cost(
        body_bytes.saturating_add(TEMPLATE_TOKENS),
        max_tokens,
        price_in,
        price_out,
    )
    .unwrap_or(Amount::MAX)
}

/// The gateway's payer: its key, channels and clients' credit.
pub struct Wallet {
    keypair: Keypair,
    chain_id: ChainId,
    rpc: Client,
    deposit: Amount,
    state: Mutex<State>,
    path: PathBuf,
    /// One ledger transaction at a time (nonces), and one channel opening per provider.
    tx_lock: tokio::sync::Mutex<()>,
    /// Changed since the last save; [`Wallet::flush`] writes it off the request path.
    dirty: std::sync::atomic::AtomicBool,
    /// One writer of the state file at a time.
    save_lock: Mutex<()>,
}

/// Why a client may not spend.
#[derive(Debug, PartialEq, Eq)]
pub enum CreditError {
    /// The API key is not known (401).
    UnknownKey,
    /// Not enough credit for the quote (402).
    Exhausted {
        /// Credit available.
        available: Amount,
        /// Quote needed.
        needed: Amount,
    },
}

impl Wallet {
    /// Opens the wallet whose state lives at `path` (created when missing).
    pub async fn open(
        keypair: Keypair,
        rpc: Client,
        deposit: Amount,
        path: PathBuf,
    ) -> Result<Arc<Self>, Error> {
        let head = rpc.head().await.map_err(|e| Error::Ledger(e.to_string()))?;
        let chain_id = ChainId::new(&head.chain_id).map_err(|e| Error::Ledger(e.to_string()))?;
        let state = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(err) => return Err(err.into()),
        };
        Ok(Arc::new(Wallet {
            keypair,
            chain_id,
            rpc,
            deposit,
            state: Mutex::new(state),
            path,
            tx_lock: tokio::sync::Mutex::new(()),
            dirty: std::sync::atomic::AtomicBool::new(false),
            save_lock: Mutex::new(()),
        }))
    }

    /// The gateway's account (the payer of its channels).
    pub fn account(&self) -> AccountId {
        self.keypair.account_id()
    }

    /// The chain the wallet pays on.
    pub fn chain_id(&self) -> &ChainId {
        &self.chain_id
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds (or tops up) an API key's credit and saves.
    pub fn grant(&self, key: &str, account: &str, credit: Amount) -> Result<(), Error> {
        {
            let mut state = self.lock();
            let entry = state.keys.entry(key.to_owned()).or_insert(CreditAccount {
                account: account.to_owned(),
                credit: 0,
                reserved: 0,
            });
            entry.credit = entry.credit.saturating_add(credit);
        }
        self.save()
    }

    /// A key's account, if known.
    pub fn credit(&self, key: &str) -> Option<CreditAccount> {
        self.lock().keys.get(key).cloned()
    }

    /// Reserves `quote` from a key's credit.
    pub fn reserve_credit(&self, key: &str, quote: Amount) -> Result<(), CreditError> {
        let mut state = self.lock();
        let entry = state.keys.get_mut(key).ok_or(CreditError::UnknownKey)?;
        let available = entry.credit.saturating_sub(entry.reserved);
        if available < quote {
            return Err(CreditError::Exhausted {
                available,
                needed: quote,
            });
        }
        entry.reserved += quote;
        Ok(())
    }

    /// Ends a key's reservation, debiting `charge`.
    pub fn settle_credit(&self, key: &str, quote: Amount, charge: Amount) {
        let mut state = self.lock();
        if let Some(entry) = state.keys.get_mut(key) {
            entry.reserved = entry.reserved.saturating_sub(quote);
            entry.credit = entry.credit.saturating_sub(charge);
        }
        self.dirty.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Saves the state if it changed since the last save (the gateway calls this a few times
    /// a second and at shutdown, so requests never wait on the disk).
    pub fn flush(&self) {
        if self.dirty.swap(false, std::sync::atomic::Ordering::AcqRel) {
            if let Err(err) = self.save() {
                self.dirty.store(true, std::sync::atomic::Ordering::Release);
                tracing::error!(target: "agora::gateway", %err, "cannot save the gateway state");
            }
        }
    }

    /// Writes the state atomically (temp file, then rename).
    fn save(&self) -> Result<(), Error> {
        let _writer = self.save_lock.lock().unwrap_or_else(|e| e.into_inner());
        let bytes = serde_json::to_vec_pretty(&*self.lock())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        if let Some(parent) = self.path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, &self.path)?;
        Ok(())
    }

    /// Reserves `quote` on the channel to `provider` (opening or topping it up on the ledger
    /// when needed) and signs the voucher that covers it; returns the voucher's hex.
    pub async fn voucher_for(&self, provider: &AccountId, quote: Amount) -> Result<String, Error> {
        let key = provider.to_string();
        let needs_funds = |state: &State| match state.channels.get(&key) {
            None => true,
            Some(c) => c.billed + c.reserved + quote > c.deposit,
        };
        if needs_funds(&self.lock()) {
            let _guard = self.tx_lock.lock().await;
            // Another request may have funded it while this one waited.
            if needs_funds(&self.lock()) {
                self.fund(provider, quote).await?;
            }
        }
        let (id, cumulative) = {
            let mut state = self.lock();
            let channel = state
                .channels
                .get_mut(&key)
                .ok_or_else(|| Error::Ledger("channel vanished".into()))?;
            channel.reserved += quote;
            (channel.id.clone(), channel.billed + channel.reserved)
        };
        let voucher = Voucher {
            chain_id: self.chain_id.clone(),
            channel_id: Hash::from_hex(&id)
                .ok_or_else(|| Error::Ledger("bad channel id".into()))?,
            payer: self.keypair.account_id(),
            payee: *provider,
            cumulative,
        }
        .sign(&self.keypair);
        Ok(hex::encode(encoding::encode(&voucher)))
    }

    /// Ends a request on `provider`'s channel: releases `quote`, books `charge`.
    pub fn settle_channel(&self, provider: &AccountId, quote: Amount, charge: Amount) {
        let mut state = self.lock();
        if let Some(c) = state.channels.get_mut(&provider.to_string()) {
            c.reserved = c.reserved.saturating_sub(quote);
            c.billed = c.billed.saturating_add(charge);
        }
        self.dirty.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Opens a channel to `provider`, or tops the existing one up, so that `quote` fits.
    async fn fund(&self, provider: &AccountId, quote: Amount) -> Result<(), Error> {
        let key = provider.to_string();
        let head = self
            .rpc
            .head()
            .await
            .map_err(|e| Error::Ledger(e.to_string()))?;
        let expiry_height = head.height + CHANNEL_LIFETIME_BLOCKS;
        let existing = self.lock().channels.get(&key).cloned();
        let amount = self.deposit.max(quote.saturating_mul(4));
        match existing {
            Some(channel) => {
                let id = Hash::from_hex(&channel.id)
                    .ok_or_else(|| Error::Ledger("bad channel id".into()))?;
                self.submit(TxBody::TopUpChannel {
                    channel_id: id,
                    amount,
                    expiry_height,
                })
                .await?;
                if let Some(c) = self.lock().channels.get_mut(&key) {
                    c.deposit = c.deposit.saturating_add(amount);
                }
                tracing::info!(target: "agora::gateway", %provider, %amount, "channel topped up");
            }
            None => {
                // A channel left from an earlier run is taken up again.
                let open = self
                    .rpc
                    .channels(Some(&self.account()), Some(provider))
                    .await
                    .map_err(|e| Error::Ledger(e.to_string()))?;
                if open.is_empty() {
                    self.submit(TxBody::OpenChannel {
                        payee: *provider,
                        deposit: amount,
                        expiry_height,
                    })
                    .await?;
                }
                let open = self
                    .rpc
                    .channels(Some(&self.account()), Some(provider))
                    .await
                    .map_err(|e| Error::Ledger(e.to_string()))?;
                let channel = open.into_iter().next().ok_or_else(|| {
                    Error::Ledger("the opened channel is not on the ledger".into())
                })?;
                let deposit: Amount = channel.deposit.parse().unwrap_or(0);
                let redeemed: Amount = channel.redeemed.parse().unwrap_or(0);
                self.lock().channels.insert(
                    key,
                    ChannelState {
                        id: channel.id.clone(),
                        deposit,
                        billed: redeemed,
                        reserved: 0,
                    },
                );
                tracing::info!(target: "agora::gateway", %provider, channel = %channel.id, %deposit, "channel open");
                if deposit < quote {
                    return Box::pin(self.fund(provider, quote)).await;
                }
            }
        }
        self.save()
    }

    async fn submit(&self, body: TxBody) -> Result<(), Error> {
        self.rpc
            .execute(&self.keypair, body, TX_TIMEOUT)
            .await
            .map_err(|e| Error::Ledger(e.to_string()))?;
        Ok(())
    }
}
