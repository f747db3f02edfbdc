//! The state root, inclusion proofs, and the supply audit.
//!
//! # What the root commits to
//!
//! The state root is the binary Merkle root ([`agora_types::merkle`]) over every stored entry
//! except node-local `~` keys, in ascending key order.
//! Each leaf is [`agora_types::merkle::state_leaf`]:
//! `leaf_hash(u32-le(len(key)) || key || BLAKE3(value))`.
//!
//! # Cost
//!
//! The root is recomputed from a full scan after every block: O(number of entries) BLAKE3
//! hashes, a few milliseconds for tens of thousands of entries.
//! A proof also rebuilds the tree.
//! This is fine while state is small; an incremental tree replaces it when state grows.

use agora_types::{
    merkle::{self, MerkleProof},
    Hash,
};

use crate::{
    error::Error,
    state::{self, decode_record, keys, Account, Channel, Stake, Supply},
    storage::{Entries, Storage},
};

/// An inclusion proof of one entry under a state root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateProof {
    /// The entry's key.
    pub key: Vec<u8>,
    /// The entry's value (the record's canonical encoding).
    pub value: Vec<u8>,
    /// The Merkle path.
    pub merkle: MerkleProof,
}

fn leaf(key: &[u8], value: &[u8]) -> Hash {
    merkle::state_leaf(key, value)
}

fn leaves(storage: &dyn Storage) -> Result<Entries, Error> {
    let mut entries = storage.scan_prefix(&[])?;
    entries.retain(|(key, _)| key.first() != Some(&keys::LOCAL_PREFIX));
    Ok(entries)
}

/// Recomputes the state root from every entry.
pub fn compute_state_root(storage: &dyn Storage) -> Result<Hash, Error> {
    let entries = leaves(storage)?;
    let hashes: Vec<Hash> = entries.iter().map(|(k, v)| leaf(k, v)).collect();
    Ok(merkle::root(&hashes))
}

/// The state root stored by the last genesis or block: the root the next header must carry.
pub fn state_root(storage: &dyn Storage) -> Result<Hash, Error> {
    let Some(bytes) = storage.get(keys::STATE_ROOT)? else {
        return Err(Error::NotInitialized);
    };
    let array: [u8; 32] = bytes.as_slice().try_into().map_err(|_| Error::Corrupt {
        key: state::hex_key(keys::STATE_ROOT),
    })?;
    Ok(Hash(array))
}

/// An inclusion proof of the entry under `key`, or `None` when there is no such entry.
///
/// Use [`keys::account`], [`keys::provider`] and friends to build keys.
pub fn prove(storage: &dyn Storage, key: &[u8]) -> Result<Option<StateProof>, Error> {
    let entries = leaves(storage)?;
    let Ok(index) = entries.binary_search_by(|(k, _)| k.as_slice().cmp(key)) else {
        return Ok(None);
    };
    let hashes: Vec<Hash> = entries.iter().map(|(k, v)| leaf(k, v)).collect();
    let Some(merkle) = merkle::prove(&hashes, index) else {
        return Ok(None);
    };
    Ok(Some(StateProof {
        key: key.to_vec(),
        value: entries[index].1.clone(),
        merkle,
    }))
}

/// Whether `proof` shows that `key` holds `value` under `root`.
///
/// The same check as [`agora_types::merkle::verify_state_entry`], which clients without the
/// ledger can use.
pub fn verify(root: &Hash, key: &[u8], value: &[u8], proof: &MerkleProof) -> bool {
    merkle::verify_state_entry(root, key, value, proof)
}

/// Recounts every balance, stake, channel, deposit and challenge bond and checks them against the supply
/// counters and the conservation law `total + burned == genesis + minted`.
pub fn audit_supply(storage: &dyn Storage) -> Result<Supply, Error> {
    let supply = state::load_supply(storage)?;
    let mismatch = |what: &str| Error::SupplyMismatch(what.to_string());
    let mut liquid: u128 = 0;
    for (key, value) in storage.scan_prefix(keys::ACCOUNT_PREFIX)? {
        let account: Account = decode_record(&key, &value)?;
        liquid = liquid
            .checked_add(account.balance)
            .ok_or_else(|| mismatch("balances overflow"))?;
    }
    let (mut bonded, mut unbonding) = (0u128, 0u128);
    for (key, value) in storage.scan_prefix(keys::STAKE_PREFIX)? {
        let stake: Stake = decode_record(&key, &value)?;
        bonded = bonded
            .checked_add(stake.bonded)
            .ok_or_else(|| mismatch("bonded overflow"))?;
        for entry in &stake.unbonding {
            unbonding = unbonding
                .checked_add(entry.amount)
                .ok_or_else(|| mismatch("unbonding overflow"))?;
        }
    }
    let mut escrowed: u128 = 0;
    for (key, value) in storage.scan_prefix(keys::CHANNEL_PREFIX)? {
        let channel: Channel = decode_record(&key, &value)?;
        let held = channel
            .deposit
            .checked_sub(channel.redeemed)
            .ok_or_else(|| mismatch("channel redeemed more than its deposit"))?;
        escrowed = escrowed
            .checked_add(held)
            .ok_or_else(|| mismatch("escrow overflow"))?;
    }
    for (key, value) in storage.scan_prefix(keys::PROPOSAL_PREFIX)? {
        let proposal: state::Proposal = decode_record(&key, &value)?;
        if proposal.status == state::ProposalStatus::Voting {
            escrowed = escrowed
                .checked_add(proposal.deposit)
                .ok_or_else(|| mismatch("escrow overflow"))?;
        }
    }
    for (key, value) in storage.scan_prefix(keys::DISPUTE_PREFIX)? {
        let dispute: state::Dispute = decode_record(&key, &value)?;
        if dispute.status == state::DisputeStatus::Open {
            escrowed = escrowed
                .checked_add(dispute.bond)
                .ok_or_else(|| mismatch("escrow overflow"))?;
        }
    }
    if liquid != supply.liquid {
        return Err(mismatch(&format!(
            "balances {liquid} != counter {}",
            supply.liquid
        )));
    }
    if bonded != supply.bonded {
        return Err(mismatch(&format!(
            "bonded {bonded} != counter {}",
            supply.bonded
        )));
    }
    if unbonding != supply.unbonding {
        return Err(mismatch(&format!(
            "unbonding {unbonding} != counter {}",
            supply.unbonding
        )));
    }
    if escrowed != supply.escrowed {
        return Err(mismatch(&format!(
            "escrowed {escrowed} != counter {}",
            supply.escrowed
        )));
    }
    if !supply.is_conserved() {
        return Err(mismatch("total + burned != genesis + minted"));
    }
    Ok(supply)
}
