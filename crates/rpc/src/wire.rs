//! JSON shapes of the node's RPC, converted by hand from core types.
//!
//! Amounts are decimal strings of base units, hashes and bytes lowercase hex,
//! accounts bech32m `agora1…`, CIDs base32 `bafkr…`.

use std::collections::BTreeMap;

use agora_types::{
    amount::Amount, params::PARAM_NAMES, registry, Hash, Header, ModelInfo, ProviderInfo,
};
use serde::{Deserialize, Serialize};

/// A JSON-RPC 2.0 request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    /// Always `"2.0"`.
    pub jsonrpc: String,
    /// Echoed in the response.
    #[serde(default)]
    pub id: serde_json::Value,
    /// One of [`crate::method`].
    pub method: String,
    /// The method's params object (absent or null when it takes none).
    #[serde(default)]
    pub params: serde_json::Value,
}

/// A JSON-RPC 2.0 response: exactly one of `result` and `error` is present.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Response {
    /// Always `"2.0"`.
    pub jsonrpc: String,
    /// The request's id.
    pub id: serde_json::Value,
    /// The result, on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// The error, on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RpcError>,
}

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RpcError {
    /// One of [`crate::code`].
    pub code: i64,
    /// What went wrong, for a human.
    pub message: String,
}

/// Params of `submit_tx`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubmitTxParams {
    /// Hex of the borsh-encoded `SignedTx`.
    pub tx: String,
}

/// Result of `submit_tx`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitTxResult {
    /// The transaction's hash (hex).
    pub hash: String,
}

/// Params naming a hash (`tx_status`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HashParams {
    /// Hex hash.
    pub hash: String,
}

/// Where a transaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxState {
    /// In the mempool or a block not yet finalized.
    Pending,
    /// In a finalized, executed block.
    Committed,
    /// Not known to this node.
    Unknown,
}

/// Result of `tx_status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxStatus {
    /// The transaction's hash (hex).
    pub hash: String,
    /// Where it is.
    pub status: TxState,
    /// Height of the block holding it, once committed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u64>,
    /// Position in that block, once committed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    /// Whether its body succeeded (a failed body still pays its fee), once committed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success: Option<bool>,
    /// Why the body failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Params naming an account (`account`, `provider`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountParams {
    /// bech32m account id.
    pub address: String,
}

/// Result of `account`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// bech32m account id.
    pub address: String,
    /// Liquid balance (base units).
    pub balance: String,
    /// The nonce the account's next transaction must carry.
    pub nonce: u64,
    /// Bonded stake (base units).
    pub bonded: String,
    /// Stake waiting out its unbonding period (base units).
    pub unbonding: String,
}

/// One model a provider offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelOffer {
    /// Model CID.
    pub cid: String,
    /// Price per million prompt tokens (base units).
    pub price_in: String,
    /// Price per million completion tokens (base units).
    pub price_out: String,
}

/// Result of `provider`, element of `providers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provider {
    /// Operator account.
    pub operator: String,
    /// Base URL of its OpenAI-compatible endpoint.
    pub endpoint: String,
    /// Models served, with prices.
    pub models: Vec<ModelOffer>,
    /// Region label.
    pub region: String,
    /// Hardware description.
    pub hardware: String,
    /// Bonded stake (base units).
    pub stake: String,
    /// Status, e.g. `active`, `inactive`, `jailed`.
    pub status: String,
}

/// Params naming a model (`model`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CidParams {
    /// Model CID.
    pub cid: String,
}

/// Result of `model`, element of `models`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Model {
    /// Content id.
    pub cid: String,
    /// Human name.
    pub name: String,
    /// Architecture.
    pub architecture: String,
    /// Quantization.
    pub quantization: String,
    /// Context length in tokens.
    pub context_length: u32,
    /// Licence.
    pub license: String,
    /// File size in bytes.
    pub size: u64,
    /// Status, e.g. `active`, `retired`.
    pub status: String,
}

/// Params of `model_stats`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelStatsParams {
    /// The model's CID.
    pub cid: String,
    /// How many epochs back from the current one to cover (default 10).
    #[serde(default)]
    pub epochs: Option<u64>,
}

