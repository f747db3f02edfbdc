//! Transactions: `{signer, nonce, fee, body, signature}`.
//!
//! The signature covers `signing_bytes(domain::TX, chain_id, borsh(signer, nonce, fee, body))`;
//! the chain id is not in the transaction itself, so a transaction signed for one chain
//! fails its signature check on any other.
//! A transaction's hash is BLAKE3 of its canonical encoding, signature included.

use borsh::{BorshDeserialize, BorshSerialize};

use crate::{
    bounded::{BoundedString, BoundedVec},
    encoding::{encode, encode_into, Wire, MAX_TX_BYTES},
    governance::{ProposalKind, Vote},
    keys::{self, AccountId, Keypair, Signature},
    receipt::SignedReceipt,
    registry::{ProviderInfo, MAX_ENDPOINT_LEN, MAX_PROVIDER_MODELS},
    signing::{domain, signing_bytes, ChainId},
    voucher::SignedVoucher,
    Amount, Cid, Hash,
};

/// Most scores one reveal may carry.
pub const MAX_SCORES: usize = 256;

/// A signed transaction.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SignedTx {
    /// The account that signs, pays the fee and acts.
    pub signer: AccountId,
    /// The signer's next nonce: strictly sequential from 0.
    pub nonce: u64,
    /// Fee in base units, burned whether the body succeeds or fails.
    pub fee: Amount,
    /// What the transaction does.
    pub body: TxBody,
    /// The signer's signature (domain [`domain::TX`]).
    pub signature: Signature,
}

/// Per-epoch totals of the receipts a provider signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, BorshSerialize, BorshDeserialize)]
pub struct ReceiptTotals {
    /// Requests served.
    pub requests: u64,
    /// Prompt tokens processed.
    pub tokens_in: u64,
    /// Completion tokens generated.
    pub tokens_out: u64,
    /// Amount charged.
    pub amount: Amount,
}

impl ReceiptTotals {
    /// These totals plus `other`'s, or `None` on overflow.
    pub fn checked_add(&self, other: &ReceiptTotals) -> Option<ReceiptTotals> {
        Some(ReceiptTotals {
            requests: self.requests.checked_add(other.requests)?,
            tokens_in: self.tokens_in.checked_add(other.tokens_in)?,
            tokens_out: self.tokens_out.checked_add(other.tokens_out)?,
            amount: self.amount.checked_add(other.amount)?,
        })
    }
}

/// One model's share of an epoch's receipt totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ModelTotals {
    /// The model served.
    pub model: Cid,
    /// Totals of the receipts for it.
    pub totals: ReceiptTotals,
}

/// One verifier's quality score for one provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ProviderScore {
    /// The provider scored.
    pub provider: AccountId,
    /// Score in millionths (`1_000_000` = perfect).
    pub score_ppm: u32,
}

