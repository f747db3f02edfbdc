//! Events emitted by transactions and by end-of-block processing.

use agora_types::{AccountId, Amount, Cid, Hash, Vote};

use crate::state::{DisputeOutcome, ProposalStatus};

/// Something that happened while applying a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A transfer.
    Transfer {
        /// Sender.
        from: AccountId,
        /// Recipient.
        to: AccountId,
        /// Amount.
        amount: Amount,
    },
    /// Stake bonded.
    Bonded {
        /// Account.
        account: AccountId,
        /// Amount.
        amount: Amount,
    },
    /// Unbonding started.
    Unbonding {
        /// Account.
        account: AccountId,
        /// Amount.
        amount: Amount,
        /// Height from which it can be withdrawn.
        release_height: u64,
    },
    /// Matured unbonding entries returned to the balance.
    Withdrawn {
        /// Account.
        account: AccountId,
        /// Amount.
        amount: Amount,
    },
    /// A provider registered.
    ProviderRegistered {
        /// Operator.
        operator: AccountId,
    },
    /// A provider updated its record.
    ProviderUpdated {
        /// Operator.
        operator: AccountId,
    },
    /// A provider deregistered.
    ProviderDeregistered {
        /// Operator.
        operator: AccountId,
    },
    /// A verifier registered.
    VerifierRegistered {
        /// Account.
        account: AccountId,
    },
    /// A validator registered or moved its address; it may join the set at the next boundary.
    ValidatorRegistered {
        /// Account.
        account: AccountId,
    },
    /// A validator withdrew its registration; it leaves the set at the next boundary.
    ValidatorDeregistered {
        /// Account.
        account: AccountId,
    },
    /// The first block of a new validator set: its consensus grows from `floor`.
    ValidatorSetStarted {
        /// The set's epoch.
        epoch: u64,
        /// The last block of the previous set.
        floor: Hash,
    },
    /// The validator set changed from the next block on: new members (and a new epoch), or
    /// the same members at new addresses (same epoch).
    ValidatorSetChanged {
        /// The set's epoch.
        epoch: u64,
        /// How many members it has.
        members: u64,
    },
    /// A channel opened.
    ChannelOpened {
        /// Channel id.
        channel_id: Hash,
        /// Payer.
        payer: AccountId,
        /// Payee.
        payee: AccountId,
        /// Deposit.
        deposit: Amount,
        /// Expiry height.
        expiry_height: u64,
    },
    /// A channel's deposit or expiry grew.
    ChannelToppedUp {
        /// Channel id.
        channel_id: Hash,
        /// New total deposit.
        deposit: Amount,
        /// New expiry height.
        expiry_height: u64,
    },
    /// A voucher was redeemed.
    ChannelRedeemed {
        /// Channel id.
        channel_id: Hash,
        /// Payee paid.
        payee: AccountId,
        /// Amount paid now.
        amount: Amount,
        /// The payee's claim: the channel's redeemed total from now on.
        cumulative: Amount,
    },
    /// A channel closed.
    ChannelClosed {
        /// Channel id.
        channel_id: Hash,
        /// Amount returned to the payer.
        refund: Amount,
    },
    /// A provider committed an epoch's receipts.
    ReceiptsCommitted {
        /// Provider.
        provider: AccountId,
        /// Epoch.
        epoch: u64,
        /// Merkle root.
        root: Hash,
    },
    /// A proposal was submitted.
    ProposalSubmitted {
        /// Proposal id.
        id: u64,
        /// Proposer.
        proposer: AccountId,
        /// Last height of voting.
        end_height: u64,
    },
    /// A vote was cast or changed.
    Voted {
        /// Proposal id.
        id: u64,
        /// Voter.
        voter: AccountId,
        /// Vote.
        vote: Vote,
    },
    /// Voting on a proposal ended.
    ProposalFinished {
        /// Proposal id.
        id: u64,
        /// Outcome.
        status: ProposalStatus,
    },
    /// A proposal's deposit went back to its proposer.
    DepositReturned {
        /// Proposal id.
        id: u64,
        /// Amount.
        amount: Amount,
    },
    /// A proposal's deposit was burned.
    DepositBurned {
        /// Proposal id.
        id: u64,
        /// Amount.
        amount: Amount,
    },
    /// A model became servable.
    ModelActivated {
        /// Model.
        cid: Cid,
    },
    /// A model stopped being servable.
    ModelRetired {
        /// Model.
        cid: Cid,
    },
    /// A parameter changed.
    ParamChanged {
        /// Name.
        name: String,
        /// New value.
        value: u128,
    },
    /// A safety policy was adopted.
    SafetyPolicySet {
        /// Policy document.
        cid: Cid,
    },
    /// A verifier changed its endpoint by registering again.
    VerifierUpdated {
        /// Account.
        account: AccountId,
    },
    /// A receipt was challenged and a committee drawn.
    DisputeOpened {
        /// Dispute id (the receipt id).
        id: Hash,
        /// The challenger.
        challenger: AccountId,
        /// The provider challenged.
        provider: AccountId,
        /// The committee, in draw order.
        committee: Vec<AccountId>,
        /// Last height at which votes count.
        deadline_height: u64,
    },
    /// A committee member voted.
    DisputeVoted {
        /// Dispute id.
        id: Hash,
        /// The member.
        voter: AccountId,
        /// Whether it found fraud.
        fraud: bool,
    },
    /// A dispute was settled at its deadline.
    DisputeResolved {
        /// Dispute id.
        id: Hash,
        /// What happened.
        outcome: DisputeOutcome,
    },
    /// A verifier committed to its scores for an epoch.
    ScoresCommitted {
        /// Verifier.
        verifier: AccountId,
        /// Epoch.
        epoch: u64,
    },
    /// A verifier revealed its scores for an epoch.
    ScoresRevealed {
        /// Verifier.
        verifier: AccountId,
        /// Epoch.
        epoch: u64,
    },
    /// An epoch's scores were combined and its emission minted.
    EpochRewarded {
        /// The epoch scored.
        epoch: u64,
        /// Minted to providers.
        providers: Amount,
        /// Minted to verifiers.
        verifiers: Amount,
    },
}