/// Result of `model_stats`: what a proposal to retire or replace a model can cite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelStats {
    /// The model's CID.
    pub cid: String,
    /// Its name.
    pub name: String,
    /// `active` or `retired`.
    pub status: String,
    /// First epoch covered.
    pub from_epoch: u64,
    /// Last epoch covered (the current one, whose receipts may not be committed yet).
    pub to_epoch: u64,
    /// Requests served, from providers' receipt commitments.
    pub requests: u64,
    /// Prompt tokens processed.
    pub tokens_in: u64,
    /// Completion tokens generated.
    pub tokens_out: u64,
    /// Amount paid for it (base units).
    pub amount: String,
    /// Active providers serving it now.
    pub providers: u64,
    /// Lowest offered price per million prompt tokens (base units), if anyone serves it.
    pub min_price_in: Option<String>,
    /// Lowest offered price per million completion tokens (base units).
    pub min_price_out: Option<String>,
    /// Mean consensus quality score (parts per million) of its providers in the latest epoch
    /// with rewards, if any was scored.
    pub mean_score_ppm: Option<u64>,
    /// Disputes over its receipts opened in the period.
    pub disputes: u64,
    /// Of those, resolved as fraud.
    pub frauds: u64,
}

/// Params naming a proposal (`proposal`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProposalParams {
    /// Proposal id.
    pub id: u64,
}

/// Result of `proposal`, element of `proposals`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// Proposal id.
    pub id: u64,
    /// Proposer account.
    pub proposer: String,
    /// What it does, in words.
    pub kind: String,
    /// Deposit (base units).
    pub deposit: String,
    /// Status, e.g. `voting`, `passed`, `rejected`.
    pub status: String,
    /// Last height at which votes count.
    pub voting_end_height: u64,
    /// Stake voting yes (base units).
    pub yes: String,
    /// Stake voting no (base units).
    pub no: String,
    /// Stake abstaining (base units).
    pub abstain: String,
}

/// Params naming a channel (`channel`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChannelParams {
    /// Hex channel id.
    pub id: String,
}

/// Params of `channels`: every open channel, narrowed to a payer and/or a payee when given.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChannelsParams {
    /// bech32m account id of the payer to match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer: Option<String>,
    /// bech32m account id of the payee to match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payee: Option<String>,
}

/// Result of `channel`, element of `channels`: an open payment channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Channel {
    /// Channel id (hex).
    pub id: String,
    /// Payer account: deposits and signs vouchers.
    pub payer: String,
    /// Payee account: redeems vouchers.
    pub payee: String,
    /// Total deposited (base units).
    pub deposit: String,
    /// Total redeemed so far (base units); the escrow still held is `deposit - redeemed`.
    pub redeemed: String,
    /// Height from which the payer may close the channel.
    pub expiry_height: u64,
}

/// Params of `receipt_commitment`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReceiptCommitmentParams {
    /// bech32m account id of the provider.
    pub provider: String,
    /// Epoch (height / `epoch_blocks`).
    pub epoch: u64,
}

/// Result of `receipt_commitment`: a provider's committed receipts for one epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptCommitment {
    /// Provider account.
    pub provider: String,
    /// Epoch.
    pub epoch: u64,
    /// Merkle root of the epoch's receipt ids (hex).
    pub root: String,
    /// Requests served.
    pub requests: u64,
    /// Prompt tokens processed.
    pub tokens_in: u64,
    /// Completion tokens generated.
    pub tokens_out: u64,
    /// Amount charged (base units).
    pub amount: String,
    /// Height of the block that committed it.
    pub height: u64,
}

/// Params of `block`: by height, by hash, or the latest when both are absent.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BlockParams {
    /// Height.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u64>,
    /// Hex block hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
}

/// A transaction as listed in a block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockTx {
    /// Hash (hex).
    pub hash: String,
    /// Signer account.
    pub signer: String,
    /// Nonce.
    pub nonce: u64,
    /// Fee (base units).
    pub fee: String,
    /// Body kind, e.g. `transfer`.
    pub kind: String,
    /// Whether the body succeeded.
    pub success: bool,
    /// Why it failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Result of `block`, and the data of each `/events` message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// Height.
    pub height: u64,
    /// Block hash (hex).
    pub hash: String,
    /// Parent hash (hex).
    pub parent: String,
    /// Block time (ms since the Unix epoch).
    pub timestamp_ms: u64,
    /// Proposer account.
    pub proposer: String,
    /// Merkle root of the transactions (hex).
    pub tx_root: String,
    /// State root before this block (hex).
    pub state_root: String,
    /// State root after this block (hex); committed by the next header.
    pub result_root: String,
    /// Transactions, in order, with their results.
    pub txs: Vec<BlockTx>,
}

