//! The key layout and the records stored under it.
//!
//! Each module owns a key prefix:
//!
//! | prefix | key suffix | record |
//! |---|---|---|
//! | `acct/` | account (32 bytes) | [`Account`] |
//! | `stake/` | account | [`Stake`] |
//! | `prov/` | operator | [`Provider`] |
//! | `verif/` | account | [`Verifier`] |
//! | `model/` | model digest (32 bytes) | [`Model`] |
//! | `chan/` | channel id (32 bytes) | [`Channel`] |
//! | `rcpt/` | provider, epoch (u64 big-endian) | [`ReceiptCommitment`] |
//! | `prop/` | proposal id (u64 big-endian) | [`Proposal`] |
//! | `vote/` | proposal id, voter | [`Vote`] |
//! | `pend/` | end height, proposal id (u64 big-endian each) | empty |
//! | `disp/` | dispute id (the receipt id, 32 bytes) | [`Dispute`] |
//! | `dend/` | deadline height (u64 big-endian), dispute id | empty |
//! | `scom/` | epoch (u64 big-endian), verifier | [`ScoreCommitment`] |
//! | `srev/` | epoch (u64 big-endian), verifier | [`ScoreReveal`] |
//! | `erew/` | epoch (u64 big-endian) | [`EpochRewards`] |
//! | `val/` | account | [`Validator`] (a registered validator) |
//! | `sys/` | `meta`, `params`, `supply`, `safety`, `validators` | [`Meta`], `Params`, [`Supply`], `Cid`, [`ValidatorSet`] |
//! | `~` | node-local entries (the stored state root) | not part of the state root |
//!
//! Every key except the `~` ones is covered by the state root.

use agora_types::{
    encoding::encode, registry::MAX_ENDPOINT_LEN, AccountId, Amount, BoundedString, ChainId, Cid,
    Hash, ModelInfo, ModelTotals, ProposalKind, ProviderInfo, ProviderScore, ReceiptTotals,
    SignedReceipt, Vote,
};
use borsh::{BorshDeserialize, BorshSerialize};

use crate::{
    error::{Error, Fail},
    storage::Storage,
};

/// Key builders, public so callers can ask for proofs of specific entries.
pub mod keys {
    use agora_types::{AccountId, Cid, Hash};

    /// First byte of node-local keys, excluded from the state root.
    pub const LOCAL_PREFIX: u8 = b'~';
    /// Where the current state root is stored (node-local).
    pub const STATE_ROOT: &[u8] = b"~root";
    /// Chain metadata.
    pub const META: &[u8] = b"sys/meta";
    /// Parameters.
    pub const PARAMS: &[u8] = b"sys/params";
    /// Supply counters.
    pub const SUPPLY: &[u8] = b"sys/supply";
    /// Active safety policy.
    pub const SAFETY: &[u8] = b"sys/safety";
    /// The validator set in force ([`super::ValidatorSet`]).
    pub const VALIDATORS: &[u8] = b"sys/validators";
    /// Prefix of registered validators.
    pub const VALIDATOR_PREFIX: &[u8] = b"val/";
    /// Prefix of account records.
    pub const ACCOUNT_PREFIX: &[u8] = b"acct/";
    /// Prefix of stake records.
    pub const STAKE_PREFIX: &[u8] = b"stake/";
    /// Prefix of provider records.
    pub const PROVIDER_PREFIX: &[u8] = b"prov/";
    /// Prefix of verifier records.
    pub const VERIFIER_PREFIX: &[u8] = b"verif/";
    /// Prefix of model records.
    pub const MODEL_PREFIX: &[u8] = b"model/";
    /// Prefix of channel records.
    pub const CHANNEL_PREFIX: &[u8] = b"chan/";
    /// Prefix of receipt commitments.
    pub const RECEIPT_PREFIX: &[u8] = b"rcpt/";
    /// Prefix of proposals.
    pub const PROPOSAL_PREFIX: &[u8] = b"prop/";
    /// Prefix of votes.
    pub const VOTE_PREFIX: &[u8] = b"vote/";
    /// Prefix of the queue of proposals by end height.
    pub const PENDING_PREFIX: &[u8] = b"pend/";
    /// Prefix of disputes.
    pub const DISPUTE_PREFIX: &[u8] = b"disp/";
    /// Prefix of the queue of disputes by deadline height.
    pub const DISPUTE_DUE_PREFIX: &[u8] = b"dend/";
    /// Prefix of score commitments.
    pub const SCORE_COMMIT_PREFIX: &[u8] = b"scom/";
    /// Prefix of revealed scores.
    pub const SCORE_REVEAL_PREFIX: &[u8] = b"srev/";
    /// Prefix of epoch reward records.
    pub const EPOCH_REWARDS_PREFIX: &[u8] = b"erew/";

