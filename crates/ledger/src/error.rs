//! The ledger's errors: [`Error`] stops a block, [`TxError`] fails one transaction.

use agora_types::{Amount, Cid, Hash};

use crate::storage::StorageError;

/// Why a block or genesis could not be applied, or a query could not be answered.
///
/// Apart from [`Error::Storage`] and [`Error::Corrupt`], an error means nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The storage backend failed; the handle must not be used further.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A stored record does not decode: the state is corrupt.
    #[error("corrupt record under key {key}")]
    Corrupt {
        /// The key, hex-encoded.
        key: String,
    },
    /// Genesis has not been applied to this storage.
    #[error("ledger is not initialised")]
    NotInitialized,
    /// Genesis was already applied to this storage.
    #[error("ledger is already initialised")]
    AlreadyInitialized,
    /// The genesis is inconsistent.
    #[error("invalid genesis: {0}")]
    InvalidGenesis(String),
    /// The block's height is not the next one.
    #[error("block height {got}, expected {expected}")]
    Height {
        /// The next height.
        expected: u64,
        /// The block's height.
        got: u64,
    },
    /// The block's parent is not the last applied block.
    #[error("block parent {got}, expected {expected}")]
    Parent {
        /// The last applied block's hash (or the genesis hash).
        expected: Hash,
        /// The block's parent.
        got: Hash,
    },
    /// The block's timestamp is earlier than its parent's.
    #[error("block timestamp {got} is earlier than the parent's {parent}")]
    Timestamp {
        /// The parent's timestamp.
        parent: u64,
        /// The block's timestamp.
        got: u64,
    },
    /// The header's state root is not the current state root.
    #[error("block state root {got}, expected {expected}")]
    StateRoot {
        /// The current state root.
        expected: Hash,
        /// The header's.
        got: Hash,
    },
    /// The header's tx root does not match the block's transactions.
    #[error("block tx root {got}, expected {expected}")]
    TxRoot {
        /// The root of the block's transactions.
        expected: Hash,
        /// The header's.
        got: Hash,
    },
    /// The block has more transactions than `max_block_txs`.
    #[error("block has {got} transactions, at most {max} allowed")]
    TooManyTxs {
        /// The bound.
        max: u64,
        /// The count.
        got: u64,
    },
    /// A supply counter disagrees with the records, or supply is not conserved.
    #[error("supply audit failed: {0}")]
    SupplyMismatch(String),
}

