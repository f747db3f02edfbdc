//! Getting paid: vouchers checked before generating, receipts signed after, vouchers redeemed
//! and receipt roots committed on the ledger.
//!
//! # Vouchers
//! A voucher authorizes *up to* its cumulative amount on one channel. For each channel the
//! provider keeps what it is owed (the charges of the receipts it signed), what it has reserved
//! for requests still running (their quoted maximum), and the highest voucher seen. A request
//! is served only when that highest voucher covers owed + reserved + this request's quote, so a
//! payer can never have more work running than it has signed for, and a replayed voucher whose
//! value was spent is refused. Vouchers may arrive out of order (requests race), which is why
//! the highest one counts rather than the latest.
//!
//! # Refunds
//! The quote covers the request's maximum tokens; the receipt states the actual charge. The
//! provider redeems only what it is owed (`RedeemChannel { amount }` ≤ the voucher), so the
//! unused part of every quote stays with the payer.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use agora_rpc::Client;

use crate::journal::{Journal, Replay, SettledReceipt};
use agora_types::{
    amount, encoding, merkle, AccountId, Amount, ChainId, Cid, Hash, Keypair, MerkleProof,
    ModelTotals, ProviderInfo, Receipt, ReceiptTotals, SignedReceipt, SignedVoucher, TxBody,
};

/// How long a ledger transaction may take to commit.
const TX_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a voucher was refused (HTTP 402).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PaymentError {
    /// No voucher header.
    #[error("payment required: send a voucher in the x-agora-voucher header")]
    Missing,
    /// Not hex of a borsh `SignedVoucher`.
    #[error("the voucher does not decode: {0}")]
    Malformed(String),
    /// Signed for another chain.
    #[error("the voucher is for chain {0}, not this one")]
    WrongChain(String),
    /// Pays someone else.
    #[error("the voucher pays {0}, not this provider")]
    WrongPayee(AccountId),
    /// The signature does not verify.
    #[error("the voucher's signature does not verify")]
    BadSignature,
    /// The channel does not exist on the ledger.
    #[error("channel {0} is not open on the ledger")]
    UnknownChannel(Hash),
    /// The voucher's payer is not the channel's.
    #[error("the voucher's payer or payee does not match channel {0}")]
    WrongParty(Hash),
    /// More than the channel holds.
    #[error("the voucher promises {cumulative} but the channel holds {deposit}")]
    ExceedsDeposit {
        /// The channel's deposit.
        deposit: Amount,
        /// The voucher's cumulative amount.
        cumulative: Amount,
    },
    /// Not enough to cover this request on top of what is owed and reserved.
    #[error("the voucher covers {offered} but {needed} is needed (owed and running requests plus this quote)")]
    Insufficient {
        /// Cumulative amount needed.
        needed: Amount,
        /// Highest cumulative amount signed.
        offered: Amount,
    },
    /// The ledger could not be asked.
    #[error("cannot check the channel on the ledger: {0}")]
    Ledger(String),
}

/// How this provider appears on the ledger.
#[derive(Clone, Debug)]
pub struct LedgerConfig {
    /// JSON-RPC URL of a ledger node.
    pub rpc_url: String,
    /// The provider's key: its account, and the key that signs receipts.
    pub keypair: Keypair,
    /// The public base URL clients and gateways reach this provider at.
    pub endpoint: String,
    /// Region label.
    pub region: String,
    /// Hardware description.
    pub hardware: String,
    /// Stake to keep bonded (at least the ledger's `min_stake` is bonded either way).
    pub stake: Amount,
    /// How often vouchers are redeemed and the registration checked.
    pub settle_interval: Duration,
    /// Folder for the payment journal ([`crate::journal`]), one file per chain and account;
    /// `None` keeps the books in memory only.
    pub journal_dir: Option<std::path::PathBuf>,
}

/// One channel as the provider sees it.
#[derive(Debug)]
struct Book {
    payer: AccountId,
    deposit: Amount,
    /// Already redeemed on the ledger.
    redeemed: Amount,
    /// Charges of the receipts signed (never below `redeemed`).
    owed: Amount,
    /// Quotes of requests still running.
    reserved: Amount,
    /// The highest voucher seen.
    best: Option<SignedVoucher>,
}