/// What a transaction does (DESIGN §4).
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum TxBody {
    /// Move `amount` from the signer to `to`.
    Transfer {
        /// Recipient.
        to: AccountId,
        /// Amount, more than zero.
        amount: Amount,
    },
    /// Move `amount` from the signer's balance to its bonded stake.
    Bond {
        /// Amount, more than zero.
        amount: Amount,
    },
    /// Start unbonding `amount`; it can be withdrawn after `unbonding_blocks`.
    Unbond {
        /// Amount, more than zero.
        amount: Amount,
    },
    /// Move every matured unbonding entry back to the balance.
    WithdrawUnbonded,
    /// Register the signer as a provider.
    RegisterProvider(ProviderInfo),
    /// Replace the signer's provider record.
    UpdateProvider(ProviderInfo),
    /// Remove the signer's provider record.
    DeregisterProvider,
    /// Register the signer as a verifier, or update a registered verifier's endpoint.
    RegisterVerifier {
        /// Base URL of the verifier's HTTP server: gateways send it transcripts there, and it
        /// publishes the transcripts it challenges with at `GET /blobs/{cid}`.
        endpoint: BoundedString<MAX_ENDPOINT_LEN>,
    },
    /// Open a channel from the signer to `payee`, escrowing `deposit`.
    OpenChannel {
        /// Who may redeem vouchers.
        payee: AccountId,
        /// Amount escrowed, more than zero.
        deposit: Amount,
        /// Height from which the payer may close and reclaim the rest.
        expiry_height: u64,
    },
    /// Add to a channel's deposit and optionally push its expiry later.
    TopUpChannel {
        /// The channel.
        channel_id: Hash,
        /// Amount added (may be zero when only extending).
        amount: Amount,
        /// New expiry height; must not be earlier than the current one.
        expiry_height: u64,
    },
    /// Pay the payee the increase of its claim over what the channel already redeemed.
    ///
    /// A voucher authorizes payment *up to* its cumulative amount; the payee claims only what
    /// it billed, and the unclaimed rest stays in escrow for the payer.
    RedeemChannel {
        /// The payer-signed voucher.
        voucher: SignedVoucher,
        /// Cumulative total claimed: above what was redeemed, at most the voucher's cumulative
        /// amount and the channel's deposit.
        amount: Amount,
    },
    /// Close a channel: the payer after expiry, or the payee at any time.
    CloseChannel {
        /// The channel.
        channel_id: Hash,
    },
    /// A provider commits the Merkle root and totals of one epoch's receipts.
    CommitReceipts {
        /// Epoch (height / `epoch_blocks`).
        epoch: u64,
        /// Merkle root of the epoch's receipt ids.
        root: Hash,
        /// Totals of those receipts.
        totals: ReceiptTotals,
        /// The same totals by model (distinct models, summing to `totals`), so demand per
        /// model is on the ledger.
        by_model: BoundedVec<ModelTotals, MAX_PROVIDER_MODELS>,
    },
    /// Challenge a receipt as fraudulent; a committee of verifiers votes on it.
    Challenge {
        /// The receipt challenged.
        receipt: SignedReceipt,
        /// Content id of the transcript.
        transcript: Cid,
        /// Bond put up by the challenger.
        bond: Amount,
    },
    /// A committee member's verdict on a dispute.
    DisputeVote {
        /// The dispute.
        dispute_id: Hash,
        /// Whether fraud was proven.
        fraud: bool,
    },
    /// Submit a governance proposal with a deposit.
    SubmitProposal {
        /// What the proposal does.
        kind: ProposalKind,
        /// Deposit, at least `proposal_deposit`.
        deposit: Amount,
    },
    /// Vote on a proposal with the signer's bonded stake.
    VoteProposal {
        /// The proposal.
        proposal_id: u64,
        /// The vote.
        vote: Vote,
    },
    /// Commit to an epoch's scores, during that epoch.
    CommitScores {
        /// Epoch.
        epoch: u64,
        /// [`score_commitment`] of the verifier, epoch, scores and salt.
        commitment: Hash,
    },
    /// Reveal committed scores, during the epoch after.
    RevealScores {
        /// Epoch.
        epoch: u64,
        /// Scores per provider, sorted by provider without duplicates.
        scores: BoundedVec<ProviderScore, MAX_SCORES>,
        /// Salt used in the commitment.
        salt: Hash,
    },
    /// Offer the signer as a consensus validator from the next epoch on, or update its
    /// address; the set is chosen by bonded stake at each epoch's last block.
    RegisterValidator {
        /// Where its peers reach it: `host:port` of its p2p listener.
        p2p: BoundedString<MAX_ENDPOINT_LEN>,
    },
    /// Withdraw the signer's validator offer; it leaves the set at the next epoch boundary.
    DeregisterValidator,
}

/// The commitment a verifier publishes in `CommitScores` for the scores it reveals later.
///
/// BLAKE3 over the canonical borsh of
/// `(domain tag "agora/scores/v1", verifier, epoch, scores, salt)`.
/// The verifier's account is inside, so another verifier cannot copy a commitment and later
/// reveal the same scores and salt as its own.
pub fn score_commitment(
    verifier: &AccountId,
    epoch: u64,
    scores: &[ProviderScore],
    salt: &Hash,
) -> Hash {
    let mut out = Vec::with_capacity(96 + scores.len() * 36);
    encode_into(domain::SCORES.tag(), &mut out);
    encode_into(verifier, &mut out);
    encode_into(&epoch, &mut out);
    encode_into(scores, &mut out);
    encode_into(salt, &mut out);
    Hash::of(&out)
}

impl SignedTx {
    /// Builds and signs a transaction for `chain_id`.
    pub fn sign(
        keypair: &Keypair,
        chain_id: &ChainId,
        nonce: u64,
        fee: Amount,
        body: TxBody,
    ) -> Self {
        let signer = keypair.account_id();
        let message = payload_bytes(&signer, nonce, fee, &body);
        let signature = keypair.sign(domain::TX, chain_id, &message);
        SignedTx {
            signer,
            nonce,
            fee,
            body,
            signature,
        }
    }

    /// The bytes the signature covers on `chain_id`.
    pub fn signing_bytes(&self, chain_id: &ChainId) -> Vec<u8> {
        let message = payload_bytes(&self.signer, self.nonce, self.fee, &self.body);
        signing_bytes(domain::TX, chain_id, &message)
    }

    /// Checks the signature for `chain_id`.
    pub fn verify(&self, chain_id: &ChainId) -> Result<(), keys::Error> {
        self.signer
            .verify_raw(&self.signing_bytes(chain_id), &self.signature)
    }

    /// The canonical encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decodes a transaction, refusing more than [`MAX_TX_BYTES`] and trailing bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, crate::encoding::DecodeError> {
        crate::encoding::decode(bytes)
    }

    /// BLAKE3 of the canonical encoding, signature included.
    pub fn hash(&self) -> Hash {
        Hash::of(&encode(self))
    }
}

impl Wire for SignedTx {
    const MAX_BYTES: usize = MAX_TX_BYTES;
}

/// The signed part of a transaction: everything but the signature, in encoding order.
fn payload_bytes(signer: &AccountId, nonce: u64, fee: Amount, body: &TxBody) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    encode_into(signer, &mut out);
    encode_into(&nonce, &mut out);
    encode_into(&fee, &mut out);
    encode_into(body, &mut out);
    out
}
