//! The mempool: signed transactions waiting for a block, ordered by account nonce.
//!
//! Transactions are kept per signer by nonce. A block takes, for each signer,
//! the run of consecutive nonces starting at the signer's next nonce, so a
//! block never holds a transaction that must fail for its nonce. The pool is
//! bounded in count; a full pool rejects new transactions until blocks drain it.

use std::collections::{BTreeMap, HashMap};

use agora_types::{AccountId, Hash, SignedTx};

/// Furthest ahead of an account's next nonce a transaction may be.
pub const MAX_NONCE_GAP: u64 = 1_024;

/// Why the mempool refused a transaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    /// The pool holds its maximum number of transactions.
    #[error("mempool full ({0} transactions)")]
    Full(usize),
    /// The nonce is already used on chain.
    #[error("nonce {got} too low, account's next nonce is {next}")]
    NonceTooLow {
        /// The transaction's nonce.
        got: u64,
        /// The account's next nonce.
        next: u64,
    },
    /// The nonce is too far ahead of the account's next nonce.
    #[error("nonce {got} too far ahead of account's next nonce {next}")]
    NonceTooHigh {
        /// The transaction's nonce.
        got: u64,
        /// The account's next nonce.
        next: u64,
    },
    /// A transaction with this signer and nonce is already waiting.
    #[error("a transaction with nonce {0} from this account is already pending")]
    Duplicate(u64),
}

/// The pool.
#[derive(Debug)]
pub struct Mempool {
    max_txs: usize,
    accounts: BTreeMap<AccountId, BTreeMap<u64, (Hash, SignedTx)>>,
    hashes: HashMap<Hash, (AccountId, u64)>,
}

impl Mempool {
    /// An empty pool holding at most `max_txs` transactions.
    pub fn new(max_txs: usize) -> Self {
        Mempool {
            max_txs,
            accounts: BTreeMap::new(),
            hashes: HashMap::new(),
        }
    }

    /// Number of waiting transactions.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether no transaction waits.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Whether a transaction with this hash waits.
    pub fn contains(&self, hash: &Hash) -> bool {
        self.hashes.contains_key(hash)
    }

    /// Adds an already checked transaction; `next_nonce` is its signer's next nonce on chain.
    pub fn insert(&mut self, tx: SignedTx, hash: Hash, next_nonce: u64) -> Result<(), Reject> {
        if tx.nonce < next_nonce {
            return Err(Reject::NonceTooLow {
                got: tx.nonce,
                next: next_nonce,
            });
        }
        if tx.nonce > next_nonce.saturating_add(MAX_NONCE_GAP) {
            return Err(Reject::NonceTooHigh {
                got: tx.nonce,
                next: next_nonce,
            });
        }
        if self.hashes.len() >= self.max_txs {
            return Err(Reject::Full(self.max_txs));
        }
        let queue = self.accounts.entry(tx.signer).or_default();
        if queue.contains_key(&tx.nonce) {
            return Err(Reject::Duplicate(tx.nonce));
        }
        self.hashes.insert(hash, (tx.signer, tx.nonce));
        queue.insert(tx.nonce, (hash, tx));
        Ok(())
    }

    /// Picks up to `max` transactions for a block.
    ///
    /// `next_nonce` gives each signer's next nonce in the state the block
    /// builds on, so transactions of unexecuted ancestors are skipped.
    pub fn select(
        &self,
        max: usize,
        mut next_nonce: impl FnMut(&AccountId) -> u64,
    ) -> Vec<SignedTx> {
        let mut out = Vec::new();
        for (account, queue) in &self.accounts {
            if out.len() >= max {
                break;
            }
            let first = next_nonce(account);
            let run = queue
                .range(first..)
                .zip(first..)
                .take_while(|((nonce, _), expected)| *nonce == expected);
            for (_, (_, tx)) in run.map(|(entry, _)| entry) {
                if out.len() >= max {
                    break;
                }
                out.push(tx.clone());
            }
        }
        out
    }

    /// Up to `max` waiting transactions, lowest nonces first per account (what a node
    /// passes on again, in case a peer missed it).
    pub fn waiting(&self, max: usize) -> Vec<SignedTx> {
        self.accounts
            .values()
            .flat_map(|queue| queue.values().take(max))
            .take(max)
            .map(|(_, tx)| tx.clone())
            .collect()
    }

    /// Drops `account`'s transactions below its new next nonce.
    pub fn prune(&mut self, account: &AccountId, next_nonce: u64) {
        let Some(queue) = self.accounts.get_mut(account) else {
            return;
        };
        let kept = queue.split_off(&next_nonce);
        for (hash, _) in queue.values() {
            self.hashes.remove(hash);
        }
        *queue = kept;
        if queue.is_empty() {
            self.accounts.remove(account);
        }
    }
}