impl Book {
    fn best_amount(&self) -> Amount {
        self.best.as_ref().map_or(0, |v| v.voucher.cumulative)
    }
}

/// Receipts of one epoch, in signing order.
#[derive(Default)]
struct Epoch {
    ids: Vec<Hash>,
    totals: ReceiptTotals,
    by_model: BTreeMap<Cid, ReceiptTotals>,
    committed: Option<Hash>,
}

impl Epoch {
    /// Books one receipt.
    fn add(&mut self, id: Hash, model: Cid, tokens: (u64, u64), charge: Amount) {
        let one = ReceiptTotals {
            requests: 1,
            tokens_in: tokens.0,
            tokens_out: tokens.1,
            amount: charge,
        };
        self.ids.push(id);
        for totals in [&mut self.totals, self.by_model.entry(model).or_default()] {
            *totals = totals.checked_add(&one).unwrap_or(*totals);
        }
    }

    /// The totals by model, as `CommitReceipts` carries them.
    fn by_model(&self) -> Vec<ModelTotals> {
        self.by_model
            .iter()
            .map(|(model, totals)| ModelTotals {
                model: *model,
                totals: *totals,
            })
            .collect()
    }
}

/// Where a receipt sits on the ledger: its epoch's committed root and an inclusion proof.
#[derive(Clone, Debug)]
pub struct ReceiptProof {
    /// Epoch the receipt was committed in.
    pub epoch: u64,
    /// The epoch's receipt root, as committed.
    pub root: Hash,
    /// Inclusion of `leaf_hash(receipt id)` under `root`.
    pub proof: MerkleProof,
}

/// The provider's ledger side: identity, channels, receipts.
pub struct Payments {
    config: LedgerConfig,
    chain_id: ChainId,
    account: AccountId,
    rpc: Client,
    epoch_blocks: u64,
    height: std::sync::atomic::AtomicU64,
    books: Mutex<HashMap<Hash, Book>>,
    epochs: Mutex<BTreeMap<u64, Epoch>>,
    /// One transaction at a time, so nonces never collide.
    tx_lock: tokio::sync::Mutex<()>,
    journal: Option<Journal>,
}

/// A request's reservation on a channel; released when dropped unless settled.
pub struct Hold {
    payments: Arc<Payments>,
    channel: Hash,
    payer: AccountId,
    quote: Amount,
    voucher_amount: Amount,
    done: bool,
}

/// What a served request signs into its receipt.
pub struct Served {
    /// BLAKE3 of the request body.
    pub request_hash: Hash,
    /// See [`agora_types::receipt::response_hash`].
    pub response_hash: Hash,
    /// The model.
    pub model: Cid,
    /// Tokens fed before the answer (prompt plus any continued output).
    pub prompt_tokens: u32,
    /// New tokens generated.
    pub completion_tokens: u32,
    /// Sampling rule and seed.
    pub sampling: agora_types::SamplingParams,
    /// Prices per million tokens.
    pub price_in: Amount,
    /// Prices per million tokens.
    pub price_out: Amount,
}

impl Payments {
    /// Connects to the ledger, reads the chain id and epoch length, and takes up the books and
    /// receipts of the journal, if there is one.
    pub async fn connect(config: LedgerConfig) -> Result<Arc<Self>, String> {
        let rpc = Client::new(&config.rpc_url).map_err(|e| e.to_string())?;
        let head = rpc.head().await.map_err(|e| format!("ledger node: {e}"))?;
        let chain_id = ChainId::new(&head.chain_id).map_err(|e| e.to_string())?;
        let params = rpc.params().await.map_err(|e| e.to_string())?;
        let epoch_blocks = agora_rpc::wire::param(&params, "epoch_blocks")
            .unwrap_or(100u64)
            .max(1);
        let (journal, replay) = match &config.journal_dir {
            Some(dir) => {
                let name = format!("{chain_id}-{}.jsonl", config.keypair.account_id());
                let (journal, replay) =
                    Journal::open(&dir.join(name)).map_err(|e| e.to_string())?;
                (Some(journal), replay)
            }
            None => (None, Replay::default()),
        };
        let payments = Arc::new(Payments {
            account: config.keypair.account_id(),
            config,
            chain_id,
            rpc,
            epoch_blocks,
            height: head.height.into(),
            books: Mutex::new(HashMap::new()),
            epochs: Mutex::new(BTreeMap::new()),
            tx_lock: tokio::sync::Mutex::new(()),
            journal,
        });
        payments.take_up(replay).await?;
        Ok(payments)
    }

