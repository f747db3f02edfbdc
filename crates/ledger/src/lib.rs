//! Agora's deterministic ledger state machine: pure functions of (state, block) over a storage trait.
//!
//! The ledger reads and writes only through [`Storage`].
//! It does no I/O and has no clocks, randomness, floats or hash-map iteration: time arrives
//! in the block header and every number is an integer.
//!
//! # Entry points
//!
//! - [`init_genesis`] writes the genesis state and returns the first state root.
//! - [`check_header`] checks a proposed block against the current state (run before voting).
//! - [`apply_block`] applies a finalized block and returns a [`BlockOutcome`].
//! - [`check_tx`] admits a transaction to a mempool.
//! - [`query`] answers RPC reads; [`proof`] gives the state root and inclusion proofs.
//!
//! # State root
//!
//! A header's `state_root` is the root **before** its block's transactions, i.e. the
//! [`BlockOutcome::state_root`] of its parent (or the root from [`init_genesis`] for block 1).
//! See [`proof`] for what the root covers and what computing it costs.
//!
//! # Storage and atomicity
//!
//! [`apply_block`] and [`init_genesis`] write through the [`Storage`] they are given.
//! A node should give them an [`Overlay`] over a read snapshot and persist
//! [`Overlay::into_changes`] in one transaction together with the block, so a crash never
//! leaves half a block applied.
//! The current state root is kept under a node-local key (see [`state::keys::STATE_ROOT`]),
//! so it is part of those changes.
//!
//! # Transactions
//!
//! Nonces are strictly sequential per account.
//! A transaction with a bad signature, wrong nonce, fee below `min_fee` or a fee its signer
//! cannot pay is rejected: it is listed in the outcome but changes nothing.
//! Any other failure burns the fee, advances the nonce and changes nothing else.
//!
//! # Example
//!
//! ```
//! use agora_ledger::{apply_block, init_genesis, MemStorage};
//! use agora_types::{tx_root, Block, ChainId, Genesis, Header, Keypair, Params, SignedTx, TxBody};
//!
//! let alice = Keypair::from_seed(b"alice");
//! let bob = Keypair::from_seed(b"bob").account_id();
//! let genesis = Genesis {
//!     chain_id: ChainId::new("agora-doc").unwrap(),
//!     timestamp_ms: 0,
//!     accounts: vec![(alice.account_id(), 1_000_000)],
//!     validators: vec![],
//!     params: Params::default(),
//!     models: vec![],
//!     providers: vec![],
//! };
//! let mut storage = MemStorage::new();
//! let root = init_genesis(&mut storage, &genesis).unwrap();
//! let tx = SignedTx::sign(&alice, &genesis.chain_id, 0, 1_000, TxBody::Transfer { to: bob, amount: 5 });
//! let txs = vec![tx];
//! let header = Header {
//!     height: 1,
//!     parent: genesis.hash(),
//!     timestamp_ms: 1,
//!     proposer: alice.account_id(),
//!     tx_root: tx_root(&txs),
//!     state_root: root,
//! };
//! let outcome = apply_block(&mut storage, &Block { header, txs }).unwrap();
//! assert!(outcome.txs[0].result.is_ok());
//! assert_eq!(agora_ledger::query::account(&storage, &bob).unwrap().balance, 5);
//! ```

mod bank;
pub mod channels;
mod disputes;
mod error;
mod events;
mod exec;
mod governance;
pub mod proof;
pub mod query;
mod receipts;
mod registry;
mod scores;
mod staking;
pub mod state;
pub mod storage;
mod validators;

pub use channels::channel_id;
pub use error::{Error, TxError};
pub use events::Event;
pub use exec::{apply_block, check_header, check_tx, init_genesis, BlockOutcome, TxOutcome};
pub use proof::StateProof;
pub use storage::{Entries, MemStorage, Overlay, Storage, StorageError};
