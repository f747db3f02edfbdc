//! The genesis state of a chain.
//!
//! This is the canonical (borsh) form; JSON or TOML genesis files are parsed by the binary
//! into this struct by hand.

use borsh::{BorshDeserialize, BorshSerialize};

use crate::{
    encoding::{encode, Wire, MAX_GENESIS_BYTES},
    keys::AccountId,
    params::Params,
    registry::{ModelInfo, ProviderInfo},
    signing::ChainId,
    Amount, Hash,
};

/// A provider registered at genesis.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct GenesisProvider {
    /// The provider's account.
    pub operator: AccountId,
    /// Stake bonded at genesis, at least `min_stake`.
    pub stake: Amount,
    /// Its record; every model must be in [`Genesis::models`].
    pub info: ProviderInfo,
}

/// A validator at genesis.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct GenesisValidator {
    /// The validator's account (its consensus key is the chain's concern).
    pub account: AccountId,
    /// Stake bonded at genesis.
    pub stake: Amount,
}

/// Everything the ledger starts from.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Genesis {
    /// The chain id every signature binds to.
    pub chain_id: ChainId,
    /// Genesis time, in milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// Liquid balances; an account appears at most once.
    pub accounts: Vec<(AccountId, Amount)>,
    /// The initial validator set, with bonded stake (added to any balance above).
    pub validators: Vec<GenesisValidator>,
    /// Initial parameters.
    pub params: Params,
    /// Models active from the start.
    pub models: Vec<ModelInfo>,
    /// Providers registered from the start, with bonded stake.
    pub providers: Vec<GenesisProvider>,
}

impl Genesis {
    /// BLAKE3 of the canonical encoding; the parent of block 1.
    pub fn hash(&self) -> Hash {
        Hash::of(&encode(self))
    }
}

impl Wire for Genesis {
    const MAX_BYTES: usize = MAX_GENESIS_BYTES;
}