    /// Restores the books and epochs a journal recorded: what each channel owes beyond what
    /// the ledger shows redeemed, and the receipts of epochs not yet committed.
    async fn take_up(&self, replay: Replay) -> Result<(), String> {
        {
            let mut epochs = self.lock_epochs();
            for receipt in &replay.receipts {
                let epoch = epochs.entry(receipt.epoch).or_default();
                epoch.add(receipt.id, receipt.model, receipt.tokens, receipt.charge);
            }
            for (number, root) in &replay.committed {
                if let Some(epoch) = epochs.get_mut(number) {
                    epoch.committed = Some(*root);
                }
            }
        }
        for (id, state) in replay.channels {
            match self.refresh_channel(&id).await {
                Ok(()) => {}
                // A channel closed since is settled on the ledger; nothing is left to claim.
                Err(PaymentError::UnknownChannel(_)) => continue,
                Err(err) => return Err(format!("channel {id}: {err}")),
            }
            if let Some(book) = self.lock_books().get_mut(&id) {
                book.owed = book.owed.max(state.owed);
                if state.voucher.voucher.cumulative > book.best_amount() {
                    book.best = Some(state.voucher);
                }
            }
        }
        Ok(())
    }

    /// The provider's account.
    pub fn account(&self) -> AccountId {
        self.account
    }

    /// The region label this provider registers.
    pub fn region(&self) -> &str {
        &self.config.region
    }

    /// The ledger client.
    pub fn rpc(&self) -> &Client {
        &self.rpc
    }

    /// Checks that every model is active on the ledger, bonds up to the configured stake and
    /// registers (or updates) the provider record to offer `offers`; while the provider is
    /// jailed it changes nothing, so a slash stays visible until the jail ends.
    pub async fn ensure_registered(
        &self,
        offers: &[agora_types::ModelOffer],
    ) -> Result<(), String> {
        for offer in offers {
            let model = self
                .rpc
                .model(&offer.cid)
                .await
                .map_err(|e| e.to_string())?;
            if model.as_ref().map(|m| m.status.as_str()) != Some("active") {
                return Err(format!(
                    "model {} is not active on the ledger; a provider serves only governed models",
                    offer.cid
                ));
            }
        }
        let current = self
            .rpc
            .provider(&self.account)
            .await
            .map_err(|e| e.to_string())?;
        if current
            .as_ref()
            .is_some_and(|record| record.status == "jailed")
        {
            // A jailed provider cannot serve: its slashed stake is topped up once it is free.
            tracing::debug!(target: "agora::provider", "jailed; registration left as it is");
            return Ok(());
        }
        let params = self.rpc.params().await.map_err(|e| e.to_string())?;
        let min_stake: Amount = agora_rpc::wire::param(&params, "min_stake").unwrap_or(0);
        let account = self
            .rpc
            .account(&self.account)
            .await
            .map_err(|e| e.to_string())?;
        let bonded: Amount = account.bonded.parse().unwrap_or(0);
        let target = self.config.stake.max(min_stake);
        if bonded < target {
            self.submit(TxBody::Bond {
                amount: target - bonded,
            })
            .await?;
            tracing::info!(target: "agora::provider", bonded = %amount::format_agr(target), "stake bonded");
        }
        let info = ProviderInfo {
            endpoint: self
                .config
                .endpoint
                .as_str()
                .try_into()
                .map_err(|_| "endpoint URL too long".to_owned())?,
            models: offers
                .to_vec()
                .try_into()
                .map_err(|_| "too many models".to_owned())?,
            region: self
                .config
                .region
                .as_str()
                .try_into()
                .map_err(|_| "region label too long".to_owned())?,
            hardware: self
                .config
                .hardware
                .as_str()
                .try_into()
                .map_err(|_| "hardware description too long".to_owned())?,
        };
        match current {
            None => {
                self.submit(TxBody::RegisterProvider(info)).await?;
                tracing::info!(target: "agora::provider", endpoint = %self.config.endpoint, "registered on the ledger");
            }
            Some(record) if !same_record(&record, &info) => {
                self.submit(TxBody::UpdateProvider(info)).await?;
                tracing::info!(target: "agora::provider", endpoint = %self.config.endpoint, "registration updated");
            }
            Some(_) => {}
        }
        Ok(())
    }