    fn join(prefix: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        let mut key = prefix.to_vec();
        for part in parts {
            key.extend_from_slice(part);
        }
        key
    }

    /// Key of an account's balance and nonce.
    pub fn account(id: &AccountId) -> Vec<u8> {
        join(ACCOUNT_PREFIX, &[&id.0])
    }

    /// Key of an account's stake.
    pub fn stake(id: &AccountId) -> Vec<u8> {
        join(STAKE_PREFIX, &[&id.0])
    }

    /// Key of a registered validator.
    pub fn validator(id: &AccountId) -> Vec<u8> {
        join(VALIDATOR_PREFIX, &[&id.0])
    }

    /// Key of a provider record.
    pub fn provider(id: &AccountId) -> Vec<u8> {
        join(PROVIDER_PREFIX, &[&id.0])
    }

    /// Key of a verifier record.
    pub fn verifier(id: &AccountId) -> Vec<u8> {
        join(VERIFIER_PREFIX, &[&id.0])
    }

    /// Key of a model record.
    pub fn model(cid: &Cid) -> Vec<u8> {
        join(MODEL_PREFIX, &[&cid.hash().0])
    }

    /// Key of a channel record.
    pub fn channel(id: &Hash) -> Vec<u8> {
        join(CHANNEL_PREFIX, &[&id.0])
    }

    /// Key of a provider's receipt commitment for an epoch.
    pub fn receipts(provider: &AccountId, epoch: u64) -> Vec<u8> {
        join(RECEIPT_PREFIX, &[&provider.0, &epoch.to_be_bytes()])
    }

    /// Key of a proposal.
    pub fn proposal(id: u64) -> Vec<u8> {
        join(PROPOSAL_PREFIX, &[&id.to_be_bytes()])
    }

    /// Prefix of every vote on a proposal.
    pub fn votes(id: u64) -> Vec<u8> {
        join(VOTE_PREFIX, &[&id.to_be_bytes()])
    }

    /// Key of one vote.
    pub fn vote(id: u64, voter: &AccountId) -> Vec<u8> {
        join(VOTE_PREFIX, &[&id.to_be_bytes(), &voter.0])
    }

    /// Prefix of the proposals whose voting ends at `height`.
    pub fn pending_at(height: u64) -> Vec<u8> {
        join(PENDING_PREFIX, &[&height.to_be_bytes()])
    }

    /// Key of a dispute.
    pub fn dispute(id: &Hash) -> Vec<u8> {
        join(DISPUTE_PREFIX, &[&id.0])
    }

    /// Prefix of the disputes whose voting ends at `height`.
    pub fn disputes_due_at(height: u64) -> Vec<u8> {
        join(DISPUTE_DUE_PREFIX, &[&height.to_be_bytes()])
    }

    /// Key of a dispute in the end-of-voting queue.
    pub fn dispute_due(height: u64, id: &Hash) -> Vec<u8> {
        join(DISPUTE_DUE_PREFIX, &[&height.to_be_bytes(), &id.0])
    }

    /// Prefix of every score commitment for an epoch.
    pub fn score_commits(epoch: u64) -> Vec<u8> {
        join(SCORE_COMMIT_PREFIX, &[&epoch.to_be_bytes()])
    }

    /// Key of a verifier's score commitment for an epoch.
    pub fn score_commit(epoch: u64, verifier: &AccountId) -> Vec<u8> {
        join(SCORE_COMMIT_PREFIX, &[&epoch.to_be_bytes(), &verifier.0])
    }

    /// Prefix of every score reveal for an epoch.
    pub fn score_reveals(epoch: u64) -> Vec<u8> {
        join(SCORE_REVEAL_PREFIX, &[&epoch.to_be_bytes()])
    }

    /// Key of a verifier's revealed scores for an epoch.
    pub fn score_reveal(epoch: u64, verifier: &AccountId) -> Vec<u8> {
        join(SCORE_REVEAL_PREFIX, &[&epoch.to_be_bytes(), &verifier.0])
    }

    /// Key of an epoch's rewards.
    pub fn epoch_rewards(epoch: u64) -> Vec<u8> {
        join(EPOCH_REWARDS_PREFIX, &[&epoch.to_be_bytes()])
    }

