//! Binary Merkle trees over BLAKE3, with inclusion proofs.
//!
//! The tree is `rs_merkle`'s: leaves in order, pairs hashed upward, and an odd node at the end
//! of a layer promoted unchanged.
//! Leaves and inner nodes are hashed under different one-byte prefixes (`0x00`, `0x01`), so a
//! leaf can never pass for an inner node.
//! The root of zero leaves is [`EMPTY_ROOT`].
//!
//! # Why `rs_merkle`
//!
//! `commonware-storage`'s `bmt` module was the other candidate, but that crate's default
//! features pull in `commonware-runtime` (async) and its hasher trait lives in
//! `commonware-cryptography`, which the ledger must not depend on.
//! `rs_merkle` is synchronous, generic over the hasher (BLAKE3 here), uses integer arithmetic
//! only, and adds one small dependency (`sha2`, unused by us).

use borsh::{BorshDeserialize, BorshSerialize};

use crate::{bounded::BoundedVec, Hash};

/// Root of a tree with no leaves: 32 zero bytes.
pub const EMPTY_ROOT: Hash = Hash([0u8; 32]);

/// Deepest tree a proof may describe; 2^48 leaves is far beyond any state.
pub const MAX_PROOF_DEPTH: usize = 48;

/// An inclusion proof for one leaf.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct MerkleProof {
    /// Position of the leaf.
    pub index: u64,
    /// Number of leaves in the tree.
    pub total: u64,
    /// Sibling hashes from the leaf's layer upward.
    pub siblings: BoundedVec<Hash, MAX_PROOF_DEPTH>,
}

/// `rs_merkle` hasher: BLAKE3 with distinct prefixes for leaves and inner nodes.
#[derive(Clone)]
struct Blake3Nodes;

impl rs_merkle::Hasher for Blake3Nodes {
    type Hash = [u8; 32];

    fn hash(data: &[u8]) -> [u8; 32] {
        *blake3::hash(data).as_bytes()
    }

    fn concat_and_hash(left: &[u8; 32], right: Option<&[u8; 32]>) -> [u8; 32] {
        match right {
            Some(right) => {
                let mut hasher = blake3::Hasher::new();
                hasher.update(&[0x01]);
                hasher.update(left);
                hasher.update(right);
                *hasher.finalize().as_bytes()
            }
            None => *left,
        }
    }
}

/// The leaf hash of `data`: BLAKE3 of `0x00 || data`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&[0x00]);
    hasher.update(data);
    Hash(*hasher.finalize().as_bytes())
}

/// The leaf of a state entry: `leaf_hash(u32-le(len(key)) || key || BLAKE3(value))`.
///
/// The ledger's state root is the [`root`] over these leaves in ascending key order; this
/// lives here so that light clients can check state proofs with `agora-types` alone.
pub fn state_leaf(key: &[u8], value: &[u8]) -> Hash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&[0x00]);
    hasher.update(&(key.len() as u32).to_le_bytes());
    hasher.update(key);
    hasher.update(blake3::hash(value).as_bytes());
    Hash(*hasher.finalize().as_bytes())
}

/// Whether `proof` shows that the state entry `key` = `value` is under the state root `root`.
pub fn verify_state_entry(root: &Hash, key: &[u8], value: &[u8], proof: &MerkleProof) -> bool {
    verify(root, &state_leaf(key, value), proof)
}

/// The root over already-hashed leaves (see [`leaf_hash`]).
pub fn root(leaves: &[Hash]) -> Hash {
    if leaves.is_empty() {
        return EMPTY_ROOT;
    }
    let raw: Vec<[u8; 32]> = leaves.iter().map(|leaf| leaf.0).collect();
    let tree = rs_merkle::MerkleTree::<Blake3Nodes>::from_leaves(&raw);
    tree.root().map(Hash).unwrap_or(EMPTY_ROOT)
}

/// A proof that `leaves[index]` is in the tree, or `None` when `index` is out of range.
pub fn prove(leaves: &[Hash], index: usize) -> Option<MerkleProof> {
    if index >= leaves.len() {
        return None;
    }
    let raw: Vec<[u8; 32]> = leaves.iter().map(|leaf| leaf.0).collect();
    let tree = rs_merkle::MerkleTree::<Blake3Nodes>::from_leaves(&raw);
    let siblings: Vec<Hash> = tree
        .proof(&[index])
        .proof_hashes()
        .iter()
        .map(|hash| Hash(*hash))
        .collect();
    Some(MerkleProof {
        index: index as u64,
        total: leaves.len() as u64,
        siblings: BoundedVec::new(siblings).ok()?,
    })
}

/// Whether `proof` shows `leaf` under `root`.
pub fn verify(root: &Hash, leaf: &Hash, proof: &MerkleProof) -> bool {
    if proof.index >= proof.total || proof.total > (1u64 << MAX_PROOF_DEPTH) {
        return false;
    }
    let (Ok(index), Ok(total)) = (usize::try_from(proof.index), usize::try_from(proof.total))
    else {
        return false;
    };
    let siblings: Vec<[u8; 32]> = proof.siblings.iter().map(|hash| hash.0).collect();
    let proof = rs_merkle::MerkleProof::<Blake3Nodes>::new(siblings);
    proof.verify(root.0, &[index], &[leaf.0], total)
}