    /// Signs, submits and waits for one transaction; a failed body is an error.
    async fn submit(&self, body: TxBody) -> Result<(), String> {
        let _guard = self.tx_lock.lock().await;
        self.rpc
            .execute(&self.config.keypair, body, TX_TIMEOUT)
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Checks `header` (hex borsh voucher) and reserves `quote` on its channel.
    pub async fn accept(
        self: &Arc<Self>,
        header: Option<&str>,
        quote: Amount,
    ) -> Result<Hold, PaymentError> {
        let header = header.ok_or(PaymentError::Missing)?;
        let bytes =
            hex::decode(header.trim()).map_err(|e| PaymentError::Malformed(e.to_string()))?;
        let signed: SignedVoucher =
            encoding::decode(&bytes).map_err(|e| PaymentError::Malformed(e.to_string()))?;
        let voucher = &signed.voucher;
        if voucher.chain_id != self.chain_id {
            return Err(PaymentError::WrongChain(voucher.chain_id.as_str().into()));
        }
        if voucher.payee != self.account {
            return Err(PaymentError::WrongPayee(voucher.payee));
        }
        signed.verify().map_err(|_| PaymentError::BadSignature)?;
        let id = voucher.channel_id;
        let known = {
            let books = self.lock_books();
            books
                .get(&id)
                .map(|b| voucher.cumulative <= b.deposit)
                .unwrap_or(false)
        };
        if !known {
            self.refresh_channel(&id).await?;
        }
        let mut books = self.lock_books();
        let book = books.get_mut(&id).ok_or(PaymentError::UnknownChannel(id))?;
        if book.payer != voucher.payer {
            return Err(PaymentError::WrongParty(id));
        }
        if voucher.cumulative > book.deposit {
            return Err(PaymentError::ExceedsDeposit {
                deposit: book.deposit,
                cumulative: voucher.cumulative,
            });
        }
        let offered = book.best_amount().max(voucher.cumulative);
        let needed = book
            .owed
            .saturating_add(book.reserved)
            .saturating_add(quote);
        if offered < needed {
            return Err(PaymentError::Insufficient { needed, offered });
        }
        book.reserved = book.reserved.saturating_add(quote);
        if voucher.cumulative > book.best_amount() {
            book.best = Some(signed.clone());
        }
        Ok(Hold {
            payments: Arc::clone(self),
            channel: id,
            payer: voucher.payer,
            quote,
            voucher_amount: voucher.cumulative,
            done: false,
        })
    }

    /// Reads a channel from the ledger into the books.
    async fn refresh_channel(&self, id: &Hash) -> Result<(), PaymentError> {
        let channel = self
            .rpc
            .channel(id)
            .await
            .map_err(|e| PaymentError::Ledger(e.to_string()))?
            .ok_or(PaymentError::UnknownChannel(*id))?;
        let payer: AccountId = channel
            .payer
            .parse()
            .map_err(|_| PaymentError::Ledger("bad payer".into()))?;
        let payee: AccountId = channel
            .payee
            .parse()
            .map_err(|_| PaymentError::Ledger("bad payee".into()))?;
        if payee != self.account {
            return Err(PaymentError::WrongParty(*id));
        }
        let deposit: Amount = channel.deposit.parse().unwrap_or(0);
        let redeemed: Amount = channel.redeemed.parse().unwrap_or(0);
        let mut books = self.lock_books();
        let book = books.entry(*id).or_insert(Book {
            payer,
            deposit,
            redeemed,
            owed: redeemed,
            reserved: 0,
            best: None,
        });
        book.deposit = deposit;
        book.redeemed = book.redeemed.max(redeemed);
        book.owed = book.owed.max(redeemed);
        Ok(())
    }

    fn lock_books(&self) -> std::sync::MutexGuard<'_, HashMap<Hash, Book>> {
        self.books.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_epochs(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Epoch>> {
        self.epochs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn current_epoch(&self) -> u64 {
        self.height.load(std::sync::atomic::Ordering::Relaxed) / self.epoch_blocks
    }

    /// Redeems every channel where more is owed than was redeemed.
    pub async fn redeem_all(&self) {
        let due: Vec<(SignedVoucher, Amount)> = self
            .lock_books()
            .values()
            .filter(|b| b.owed > b.redeemed)
            .filter_map(|b| b.best.clone().map(|v| (v, b.owed)))
            .collect();
        for (voucher, amount) in due {
            let id = voucher.voucher.channel_id;
            match self.submit(TxBody::RedeemChannel { voucher, amount }).await {
                Ok(()) => {
                    if let Some(book) = self.lock_books().get_mut(&id) {
                        book.redeemed = book.redeemed.max(amount);
                    }
                    tracing::info!(target: "agora::provider", channel = %id, claimed = %amount, "voucher redeemed");
                }
                Err(err) => {
                    tracing::warn!(target: "agora::provider", channel = %id, %err, "redeem failed")
                }
            }
        }
    }

    /// Commits the receipt root of every finished epoch (and, with `all`, the current one).
    pub async fn commit_receipts(&self, all: bool) {
        let current = self.current_epoch();
        let due: Vec<(u64, Hash, ReceiptTotals, Vec<ModelTotals>)> = self
            .lock_epochs()
            .iter()
            .filter(|(epoch, e)| e.committed.is_none() && (all || **epoch < current))
            .map(|(epoch, e)| (*epoch, receipt_root(&e.ids), e.totals, e.by_model()))
            .collect();
        for (epoch, root, totals, by_model) in due {
            let Ok(by_model) = by_model.try_into() else {
                tracing::warn!(target: "agora::provider", epoch, "more models in one epoch than a commitment holds");
                continue;
            };
            match self
                .submit(TxBody::CommitReceipts {
                    epoch,
                    root,
                    totals,
                    by_model,
                })
                .await
            {
                Ok(()) => {
                    if let Some(e) = self.lock_epochs().get_mut(&epoch) {
                        e.committed = Some(root);
                    }
                    if let Some(journal) = &self.journal {
                        journal.committed(epoch, &root);
                    }
                    tracing::info!(target: "agora::provider", epoch, requests = totals.requests, "receipts committed");
                }
                Err(err) => {
                    tracing::warn!(target: "agora::provider", epoch, %err, "receipt commit failed")
                }
            }
        }
    }

    /// The committed root and inclusion proof of a receipt, once its epoch is committed.
    pub fn receipt_proof(&self, id: &Hash) -> Option<ReceiptProof> {
        let epochs = self.lock_epochs();
        epochs.iter().find_map(|(epoch, e)| {
            let root = e.committed?;
            let index = e.ids.iter().position(|r| r == id)?;
            let leaves: Vec<Hash> = e.ids.iter().map(|r| merkle::leaf_hash(&r.0)).collect();
            Some(ReceiptProof {
                epoch: *epoch,
                root,
                proof: merkle::prove(&leaves, index)?,
            })
        })
    }

    /// Background duties until `shutdown`: follow the chain head, keep the registration
    /// current, redeem vouchers and commit receipts; on shutdown, redeem and commit once more.
    pub async fn run(
        self: Arc<Self>,
        offers: impl Fn() -> Vec<agora_types::ModelOffer> + Send + 'static,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut ticker = tokio::time::interval(self.config.settle_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = shutdown.wait_for(|s| *s) => break,
            }
            if let Ok(head) = self.rpc.head().await {
                self.height
                    .store(head.height, std::sync::atomic::Ordering::Relaxed);
            }
            if let Err(err) = self.ensure_registered(&offers()).await {
                tracing::warn!(target: "agora::provider", %err, "registration check failed");
            }
            self.redeem_all().await;
            self.commit_receipts(false).await;
        }
        self.redeem_all().await;
        self.commit_receipts(true).await;
    }
}

impl Hold {
    /// Signs the receipt for a finished request, books its charge and releases the rest of
    /// the quote.
    pub fn settle(mut self, served: Served) -> SignedReceipt {
        self.done = true;
        let payments = &self.payments;
        let receipt = Receipt {
            chain_id: payments.chain_id.clone(),
            provider: payments.account,
            request_hash: served.request_hash,
            response_hash: served.response_hash,
            model: served.model,
            prompt_tokens: served.prompt_tokens,
            completion_tokens: served.completion_tokens,
            sampling: served.sampling,
            price_in: served.price_in,
            price_out: served.price_out,
            payer: self.payer,
            voucher_amount: self.voucher_amount,
            timestamp_ms: unix_ms(),
        };
        // The charge never exceeds the quote: both use the same prices, and the answer is at
        // most the quoted tokens. Capping keeps the books safe if that ever breaks.
        let charge = receipt.charge().unwrap_or(self.quote).min(self.quote);
        let books_after = {
            let mut books = payments.lock_books();
            books.get_mut(&self.channel).map(|book| {
                book.reserved = book.reserved.saturating_sub(self.quote);
                book.owed = book.owed.saturating_add(charge);
                (book.owed, book.best.clone())
            })
        };
        let signed = receipt.sign(&payments.config.keypair);
        let id = signed.receipt.id();
        let epoch = payments.current_epoch();
        let mut epochs = payments.lock_epochs();
        // An epoch already committed takes no more receipts; they go to the next one.
        let epoch = epochs
            .range(epoch..)
            .find(|(_, e)| e.committed.is_none())
            .map(|(n, _)| *n)
            .unwrap_or_else(|| {
                epochs
                    .keys()
                    .next_back()
                    .map_or(epoch, |last| (last + 1).max(epoch))
            });
        let tokens = (
            u64::from(signed.receipt.prompt_tokens),
            u64::from(signed.receipt.completion_tokens),
        );
        epochs
            .entry(epoch)
            .or_default()
            .add(id, signed.receipt.model, tokens, charge);
        // On disk before the receipt leaves, so a restart still claims and commits it; written
        // under the epochs lock, so the journal keeps each epoch's receipts in root order.
        if let (Some(journal), Some((owed, Some(voucher)))) = (&payments.journal, books_after) {
            let settled = SettledReceipt {
                id,
                epoch,
                tokens,
                charge,
                model: signed.receipt.model,
            };
            journal.settled(&settled, &self.channel, owed, &voucher);
        }
        drop(epochs);
        signed
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if !self.done {
            if let Some(book) = self.payments.lock_books().get_mut(&self.channel) {
                book.reserved = book.reserved.saturating_sub(self.quote);
            }
        }
    }
}

/// The Merkle root over an epoch's receipt ids (leaves `leaf_hash(id)`).
pub fn receipt_root(ids: &[Hash]) -> Hash {
    let leaves: Vec<Hash> = ids.iter().map(|id| merkle::leaf_hash(&id.0)).collect();
    merkle::root(&leaves)
}

fn same_record(record: &agora_rpc::wire::Provider, info: &ProviderInfo) -> bool {
    record.endpoint == info.endpoint.as_str()
        && record.models.len() == info.models.len()
        && record.models.iter().zip(info.models.iter()).all(|(a, b)| {
            a.cid == b.cid.to_string()
                && a.price_in == b.price_in.to_string()
                && a.price_out == b.price_out.to_string()
        })
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