    /// Key of a proposal in the end-of-voting queue.
    pub fn pending(height: u64, id: u64) -> Vec<u8> {
        join(PENDING_PREFIX, &[&height.to_be_bytes(), &id.to_be_bytes()])
    }
}

/// Chain metadata, committed in the state root.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Meta {
    /// The chain id.
    pub chain_id: ChainId,
    /// Height of the last applied block (0 after genesis).
    pub height: u64,
    /// Hash of the last applied block's header (the genesis hash after genesis).
    pub last_block_hash: Hash,
    /// Timestamp of the last applied block (genesis time after genesis).
    pub timestamp_ms: u64,
    /// Genesis hash.
    pub genesis_hash: Hash,
    /// Id the next proposal will get.
    pub next_proposal_id: u64,
}

/// An account's liquid balance and next nonce.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Account {
    /// Liquid balance.
    pub balance: Amount,
    /// Next nonce.
    pub nonce: u64,
}

/// One unbonding entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Unbonding {
    /// Amount.
    pub amount: Amount,
    /// Height from which it can be withdrawn.
    pub release_height: u64,
}

/// An account's stake.
#[derive(Debug, Clone, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Stake {
    /// Bonded stake.
    pub bonded: Amount,
    /// Unbonding entries, oldest first.
    pub unbonding: Vec<Unbonding>,
    /// The account is jailed while the height is below this.
    pub jailed_until: u64,
}

/// A registered provider.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Provider {
    /// The operator's account.
    pub operator: AccountId,
    /// Endpoint, models, prices, region, hardware.
    pub info: ProviderInfo,
    /// Height of registration.
    pub registered_height: u64,
}

/// A registered verifier.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Verifier {
    /// The verifier's account.
    pub account: AccountId,
    /// Base URL of its HTTP server (transcripts in, `GET /blobs/{cid}` out).
    pub endpoint: BoundedString<MAX_ENDPOINT_LEN>,
    /// Height of registration.
    pub registered_height: u64,
}

/// One member of a dispute's committee.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct CommitteeMember {
    /// The verifier.
    pub account: AccountId,
    /// Its bonded stake when the committee was drawn: its voting weight.
    pub stake: Amount,
    /// Its vote (`Some(true)` = fraud), once cast.
    pub vote: Option<bool>,
}

/// How a dispute ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct DisputeOutcome {
    /// Whether fraud was found (committee stake voting fraud ≥ 2/3 of the committee's).
    pub fraud: bool,
    /// Recorded stake of the members that voted fraud.
    pub fraud_stake: Amount,
    /// Recorded stake of the whole committee.
    pub committee_stake: Amount,
    /// Taken from the provider's bonded stake.
    pub slashed: Amount,
    /// Paid from the slash to the receipt's payer.
    pub refunded: Amount,
    /// Paid from the slash to the challenger.
    pub reward: Amount,
    /// Bond returned to the challenger (fraud) or zero.
    pub bond_returned: Amount,
    /// Burned: the rest of the slash, or the bond when no fraud was found.
    pub burned: Amount,
}

/// Where a dispute stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum DisputeStatus {
    /// Open for committee votes until the deadline.
    Open,
    /// Settled at the deadline.
    Resolved(DisputeOutcome),
}

/// A challenge of one receipt and its committee vote.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Dispute {
    /// Its id: the challenged receipt's id.
    pub id: Hash,
    /// The challenged receipt.
    pub receipt: SignedReceipt,
    /// Content id of the transcript the challenger published.
    pub transcript: Cid,
    /// The verifier that challenged.
    pub challenger: AccountId,
    /// Bond escrowed by the challenger.
    pub bond: Amount,
    /// Height of the block that opened it.
    pub opened_height: u64,
    /// Last height at which votes count; settled at the end of this block.
    pub deadline_height: u64,
    /// The committee, in draw order.
    pub committee: Vec<CommitteeMember>,
    /// Where it stands.
    pub status: DisputeStatus,
}

/// A verifier's commitment to its scores for an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ScoreCommitment {
    /// `agora_types::score_commitment` of the scores to be revealed.
    pub commitment: Hash,
    /// Height of the (last) commitment.
    pub height: u64,
}

/// A verifier's revealed scores for an epoch.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ScoreReveal {
    /// Scores, sorted by provider.
    pub scores: Vec<ProviderScore>,
    /// Height of the reveal.
    pub height: u64,
}

