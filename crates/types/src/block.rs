//! Blocks and headers.

use borsh::{BorshDeserialize, BorshSerialize};

use crate::{
    encoding::{encode, Wire, MAX_BLOCK_BYTES, MAX_MESSAGE_BYTES},
    keys::AccountId,
    merkle,
    tx::SignedTx,
    Hash,
};

/// A block header.
///
/// # What `state_root` commits to
///
/// `state_root` is the ledger's state root **before** this block's transactions: the root
/// after applying the parent block (for height 1, the root returned by genesis
/// initialisation).
/// A proposer therefore only needs the parent's outcome, and a node that executes after
/// finalization can still check every header.
/// The effect of block `h` is committed by the header of block `h + 1`.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Header {
    /// Height; the first block after genesis is 1.
    pub height: u64,
    /// [`Header::hash`] of the parent; for height 1, the genesis hash.
    pub parent: Hash,
    /// Block time from consensus, in milliseconds since the Unix epoch; never decreases.
    pub timestamp_ms: u64,
    /// Validator that proposed the block.
    pub proposer: AccountId,
    /// [`tx_root`] of the block's transactions.
    pub tx_root: Hash,
    /// Ledger state root before this block's transactions (see above).
    pub state_root: Hash,
}

/// A header and its transactions.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Block {
    /// The header.
    pub header: Header,
    /// Transactions in execution order.
    pub txs: Vec<SignedTx>,
}

impl Header {
    /// BLAKE3 of the canonical header encoding: the block's id.
    pub fn hash(&self) -> Hash {
        Hash::of(&encode(self))
    }
}

impl Block {
    /// The block's id, its header's hash.
    pub fn hash(&self) -> Hash {
        self.header.hash()
    }
}

/// Merkle root over the transactions' hashes, in order ([`merkle::EMPTY_ROOT`] when empty).
pub fn tx_root(txs: &[SignedTx]) -> Hash {
    let leaves: Vec<Hash> = txs
        .iter()
        .map(|tx| merkle::leaf_hash(&tx.hash().0))
        .collect();
    merkle::root(&leaves)
}

impl Wire for Header {
    const MAX_BYTES: usize = MAX_MESSAGE_BYTES;
}

impl Wire for Block {
    const MAX_BYTES: usize = MAX_BLOCK_BYTES;
}