/// Result of `head`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// Chain id.
    pub chain_id: String,
    /// Genesis hash (hex).
    pub genesis_hash: String,
    /// Height of the last executed block (0 before the first).
    pub height: u64,
    /// Its hash (hex).
    pub hash: String,
    /// State root after it (hex).
    pub state_root: String,
    /// Its time (ms since the Unix epoch).
    pub timestamp_ms: u64,
    /// Transactions waiting in the mempool.
    pub mempool: u64,
}

/// Result of `supply`: the ledger's supply counters, decimal strings of base units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Supply {
    /// Sum of all balances.
    pub liquid: String,
    /// Sum of all bonded stake.
    pub bonded: String,
    /// Sum of all unbonding entries.
    pub unbonding: String,
    /// Held in channels and proposal deposits.
    pub escrowed: String,
    /// Burned (fees, slashes, failed deposits).
    pub burned: String,
    /// Minted after genesis.
    pub minted: String,
    /// Allocated at genesis.
    pub genesis: String,
    /// Genesis plus minted minus burned.
    pub total: String,
}

/// One entry of `validators`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validator {
    /// bech32m account id.
    pub account: String,
    /// Its bonded stake (base units).
    pub bonded: String,
    /// `host:port` of its p2p listener, when it registered one (genesis validators do not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p2p: Option<String>,
}

/// Result of `params`: every parameter by name, values as decimal strings.
pub type Params = BTreeMap<String, String>;

/// The parameter `name` of `params` parsed as `T`; `None` when absent or malformed.
pub fn param<T: std::str::FromStr>(params: &Params, name: &str) -> Option<T> {
    params.get(name)?.parse().ok()
}

/// What a `proof` is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProofKind {
    /// An account entry.
    Account,
    /// A provider entry.
    Provider,
}

/// Params of `proof`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProofParams {
    /// Which entry.
    pub kind: ProofKind,
    /// bech32m account id of the account or provider operator.
    pub address: String,
}

/// Result of `proof`: an inclusion proof against the state root after `height`.
///
/// That root is the `state_root` of the header at `height + 1`. The leaf is
/// `leaf_hash(u32-le(len(key)) || key || BLAKE3(value))` (see `agora_ledger::proof`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    /// Height whose post-state the proof is against.
    pub height: u64,
    /// The state root (hex).
    pub root: String,
    /// The entry's key (hex).
    pub key: String,
    /// The entry's value, its record's borsh encoding (hex).
    pub value: String,
    /// Leaf position in the tree.
    pub index: u64,
    /// Number of leaves.
    pub total: u64,
    /// Sibling hashes from the leaf upward (hex).
    pub siblings: Vec<String>,
}

impl Proof {
    /// Converts a core Merkle proof of `key` = `value` under `root`.
    pub fn from_core(
        height: u64,
        root: &Hash,
        key: &[u8],
        value: &[u8],
        merkle: &agora_types::MerkleProof,
    ) -> Self {
        Proof {
            height,
            root: root.to_hex(),
            key: hex::encode(key),
            value: hex::encode(value),
            index: merkle.index,
            total: merkle.total,
            siblings: merkle.siblings.iter().map(Hash::to_hex).collect(),
        }
    }

    /// Whether the proof shows its key holding its value under its root.
    ///
    /// This checks the proof only; check `root` against a header you trust
    /// (the `state_root` of block `height + 1`) separately.
    pub fn verify(&self) -> bool {
        match self.to_core() {
            Some((root, key, value, merkle)) => {
                agora_types::merkle::verify_state_entry(&root, &key, &value, &merkle)
            }
            None => false,
        }
    }

    /// The root, key, value and Merkle proof, or `None` if a field is malformed.
    pub fn to_core(&self) -> Option<(Hash, Vec<u8>, Vec<u8>, agora_types::MerkleProof)> {
        let root = Hash::from_hex(&self.root)?;
        let key = hex::decode(&self.key).ok()?;
        let value = hex::decode(&self.value).ok()?;
        let siblings: Option<Vec<Hash>> = self.siblings.iter().map(|s| Hash::from_hex(s)).collect();
        let siblings = agora_types::BoundedVec::new(siblings?).ok()?;
        let merkle = agora_types::MerkleProof {
            index: self.index,
            total: self.total,
            siblings,
        };
        Some((root, key, value, merkle))
    }
}

/// Hex of a hash.
pub fn hash(value: &Hash) -> String {
    value.to_hex()
}