/// One provider's share of an epoch's emission.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ProviderReward {
    /// The provider.
    pub provider: AccountId,
    /// Consensus score in millionths.
    pub consensus_ppm: u32,
    /// Completion tokens from its receipt commitment for the epoch.
    pub tokens: u64,
    /// Minted to it.
    pub reward: Amount,
}

/// One verifier's share of an epoch's emission.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct VerifierReward {
    /// The verifier.
    pub verifier: AccountId,
    /// Its bonded stake when the epoch was settled (its weight in consensus).
    pub stake: Amount,
    /// Agreement with consensus in millionths.
    pub agreement_ppm: u32,
    /// Minted to it.
    pub reward: Amount,
}

/// How an epoch's emission was split.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct EpochRewards {
    /// The epoch scored.
    pub epoch: u64,
    /// Height of the block that settled it (the last of the next epoch).
    pub height: u64,
    /// Per scored provider, by account.
    pub providers: Vec<ProviderReward>,
    /// Per revealing verifier with stake, by account.
    pub verifiers: Vec<VerifierReward>,
    /// Total minted (at most `emission_per_epoch`; remainders of the split are not minted).
    pub minted: Amount,
}

/// Whether a model may be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum ModelStatus {
    /// Servable.
    Active,
    /// No longer servable.
    Retired,
}

/// A model known to the registry.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Model {
    /// Its description.
    pub info: ModelInfo,
    /// Whether it is servable.
    pub status: ModelStatus,
    /// Height of the last status change.
    pub updated_height: u64,
}

/// A unidirectional payment channel.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Channel {
    /// The channel id.
    pub id: Hash,
    /// Who deposits and signs vouchers.
    pub payer: AccountId,
    /// Who redeems.
    pub payee: AccountId,
    /// Total deposited.
    pub deposit: Amount,
    /// Total redeemed so far; the escrow still held is `deposit - redeemed`.
    pub redeemed: Amount,
    /// Height from which the payer may close.
    pub expiry_height: u64,
}

/// A provider's committed receipts for one epoch.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ReceiptCommitment {
    /// The provider.
    pub provider: AccountId,
    /// The epoch.
    pub epoch: u64,
    /// Merkle root of the receipt ids.
    pub root: Hash,
    /// Totals.
    pub totals: ReceiptTotals,
    /// The same totals by model.
    pub by_model: Vec<ModelTotals>,
    /// Height of the commitment.
    pub height: u64,
}

/// Where a proposal stands.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum ProposalStatus {
    /// Open for votes until its end height.
    Voting,
    /// Passed and executed.
    Passed,
    /// Reached quorum but not the threshold.
    Rejected,
    /// Did not reach quorum; deposit burned.
    NoQuorum,
    /// Passed but could not be executed; the reason is kept.
    ExecutionFailed(String),
}

/// Stake-weighted vote totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Tally {
    /// Stake voting yes.
    pub yes: Amount,
    /// Stake voting no.
    pub no: Amount,
    /// Stake abstaining.
    pub abstain: Amount,
    /// All bonded stake when the vote closed.
    pub total_bonded: Amount,
}

/// A governance proposal.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Proposal {
    /// Its id.
    pub id: u64,
    /// Who proposed it.
    pub proposer: AccountId,
    /// What it does.
    pub kind: ProposalKind,
    /// Deposit held in escrow while voting.
    pub deposit: Amount,
    /// Height of submission.
    pub submit_height: u64,
    /// Last height at which votes count; tallied at the end of this block.
    pub end_height: u64,
    /// Where it stands.
    pub status: ProposalStatus,
    /// Final tally (zero while voting).
    pub tally: Tally,
}

/// Supply counters, kept in step by every transaction.
///
/// Invariant: `liquid + bonded + unbonding + escrowed + burned == genesis + minted`.
/// [`Supply::total`] is the circulating supply, `genesis + minted - burned`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Supply {
    /// Sum of all balances.
    pub liquid: Amount,
    /// Sum of all bonded stake.
    pub bonded: Amount,
    /// Sum of all unbonding entries.
    pub unbonding: Amount,
    /// Held in channels and proposal deposits.
    pub escrowed: Amount,
    /// Burned (fees, slashes, failed deposits).
    pub burned: Amount,
    /// Minted after genesis (rewards).
    pub minted: Amount,
    /// Allocated at genesis.
    pub genesis: Amount,
}

impl Supply {
    /// The circulating supply: balances + bonded + unbonding + escrowed.
    pub fn total(&self) -> Option<Amount> {
        self.liquid
            .checked_add(self.bonded)?
            .checked_add(self.unbonding)?
            .checked_add(self.escrowed)
    }

