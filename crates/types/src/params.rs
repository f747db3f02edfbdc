//! Ledger parameters: every number the ledger uses, with defaults, changeable by governance.

use borsh::{BorshDeserialize, BorshSerialize};

use crate::{amount::BPS_DENOMINATOR, Amount, UNITS_PER_AGR};

/// Every tunable number of the ledger.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Params {
    /// Smallest fee a transaction may pay.
    pub min_fee: Amount,
    /// Most transactions in one block.
    pub max_block_txs: u64,
    /// Blocks an unbonding entry waits before it can be withdrawn.
    pub unbonding_blocks: u64,
    /// Bonded stake a provider or verifier needs to register and stay active.
    pub min_stake: Amount,
    /// Smallest deposit a proposal may carry.
    pub proposal_deposit: Amount,
    /// Blocks a proposal is open for votes.
    pub voting_period_blocks: u64,
    /// Share of all bonded stake that must vote (yes, no or abstain), in basis points.
    pub quorum_bps: u64,
    /// Share of yes among yes and no needed to pass, in basis points (strictly more than).
    pub threshold_bps: u64,
    /// Blocks per epoch (receipts, scores, rewards).
    pub epoch_blocks: u64,
    /// Bonded stake slashed for proven fraud, in basis points.
    pub slash_fraction_fraud_bps: u64,
    /// Blocks a slashed account stays jailed.
    pub jail_blocks: u64,
    /// Bond a challenger puts up.
    pub challenge_bond: Amount,
    /// Tokens minted per epoch as rewards for providers and verifiers.
    pub emission_per_epoch: Amount,
    /// Most unbonding entries one account may have at once.
    pub max_unbonding_entries: u64,
    /// Verifiers drawn (by stake, without replacement) to vote on a dispute.
    pub dispute_committee_size: u64,
    /// Blocks a dispute is open for votes after the block that opened it.
    pub dispute_period_blocks: u64,
    /// Share of a fraud slash, after the payer's refund, paid to the challenger, in basis
    /// points; the rest is burned.
    pub challenger_reward_bps: u64,
    /// Share of each epoch's emission for verifiers, in basis points; providers get the rest.
    pub verifier_reward_bps: u64,
    /// Most consensus validators (at most 64, what the p2p layer is sized for); at each
    /// epoch's last block the registered validators with the most bonded stake (at least
    /// `min_stake`, not jailed) form the next set.
    pub max_validators: u64,
}

/// Why a parameter change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// No parameter has this name.
    #[error("unknown parameter {0}")]
    Unknown(String),
    /// The value is outside the parameter's range.
    #[error("value {value} is out of range for {name}")]
    OutOfRange {
        /// Parameter name.
        name: String,
        /// Refused value.
        value: u128,
    },
}

/// The names accepted by [`Params::set`], in a fixed order.
pub const PARAM_NAMES: &[&str] = &[
    "min_fee",
    "max_block_txs",
    "unbonding_blocks",
    "min_stake",
    "proposal_deposit",
    "voting_period_blocks",
    "quorum_bps",
    "threshold_bps",
    "epoch_blocks",
    "slash_fraction_fraud_bps",
    "jail_blocks",
    "challenge_bond",
    "emission_per_epoch",
    "max_unbonding_entries",
    "dispute_committee_size",
    "dispute_period_blocks",
    "challenger_reward_bps",
    "verifier_reward_bps",
    "max_validators",
];

impl Default for Params {
    /// Devnet defaults: small fees, short periods.
    fn default() -> Self {
        Params {
            min_fee: 1_000,
            max_block_txs: 10_000,
            unbonding_blocks: 100,
            min_stake: 100 * UNITS_PER_AGR,
            proposal_deposit: 10 * UNITS_PER_AGR,
            voting_period_blocks: 100,
            quorum_bps: 3_340,
            threshold_bps: 5_000,
            epoch_blocks: 100,
            slash_fraction_fraud_bps: 1_000,
            jail_blocks: 1_000,
            challenge_bond: 10 * UNITS_PER_AGR,
            emission_per_epoch: 0,
            max_unbonding_entries: 16,
            dispute_committee_size: 3,
            dispute_period_blocks: 20,
            challenger_reward_bps: 5_000,
            verifier_reward_bps: 2_000,
            max_validators: 32,
        }
    }
}

