//! Agora's node RPC: JSON wire types and an HTTP client for the ledger node's JSON-RPC.
//!
//! The node serves JSON-RPC 2.0 on `POST /`, a server-sent event stream of
//! finalized blocks on `GET /events`, Prometheus text on `GET /metrics` and a
//! liveness probe on `GET /health`. This crate holds the JSON shapes of all of
//! them ([`wire`]) and a [`Client`] for gateways, providers, verifiers and the
//! CLI. It depends on `agora-types` alone: no consensus, no storage.
//!
//! # Encoding
//!
//! Core types are not JSON; each wire type here is converted by hand. Amounts
//! are decimal strings of base units (they do not fit in a JSON number),
//! hashes and signed bytes are lowercase hex, accounts are bech32m `agora1…`.
//!
//! # Example
//!
//! ```no_run
//! # async fn example() -> Result<(), agora_rpc::Error> {
//! let client = agora_rpc::Client::new("http://127.0.0.1:26657")?;
//! let head = client.head().await?;
//! println!("height {}", head.height);
//! # Ok(())
//! # }
//! ```

pub mod client;
pub mod keyfile;
pub mod wire;

pub use client::{Client, Error};

/// JSON-RPC method names, shared by the server and the client.
pub mod method {
    /// Submit a transaction: [`crate::wire::SubmitTxParams`] → [`crate::wire::SubmitTxResult`].
    pub const SUBMIT_TX: &str = "submit_tx";
    /// A transaction's status: [`crate::wire::HashParams`] → [`crate::wire::TxStatus`].
    pub const TX_STATUS: &str = "tx_status";
    /// An account: [`crate::wire::AccountParams`] → [`crate::wire::Account`].
    pub const ACCOUNT: &str = "account";
    /// A provider: [`crate::wire::AccountParams`] → [`crate::wire::Provider`] or null.
    pub const PROVIDER: &str = "provider";
    /// All providers: no params → [`crate::wire::Provider`] list.
    pub const PROVIDERS: &str = "providers";
    /// A model: [`crate::wire::CidParams`] → [`crate::wire::Model`] or null.
    pub const MODEL: &str = "model";
    /// All models: no params → [`crate::wire::Model`] list.
    pub const MODELS: &str = "models";
    /// A proposal: [`crate::wire::ProposalParams`] → [`crate::wire::Proposal`] or null.
    pub const PROPOSAL: &str = "proposal";
    /// All proposals: no params → [`crate::wire::Proposal`] list.
    pub const PROPOSALS: &str = "proposals";
    /// A payment channel: [`crate::wire::ChannelParams`] → [`crate::wire::Channel`] or null.
    pub const CHANNEL: &str = "channel";
    /// Open payment channels, by id: [`crate::wire::ChannelsParams`] (or no params) →
    /// [`crate::wire::Channel`] list.
    pub const CHANNELS: &str = "channels";
    /// A provider's receipt commitment for an epoch: [`crate::wire::ReceiptCommitmentParams`]
    /// → [`crate::wire::ReceiptCommitment`] or null.
    pub const RECEIPT_COMMITMENT: &str = "receipt_commitment";
    /// A block: [`crate::wire::BlockParams`] → [`crate::wire::Block`] or null.
    pub const BLOCK: &str = "block";
    /// The chain head: no params → [`crate::wire::Head`].
    pub const HEAD: &str = "head";
    /// Ledger parameters: no params → [`crate::wire::Params`].
    pub const PARAMS: &str = "params";
    /// Supply counters: no params → [`crate::wire::Supply`].
    pub const SUPPLY: &str = "supply";
    /// The validator set: no params → [`crate::wire::Validator`] list.
    pub const VALIDATORS: &str = "validators";
    /// An inclusion proof: [`crate::wire::ProofParams`] → [`crate::wire::Proof`].
    pub const PROOF: &str = "proof";
    /// Registered verifiers: no params → [`crate::wire::Verifier`] list.
    pub const VERIFIERS: &str = "verifiers";
    /// A dispute: [`crate::wire::DisputeParams`] → [`crate::wire::Dispute`] or null.
    pub const DISPUTE: &str = "dispute";
    /// Disputes, by id: [`crate::wire::DisputesParams`] (or no params) →
    /// [`crate::wire::Dispute`] list.
    pub const DISPUTES: &str = "disputes";
    /// How an epoch's emission was split: [`crate::wire::EpochParams`] →
    /// [`crate::wire::EpochRewards`] or null (not settled yet).
    pub const EPOCH_REWARDS: &str = "epoch_rewards";
    /// One model's demand and quality over recent epochs: [`crate::wire::ModelStatsParams`] →
    /// [`crate::wire::ModelStats`] or null (no such model).
    pub const MODEL_STATS: &str = "model_stats";
    /// The safety policy governance adopted: no params → its CID (a string) or null.
    pub const SAFETY_POLICY: &str = "safety_policy";
}

/// JSON-RPC error codes used by the node.
pub mod code {
    /// The body is not JSON.
    pub const PARSE_ERROR: i64 = -32700;
    /// The body is not a JSON-RPC request.
    pub const INVALID_REQUEST: i64 = -32600;
    /// No such method.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// The params do not fit the method.
    pub const INVALID_PARAMS: i64 = -32602;
    /// The node failed internally.
    pub const INTERNAL_ERROR: i64 = -32603;
    /// A submitted transaction was rejected; the message says why.
    pub const TX_REJECTED: i64 = 1;
    /// The mempool is full; retry later.
    pub const MEMPOOL_FULL: i64 = 2;
    /// The requested item does not exist.
    pub const NOT_FOUND: i64 = 3;
}
