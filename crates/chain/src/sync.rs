//! State sync: a new node starts from a peer's recent state instead of replaying from genesis.
//!
//! A peer serves its executed head and every state entry at one commit
//! (`GET /state/snapshot`, a borsh [`StateSnapshot`]). The new node checks that the
//! entries hash to the state root the snapshot claims before it writes anything, then
//! starts at that head. The claim itself is checked against the finalized chain by
//! execution: the first finalized block it executes must name the snapshot's block as
//! its parent and carry its state root in its header (the ledger refuses it
//! otherwise), so a peer that invents a state, or a head that is not on the chain,
//! makes the node stop with an error instead of running on it.
//!
//! Blocks and transactions below the snapshot's height are not fetched: such a node
//! answers state queries (with proofs) like any other, and `block`/`tx_status` from
//! its sync height on.

use agora_ledger::Storage as _;
use borsh::{BorshDeserialize, BorshSerialize};

use crate::store::{Entries, HeadRecord};

/// Largest snapshot a node accepts.
pub const MAX_SNAPSHOT_BYTES: usize = 1 << 30;

/// A peer's executed head and its full state.
#[derive(Debug, Clone, BorshSerialize, BorshDeserialize)]
pub struct StateSnapshot {
    /// The executed head the state belongs to.
    pub head: HeadRecord,
    /// Every state entry, in key order.
    pub entries: Entries,
}

/// Why a snapshot was refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bytes are not a snapshot.
    #[error("snapshot does not decode: {0}")]
    Decode(String),
    /// The entries do not hash to the claimed root.
    #[error("snapshot entries hash to {computed}, not the claimed state root {claimed}")]
    Root {
        /// Root of the entries received.
        computed: agora_types::Hash,
        /// Root the snapshot claims.
        claimed: agora_types::Hash,
    },
    /// The ledger could not read the entries.
    #[error("snapshot state: {0}")]
    Ledger(String),
}

impl StateSnapshot {
    /// Encodes the snapshot for the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        agora_types::encode(self)
    }

    /// Decodes a snapshot, bounded by [`MAX_SNAPSHOT_BYTES`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        agora_types::encoding::decode_bounded(bytes, MAX_SNAPSHOT_BYTES)
            .map_err(|err| Error::Decode(err.to_string()))
    }

    /// Checks that the entries hash to the claimed state root (and carry it).
    pub fn verify(&self) -> Result<(), Error> {
        let mut storage = agora_ledger::MemStorage::new();
        for (key, value) in &self.entries {
            storage
                .put(key, value)
                .map_err(|err| Error::Ledger(err.to_string()))?;
        }
        let computed = agora_ledger::proof::compute_state_root(&storage)
            .map_err(|err| Error::Ledger(err.to_string()))?;
        let stored = agora_ledger::proof::state_root(&storage)
            .map_err(|err| Error::Ledger(err.to_string()))?;
        let claimed = self.head.state_root;
        if computed != claimed || stored != claimed {
            return Err(Error::Root { computed, claimed });
        }
        Ok(())
    }
}

/// Largest [`Finality`] a node accepts (a certificate of up to 64 signatures is ~4 KiB).
pub const MAX_FINALITY_BYTES: usize = 64 * 1024;
/// Most blocks one `GET /sync/blocks` answer carries.
pub const MAX_SYNC_BLOCKS: u64 = 256;
/// Most bytes one `GET /sync/blocks` answer carries (always at least one block).
pub const MAX_SYNC_BYTES: usize = 8 << 20;

/// A finalized block's height with the consensus certificate that finalized it: what a
/// follower ([`crate::Config::follow`]) checks against its validator set before it
/// executes the chain of blocks that ends there.
///
/// `GET /sync/finality/{epoch}` serves, for the node's own epoch, the newest executed
/// block that carries its own certificate, and for an earlier epoch the block that ended
/// it. `GET /sync/blocks/{from}/{to}` serves executed blocks, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Finality {
    /// Validator-set epoch the certificate is from.
    pub epoch: u64,
    /// Height of the finalized block.
    pub height: u64,
    /// The encoded simplex finalization certificate.
    pub certificate: Vec<u8>,
}

impl Finality {
    /// Decodes a finality, bounded by [`MAX_FINALITY_BYTES`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        agora_types::encoding::decode_bounded(bytes, MAX_FINALITY_BYTES)
            .map_err(|err| Error::Decode(err.to_string()))
    }
}