/// Decimal string of an amount.
pub fn amount(value: Amount) -> String {
    value.to_string()
}

impl Model {
    /// Converts a core model record with its status.
    pub fn from_core(info: &ModelInfo, status: &str) -> Self {
        Model {
            cid: info.cid.to_string(),
            name: info.name.as_str().to_owned(),
            architecture: info.architecture.as_str().to_owned(),
            quantization: info.quantization.as_str().to_owned(),
            context_length: info.context_length,
            license: info.license.as_str().to_owned(),
            size: info.size,
            status: status.to_owned(),
        }
    }
}

impl ModelOffer {
    /// Converts a core offer.
    pub fn from_core(offer: &registry::ModelOffer) -> Self {
        ModelOffer {
            cid: offer.cid.to_string(),
            price_in: amount(offer.price_in),
            price_out: amount(offer.price_out),
        }
    }
}

impl Provider {
    /// Converts a core provider record with its stake and status.
    pub fn from_core(
        operator: &agora_types::AccountId,
        info: &ProviderInfo,
        stake: Amount,
        status: &str,
    ) -> Self {
        Provider {
            operator: operator.to_string(),
            endpoint: info.endpoint.as_str().to_owned(),
            models: info.models.iter().map(ModelOffer::from_core).collect(),
            region: info.region.as_str().to_owned(),
            hardware: info.hardware.as_str().to_owned(),
            stake: amount(stake),
            status: status.to_owned(),
        }
    }
}

impl Channel {
    /// Converts a core channel's fields.
    pub fn from_core(
        id: &Hash,
        payer: &agora_types::AccountId,
        payee: &agora_types::AccountId,
        deposit: Amount,
        redeemed: Amount,
        expiry_height: u64,
    ) -> Self {
        Channel {
            id: hash(id),
            payer: payer.to_string(),
            payee: payee.to_string(),
            deposit: amount(deposit),
            redeemed: amount(redeemed),
            expiry_height,
        }
    }
}

impl ReceiptCommitment {
    /// Converts a core receipt commitment's fields.
    pub fn from_core(
        provider: &agora_types::AccountId,
        epoch: u64,
        root: &Hash,
        totals: &agora_types::ReceiptTotals,
        height: u64,
    ) -> Self {
        ReceiptCommitment {
            provider: provider.to_string(),
            epoch,
            root: hash(root),
            requests: totals.requests,
            tokens_in: totals.tokens_in,
            tokens_out: totals.tokens_out,
            amount: amount(totals.amount),
            height,
        }
    }
}

impl Block {
    /// Converts a header and its transactions' listings.
    pub fn from_header(header: &Header, result_root: &Hash, txs: Vec<BlockTx>) -> Self {
        Block {
            height: header.height,
            hash: hash(&header.hash()),
            parent: hash(&header.parent),
            timestamp_ms: header.timestamp_ms,
            proposer: header.proposer.to_string(),
            tx_root: hash(&header.tx_root),
            state_root: hash(&header.state_root),
            result_root: hash(result_root),
            txs,
        }
    }
}

/// Converts parameters to their wire map.
pub fn params(core: &agora_types::Params) -> Params {
    PARAM_NAMES
        .iter()
        .filter_map(|name| core.get(name).map(|v| ((*name).to_owned(), v.to_string())))
        .collect()
}

/// The wire name of a transaction body's kind.
pub fn tx_kind(body: &agora_types::TxBody) -> &'static str {
    use agora_types::TxBody;
    match body {
        TxBody::Transfer { .. } => "transfer",
        TxBody::Bond { .. } => "bond",
        TxBody::Unbond { .. } => "unbond",
        TxBody::WithdrawUnbonded => "withdraw_unbonded",
        TxBody::RegisterProvider(_) => "register_provider",
        TxBody::UpdateProvider(_) => "update_provider",
        TxBody::DeregisterProvider => "deregister_provider",
        TxBody::RegisterVerifier { .. } => "register_verifier",
        TxBody::OpenChannel { .. } => "open_channel",
        TxBody::TopUpChannel { .. } => "top_up_channel",
        TxBody::RedeemChannel { .. } => "redeem_channel",
        TxBody::CloseChannel { .. } => "close_channel",
        TxBody::CommitReceipts { .. } => "commit_receipts",
        TxBody::Challenge { .. } => "challenge",
        TxBody::DisputeVote { .. } => "dispute_vote",
        TxBody::SubmitProposal { .. } => "submit_proposal",
        TxBody::VoteProposal { .. } => "vote_proposal",
        TxBody::CommitScores { .. } => "commit_scores",
        TxBody::RevealScores { .. } => "reveal_scores",
        TxBody::RegisterValidator { .. } => "register_validator",
        TxBody::DeregisterValidator => "deregister_validator",
    }
}