impl Params {
    /// Sets parameter `name` to `value`, checking its range; leaves `self` unchanged on error.
    pub fn set(&mut self, name: &str, value: u128) -> Result<(), Error> {
        let out_of_range = || Error::OutOfRange {
            name: name.to_string(),
            value,
        };
        let as_u64 = |min: u64, max: u64| -> Result<u64, Error> {
            let v = u64::try_from(value).map_err(|_| out_of_range())?;
            if v < min || v > max {
                return Err(out_of_range());
            }
            Ok(v)
        };
        let bps = u64::from(BPS_DENOMINATOR);
        match name {
            "min_fee" => self.min_fee = value,
            "max_block_txs" => self.max_block_txs = as_u64(1, 1_000_000)?,
            "unbonding_blocks" => self.unbonding_blocks = as_u64(0, u64::MAX / 4)?,
            "min_stake" => self.min_stake = value,
            "proposal_deposit" => self.proposal_deposit = value,
            "voting_period_blocks" => self.voting_period_blocks = as_u64(1, u64::MAX / 4)?,
            "quorum_bps" => self.quorum_bps = as_u64(0, bps)?,
            "threshold_bps" => self.threshold_bps = as_u64(0, bps)?,
            "epoch_blocks" => self.epoch_blocks = as_u64(1, u64::MAX / 4)?,
            "slash_fraction_fraud_bps" => self.slash_fraction_fraud_bps = as_u64(0, bps)?,
            "jail_blocks" => self.jail_blocks = as_u64(0, u64::MAX / 4)?,
            "challenge_bond" => self.challenge_bond = value,
            "emission_per_epoch" => self.emission_per_epoch = value,
            "max_unbonding_entries" => self.max_unbonding_entries = as_u64(1, 1_024)?,
            "dispute_committee_size" => self.dispute_committee_size = as_u64(1, 64)?,
            "dispute_period_blocks" => self.dispute_period_blocks = as_u64(1, u64::MAX / 4)?,
            "challenger_reward_bps" => self.challenger_reward_bps = as_u64(0, bps)?,
            "verifier_reward_bps" => self.verifier_reward_bps = as_u64(0, bps)?,
            "max_validators" => self.max_validators = as_u64(1, 64)?,
            _ => return Err(Error::Unknown(name.to_string())),
        }
        Ok(())
    }

    /// Checks every parameter's range, e.g. for a genesis file.
    pub fn validate(&self) -> Result<(), Error> {
        let mut copy = self.clone();
        for name in PARAM_NAMES {
            let value = self
                .get(name)
                .ok_or_else(|| Error::Unknown(name.to_string()))?;
            copy.set(name, value)?;
        }
        Ok(())
    }

    /// The value of parameter `name`.
    pub fn get(&self, name: &str) -> Option<u128> {
        let value = match name {
            "min_fee" => self.min_fee,
            "max_block_txs" => self.max_block_txs.into(),
            "unbonding_blocks" => self.unbonding_blocks.into(),
            "min_stake" => self.min_stake,
            "proposal_deposit" => self.proposal_deposit,
            "voting_period_blocks" => self.voting_period_blocks.into(),
            "quorum_bps" => self.quorum_bps.into(),
            "threshold_bps" => self.threshold_bps.into(),
            "epoch_blocks" => self.epoch_blocks.into(),
            "slash_fraction_fraud_bps" => self.slash_fraction_fraud_bps.into(),
            "jail_blocks" => self.jail_blocks.into(),
            "challenge_bond" => self.challenge_bond,
            "emission_per_epoch" => self.emission_per_epoch,
            "max_unbonding_entries" => self.max_unbonding_entries.into(),
            "dispute_committee_size" => self.dispute_committee_size.into(),
            "dispute_period_blocks" => self.dispute_period_blocks.into(),
            "challenger_reward_bps" => self.challenger_reward_bps.into(),
            "verifier_reward_bps" => self.verifier_reward_bps.into(),
            "max_validators" => self.max_validators.into(),
            _ => return None,
        };
        Some(value)
    }
}