/// Why a transaction failed.
///
/// Codes below 10 mean the transaction was *rejected*: it changed nothing and paid no fee
/// (it was not properly authorised or cannot pay).
/// Every other code means it *failed*: it paid its fee, advanced its nonce and changed nothing
/// else.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// The signature does not verify for this chain, or the signer is not a valid key.
    #[error("bad signature")]
    BadSignature,
    /// The nonce is not the signer's next nonce.
    #[error("bad nonce {got}, expected {expected}")]
    BadNonce {
        /// The signer's next nonce.
        expected: u64,
        /// The transaction's.
        got: u64,
    },
    /// The fee is below `min_fee`.
    #[error("fee {got} is below the minimum {min}")]
    FeeTooLow {
        /// `min_fee`.
        min: Amount,
        /// The transaction's fee.
        got: Amount,
    },
    /// The signer's balance cannot cover the fee.
    #[error("balance {balance} cannot pay fee {fee}")]
    CannotPayFee {
        /// The signer's balance.
        balance: Amount,
        /// The fee.
        fee: Amount,
    },
    /// The encoded transaction is larger than `MAX_TX_BYTES`.
    #[error("transaction of {len} bytes exceeds {max} bytes")]
    TooLarge {
        /// Encoded length.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// The ledger has no genesis yet, or its state could not be read (mempool checks only).
    #[error("ledger is not initialised")]
    NotInitialized,
    /// The balance is too small.
    #[error("insufficient funds: need {need}, have {have}")]
    InsufficientFunds {
        /// Amount needed.
        need: Amount,
        /// Amount available.
        have: Amount,
    },
    /// An amount computation overflowed.
    #[error("amount overflow")]
    Overflow,
    /// The amount must be more than zero.
    #[error("amount must be more than zero")]
    ZeroAmount,
    /// The bonded stake is too small.
    #[error("insufficient stake: need {need}, have {have}")]
    InsufficientStake {
        /// Stake needed.
        need: Amount,
        /// Stake bonded.
        have: Amount,
    },
    /// No unbonding entry has matured.
    #[error("nothing to withdraw")]
    NothingToWithdraw,
    /// The account has too many unbonding entries.
    #[error("too many unbonding entries")]
    TooManyUnbonding,
    /// The account is jailed until the given height.
    #[error("account is jailed until height {until}")]
    Jailed {
        /// First height at which the account is free.
        until: u64,
    },
    /// The account is already registered in that role.
    #[error("already registered")]
    AlreadyRegistered,
    /// The account is not registered in that role.
    #[error("not registered")]
    NotRegistered,
    /// The model is not active in the registry.
    #[error("model {cid} is not active")]
    ModelNotActive {
        /// The model.
        cid: Cid,
    },
    /// The provider record is malformed.
    #[error("invalid provider info: {0}")]
    InvalidProviderInfo(&'static str),
    /// No channel has this id.
    #[error("channel {0} not found")]
    ChannelNotFound(Hash),
    /// Only the channel's payer may do this.
    #[error("signer is not the channel's payer")]
    NotChannelPayer,
    /// Only the channel's payee may do this.
    #[error("signer is not the channel's payee")]
    NotChannelPayee,
    /// The channel has not expired yet.
    #[error("channel expires at height {expiry_height}")]
    ChannelNotExpired {
        /// The channel's expiry height.
        expiry_height: u64,
    },
    /// The expiry height is not in the future or moves backwards.
    #[error("invalid expiry height {0}")]
    InvalidExpiry(u64),
    /// A channel to oneself.
    #[error("payer and payee are the same account")]
    SelfChannel,
    /// The voucher was signed for another chain.
    #[error("voucher is for another chain")]
    VoucherWrongChain,
    /// The voucher's payer or payee does not match the channel.
    #[error("voucher parties do not match the channel")]
    VoucherWrongParty,
    /// The voucher's signature does not verify.
    #[error("voucher signature is invalid")]
    VoucherBadSignature,
    /// The claimed cumulative amount is not above what was already redeemed.
    #[error("stale voucher: cumulative {cumulative}, already redeemed {redeemed}")]
    StaleVoucher {
        /// Already redeemed.
        redeemed: Amount,
        /// The claimed cumulative amount.
        cumulative: Amount,
    },
    /// The claimed cumulative amount exceeds the channel's deposit.
    #[error("voucher cumulative {cumulative} exceeds deposit {deposit}")]
    VoucherExceedsDeposit {
        /// The channel's deposit.
        deposit: Amount,
        /// The claimed cumulative amount.
        cumulative: Amount,
    },
    /// The claimed cumulative amount exceeds what the voucher authorizes.
    #[error("claim {claim} exceeds the voucher's cumulative {cumulative}")]
    ClaimExceedsVoucher {
        /// The claimed cumulative amount.
        claim: Amount,
        /// The voucher's cumulative amount.
        cumulative: Amount,
    },
    /// Receipts for an epoch that has not started.
    #[error("epoch {epoch} has not started (current {current})")]
    EpochInFuture {
        /// The transaction's epoch.
        epoch: u64,
        /// The current epoch.
        current: u64,
    },
    /// Receipts for this epoch were already committed.
    #[error("receipts for epoch {0} already committed")]
    AlreadyCommitted(u64),
    /// A receipt commitment's totals by model are inconsistent.
    #[error("receipt totals by model: {0}")]
    BadModelTotals(String),
    /// The proposal deposit is below `proposal_deposit`.
    #[error("deposit {got} is below the minimum {min}")]
    DepositTooLow {
        /// `proposal_deposit`.
        min: Amount,
        /// The transaction's deposit.
        got: Amount,
    },
    /// No proposal has this id.
    #[error("proposal {0} not found")]
    ProposalNotFound(u64),
    /// The proposal's voting period is over.
    #[error("voting on proposal {0} is closed")]
    VotingClosed(u64),
    /// Only accounts with bonded stake may vote.
    #[error("no bonded stake to vote with")]
    NoVotingPower,
    /// The proposal cannot be executed as written.
    #[error("invalid proposal: {0}")]
    InvalidProposal(String),
    /// The endpoint is not an http(s) URL.
    #[error("endpoint must be an http(s) URL")]
    InvalidEndpoint,
    /// Only a registered verifier may do this.
    #[error("signer is not a registered verifier")]
    NotVerifier,
    /// A validator's p2p address is not `host:port`.
    #[error("p2p address must be host:port")]
    InvalidP2pAddress,
    /// The challenge bond is below `challenge_bond`.
    #[error("bond {got} is below the minimum {min}")]
    BondTooLow {
        /// `challenge_bond`.
        min: Amount,
        /// The transaction's bond.
        got: Amount,
    },
    /// The challenged receipt was signed for another chain, so this ledger cannot know it.
    #[error("unknown receipt: it is for chain {0}, not this one")]
    UnknownReceipt(String),
    /// The challenged receipt's signature does not verify for its provider.
    #[error("receipt signature does not verify for its provider")]
    BadReceiptSignature,
    /// The challenged receipt names an account that is not a registered provider.
    #[error("receipt provider is not a registered provider")]
    UnknownProvider,
    /// A provider cannot challenge its own receipt.
    #[error("a provider cannot challenge its own receipt")]
    SelfChallenge,
    /// This receipt was already challenged.
    #[error("receipt {0} was already challenged")]
    AlreadyChallenged(Hash),
    /// No active verifier besides the challenger and the provider can sit on the committee.
    #[error("no eligible verifier for the dispute committee")]
    NoCommittee,
    /// No dispute has this id.
    #[error("dispute {0} not found")]
    DisputeNotFound(Hash),
    /// The dispute is settled or past its deadline.
    #[error("dispute {id} is closed (votes counted until height {deadline_height})")]
    DisputeClosed {
        /// The dispute.
        id: Hash,
        /// Its last voting height.
        deadline_height: u64,
    },
    /// Only members of the dispute's committee may vote.
    #[error("signer is not on the committee of dispute {0}")]
    NotCommitteeMember(Hash),
    /// This member already voted on the dispute.
    #[error("already voted on dispute {0}")]
    AlreadyVoted(Hash),
    /// Scores for an epoch may only be committed during that epoch.
    #[error(
        "scores for epoch {epoch} can only be committed during epoch {epoch} (current {current})"
    )]
    CommitWindow {
        /// The transaction's epoch.
        epoch: u64,
        /// The current epoch.
        current: u64,
    },
    /// The reveal window (the epoch after) has not opened yet.
    #[error(
        "reveal for epoch {epoch} too early: reveals are accepted in heights {opens}..={closes}"
    )]
    RevealTooEarly {
        /// The transaction's epoch.
        epoch: u64,
        /// First height of the window.
        opens: u64,
        /// Last height of the window.
        closes: u64,
    },
    /// The reveal window (the epoch after) has closed.
    #[error(
        "reveal for epoch {epoch} too late: reveals were accepted in heights {opens}..={closes}"
    )]
    RevealTooLate {
        /// The transaction's epoch.
        epoch: u64,
        /// First height of the window.
        opens: u64,
        /// Last height of the window.
        closes: u64,
    },
    /// The signer committed no scores for the epoch.
    #[error("no score commitment for epoch {0}")]
    NoCommitment(u64),
    /// The signer already revealed its scores for the epoch.
    #[error("scores for epoch {0} already revealed")]
    AlreadyRevealed(u64),
    /// The revealed scores and salt do not hash to the commitment.
    #[error("revealed scores do not match the commitment for epoch {0}")]
    CommitmentMismatch(u64),
    /// The revealed scores are malformed.
    #[error("invalid scores: {0}")]
    InvalidScores(&'static str),
    /// The transaction kind is defined but not yet active on this chain.
    #[error("{0} is not yet active")]
    NotYetActive(&'static str),
}

impl TxError {
    /// A stable numeric code for clients: `0` is reserved for success.
    pub fn code(&self) -> u16 {
        match self {
            TxError::BadSignature => 1,
            TxError::BadNonce { .. } => 2,
            TxError::FeeTooLow { .. } => 3,
            TxError::CannotPayFee { .. } => 4,
            TxError::TooLarge { .. } => 5,
            TxError::NotInitialized => 6,
            TxError::InsufficientFunds { .. } => 10,
            TxError::Overflow => 11,
            TxError::ZeroAmount => 12,
            TxError::InsufficientStake { .. } => 13,
            TxError::NothingToWithdraw => 14,
            TxError::TooManyUnbonding => 15,
            TxError::Jailed { .. } => 16,
            TxError::AlreadyRegistered => 20,
            TxError::NotRegistered => 21,
            TxError::ModelNotActive { .. } => 22,
            TxError::InvalidProviderInfo(_) => 23,
            TxError::ChannelNotFound(_) => 30,
            TxError::NotChannelPayer => 31,
            TxError::NotChannelPayee => 32,
            TxError::ChannelNotExpired { .. } => 33,
            TxError::InvalidExpiry(_) => 34,
            TxError::SelfChannel => 35,
            TxError::VoucherWrongChain => 36,
            TxError::VoucherWrongParty => 37,
            TxError::VoucherBadSignature => 38,
            TxError::StaleVoucher { .. } => 39,
            TxError::VoucherExceedsDeposit { .. } => 40,
            TxError::ClaimExceedsVoucher { .. } => 41,
            TxError::EpochInFuture { .. } => 50,
            TxError::AlreadyCommitted(_) => 51,
            TxError::BadModelTotals(_) => 52,
            TxError::DepositTooLow { .. } => 60,
            TxError::ProposalNotFound(_) => 61,
            TxError::VotingClosed(_) => 62,
            TxError::NoVotingPower => 63,
            TxError::InvalidProposal(_) => 64,
            TxError::InvalidEndpoint => 24,
            TxError::NotVerifier => 25,
            TxError::InvalidP2pAddress => 26,
            TxError::BondTooLow { .. } => 70,
            TxError::UnknownReceipt(_) => 71,
            TxError::BadReceiptSignature => 72,
            TxError::UnknownProvider => 73,
            TxError::SelfChallenge => 74,
            TxError::AlreadyChallenged(_) => 75,
            TxError::NoCommittee => 76,
            TxError::DisputeNotFound(_) => 77,
            TxError::DisputeClosed { .. } => 78,
            TxError::NotCommitteeMember(_) => 79,
            TxError::AlreadyVoted(_) => 80,
            TxError::CommitWindow { .. } => 81,
            TxError::RevealTooEarly { .. } => 82,
            TxError::RevealTooLate { .. } => 83,
            TxError::NoCommitment(_) => 84,
            TxError::AlreadyRevealed(_) => 85,
            TxError::CommitmentMismatch(_) => 86,
            TxError::InvalidScores(_) => 87,
            TxError::NotYetActive(_) => 90,
        }
    }

    /// Whether the transaction was rejected outright (no fee, no nonce change).
    pub fn is_rejection(&self) -> bool {
        self.code() < 10
    }
}

impl From<agora_types::amount::Error> for TxError {
    fn from(_: agora_types::amount::Error) -> Self {
        TxError::Overflow
    }
}

/// Internal failure of a step: either the transaction fails or the whole block stops.
#[derive(Debug)]
pub(crate) enum Fail {
    /// The transaction fails; the block goes on.
    Tx(TxError),
    /// Storage or state is broken; stop.
    Fatal(Error),
}

impl From<TxError> for Fail {
    fn from(err: TxError) -> Self {
        Fail::Tx(err)
    }
}

impl From<Error> for Fail {
    fn from(err: Error) -> Self {
        Fail::Fatal(err)
    }
}

impl From<StorageError> for Fail {
    fn from(err: StorageError) -> Self {
        Fail::Fatal(Error::Storage(err))
    }
}

impl From<agora_types::amount::Error> for Fail {
    fn from(_: agora_types::amount::Error) -> Self {
        Fail::Tx(TxError::Overflow)
    }
}