/// Element of `verifiers`: a registered verifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verifier {
    /// bech32m account id.
    pub account: String,
    /// Base URL of its HTTP server: gateways send transcripts to `POST {endpoint}/v1/transcripts`
    /// and it publishes the transcripts it challenges with at `GET {endpoint}/blobs/{cid}`.
    pub endpoint: String,
    /// Bonded stake (base units).
    pub stake: String,
    /// Height of registration.
    pub registered_height: u64,
    /// `active` (may challenge, sit on committees and score), `inactive` (below `min_stake`)
    /// or `jailed`.
    pub status: String,
}

/// Params of `dispute`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DisputeParams {
    /// Dispute id (hex): the challenged receipt's id.
    pub id: String,
}

/// Params of `disputes`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DisputesParams {
    /// Only disputes still open for votes.
    #[serde(default)]
    pub open_only: bool,
    /// Only disputes against this provider (bech32m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
}

/// One member of a dispute's committee.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitteeMember {
    /// bech32m account id.
    pub account: String,
    /// Its stake when drawn: its voting weight (base units).
    pub stake: String,
    /// Its vote (`true` = fraud), once cast.
    pub vote: Option<bool>,
}

/// How a dispute was settled; amounts in base units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisputeOutcome {
    /// Whether at least two thirds of the committee's stake voted fraud.
    pub fraud: bool,
    /// Stake of the members that voted fraud.
    pub fraud_stake: String,
    /// Stake of the whole committee.
    pub committee_stake: String,
    /// Taken from the provider's bonded stake.
    pub slashed: String,
    /// Paid from the slash to the receipt's payer.
    pub refunded: String,
    /// Paid from the slash to the challenger.
    pub reward: String,
    /// Bond returned to the challenger.
    pub bond_returned: String,
    /// Burned: the rest of the slash, or the bond when no fraud was found.
    pub burned: String,
}

/// Result of `dispute`, element of `disputes`: a challenge of one receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dispute {
    /// Its id (hex): the challenged receipt's id.
    pub id: String,
    /// The provider that signed the receipt.
    pub provider: String,
    /// The receipt's payer.
    pub payer: String,
    /// What the receipt charged (base units).
    pub charge: String,
    /// Hex of the borsh `SignedReceipt` challenged.
    pub receipt: String,
    /// CID of the transcript the challenger published.
    pub transcript: String,
    /// The verifier that challenged.
    pub challenger: String,
    /// Bond escrowed by the challenger (base units).
    pub bond: String,
    /// Height of the block that opened it.
    pub opened_height: u64,
    /// Last height at which votes count.
    pub deadline_height: u64,
    /// The committee, in draw order.
    pub committee: Vec<CommitteeMember>,
    /// `open` or `resolved`.
    pub status: String,
    /// The settlement, once resolved.
    pub outcome: Option<DisputeOutcome>,
}

/// Params of `epoch_rewards`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochParams {
    /// Epoch (height / `epoch_blocks`).
    pub epoch: u64,
}

/// One provider's share of an epoch's emission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderReward {
    /// bech32m account id.
    pub provider: String,
    /// Consensus score in millionths.
    pub consensus_ppm: u32,
    /// Completion tokens committed for the epoch.
    pub tokens: u64,
    /// Minted to it (base units).
    pub reward: String,
}

/// One verifier's share of an epoch's emission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifierReward {
    /// bech32m account id.
    pub verifier: String,
    /// Its bonded stake at settlement (base units).
    pub stake: String,
    /// Agreement with consensus in millionths.
    pub agreement_ppm: u32,
    /// Minted to it (base units).
    pub reward: String,
}

/// Result of `epoch_rewards`: how an epoch's emission was split by quality scores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochRewards {
    /// The epoch scored.
    pub epoch: u64,
    /// Height of the block that settled it.
    pub height: u64,
    /// Per scored provider.
    pub providers: Vec<ProviderReward>,
    /// Per revealing verifier.
    pub verifiers: Vec<VerifierReward>,
    /// Total minted (base units).
    pub minted: String,
}