    /// Whether `total + burned == genesis + minted`.
    pub fn is_conserved(&self) -> bool {
        let left = self.total().and_then(|t| t.checked_add(self.burned));
        let right = self.genesis.checked_add(self.minted);
        left.is_some() && left == right
    }
}

/// A validator: registered to be chosen, or a member of the set.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Validator {
    /// Its account; the same ed25519 key signs its consensus votes.
    pub account: AccountId,
    /// `host:port` where peers reach it; `None` for genesis validators, whose operators
    /// name each other's addresses.
    pub p2p: Option<BoundedString<MAX_ENDPOINT_LEN>>,
}

/// The consensus validator set in force.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ValidatorSet {
    /// Counts changes of membership: 0 for the genesis set, one more at each change.
    pub epoch: u64,
    /// The last block finalized by the previous set, from which this set's consensus
    /// grows; `None` for the genesis set and until this set's first block is executed
    /// (then it is that block's parent).
    pub floor: Option<Hash>,
    /// Members, sorted by account.
    pub members: Vec<Validator>,
}

/// Reads and decodes the record under `key`.
pub(crate) fn read<T: BorshDeserialize>(
    store: &dyn Storage,
    key: &[u8],
) -> Result<Option<T>, Error> {
    let Some(bytes) = store.get(key)? else {
        return Ok(None);
    };
    match borsh::from_slice(&bytes) {
        Ok(value) => Ok(Some(value)),
        Err(_) => Err(Error::Corrupt { key: hex_key(key) }),
    }
}

/// Encodes and writes `value` under `key`.
pub(crate) fn write<T: BorshSerialize>(
    store: &mut dyn Storage,
    key: &[u8],
    value: &T,
) -> Result<(), Error> {
    store.put(key, &encode(value))?;
    Ok(())
}

/// Decodes a record read by a prefix scan.
pub(crate) fn decode_record<T: BorshDeserialize>(key: &[u8], bytes: &[u8]) -> Result<T, Error> {
    borsh::from_slice(bytes).map_err(|_| Error::Corrupt { key: hex_key(key) })
}

/// A record that must exist once genesis ran.
pub(crate) fn read_required<T: BorshDeserialize>(
    store: &dyn Storage,
    key: &[u8],
) -> Result<T, Error> {
    read(store, key)?.ok_or(Error::NotInitialized)
}

pub(crate) fn hex_key(key: &[u8]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn load_account(store: &dyn Storage, id: &AccountId) -> Result<Account, Error> {
    Ok(read(store, &keys::account(id))?.unwrap_or_default())
}

pub(crate) fn save_account(
    store: &mut dyn Storage,
    id: &AccountId,
    account: &Account,
) -> Result<(), Error> {
    let key = keys::account(id);
    if *account == Account::default() {
        store.delete(&key)?;
        return Ok(());
    }
    write(store, &key, account)
}

pub(crate) fn load_stake(store: &dyn Storage, id: &AccountId) -> Result<Stake, Error> {
    Ok(read(store, &keys::stake(id))?.unwrap_or_default())
}

pub(crate) fn save_stake(
    store: &mut dyn Storage,
    id: &AccountId,
    stake: &Stake,
) -> Result<(), Error> {
    let key = keys::stake(id);
    if *stake == Stake::default() {
        store.delete(&key)?;
        return Ok(());
    }
    write(store, &key, stake)
}

pub(crate) fn load_supply(store: &dyn Storage) -> Result<Supply, Error> {
    read_required(store, keys::SUPPLY)
}

pub(crate) fn save_supply(store: &mut dyn Storage, supply: &Supply) -> Result<(), Error> {
    write(store, keys::SUPPLY, supply)
}

pub(crate) fn load_meta(store: &dyn Storage) -> Result<Meta, Error> {
    read_required(store, keys::META)
}

/// Applies `change` to the supply counters.
pub(crate) fn update_supply(
    store: &mut dyn Storage,
    change: impl FnOnce(&mut Supply) -> Result<(), Fail>,
) -> Result<(), Fail> {
    let mut supply = load_supply(store)?;
    change(&mut supply)?;
    save_supply(store, &supply)?;
    Ok(())
}

/// Whether `cid` is an active model.
pub(crate) fn model_is_active(store: &dyn Storage, cid: &Cid) -> Result<bool, Error> {
    let model: Option<Model> = read(store, &keys::model(cid))?;
    Ok(matches!(model, Some(m) if m.status == ModelStatus::Active))
}

/// The vote record of one voter.
pub(crate) type VoteRecord = Vote;
