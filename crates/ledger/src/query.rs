//! Read-only queries for RPC: accounts, providers, models, proposals, channels, disputes,
//! epoch rewards, parameters.

use agora_types::{AccountId, Amount, Cid, Hash, Params, Vote};

use crate::{
    error::Error,
    state::{
        self, decode_record, keys, load_account, load_meta, load_stake, read, read_required,
        Channel, Dispute, DisputeStatus, EpochRewards, Meta, Model, Proposal, Provider,
        ReceiptCommitment, Stake, Supply, Unbonding, Validator, ValidatorSet, Verifier,
    },
    storage::Storage,
};

/// Everything about one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountState {
    /// Liquid balance.
    pub balance: Amount,
    /// Next nonce.
    pub nonce: u64,
    /// Bonded stake.
    pub bonded: Amount,
    /// Sum of unbonding entries.
    pub unbonding_total: Amount,
    /// Unbonding entries.
    pub unbonding: Vec<Unbonding>,
    /// Jailed while the height is below this.
    pub jailed_until: u64,
}

/// A provider with its stake and whether it may serve now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderView {
    /// The record.
    pub provider: Provider,
    /// Bonded stake of the operator.
    pub bonded: Amount,
    /// Jailed while the height is below this.
    pub jailed_until: u64,
    /// Registered, bonded at least `min_stake`, and not jailed.
    pub active: bool,
}

/// Chain metadata: height, last block, chain id.
pub fn meta(storage: &dyn Storage) -> Result<Meta, Error> {
    load_meta(storage)
}

/// Height of the last applied block (0 after genesis).
pub fn height(storage: &dyn Storage) -> Result<u64, Error> {
    Ok(load_meta(storage)?.height)
}

/// One account; an unknown account has zeros everywhere.
pub fn account(storage: &dyn Storage, id: &AccountId) -> Result<AccountState, Error> {
    let account = load_account(storage, id)?;
    let stake: Stake = load_stake(storage, id)?;
    let mut unbonding_total: Amount = 0;
    for entry in &stake.unbonding {
        unbonding_total = unbonding_total.saturating_add(entry.amount);
    }
    Ok(AccountState {
        balance: account.balance,
        nonce: account.nonce,
        bonded: stake.bonded,
        unbonding_total,
        unbonding: stake.unbonding,
        jailed_until: stake.jailed_until,
    })
}

fn view(
    storage: &dyn Storage,
    provider: Provider,
    params: &Params,
    height: u64,
) -> Result<ProviderView, Error> {
    let stake = load_stake(storage, &provider.operator)?;
    let active = stake.bonded >= params.min_stake && height >= stake.jailed_until;
    Ok(ProviderView {
        provider,
        bonded: stake.bonded,
        jailed_until: stake.jailed_until,
        active,
    })
}

/// One provider.
pub fn provider(
    storage: &dyn Storage,
    operator: &AccountId,
) -> Result<Option<ProviderView>, Error> {
    let Some(record) = read::<Provider>(storage, &keys::provider(operator))? else {
        return Ok(None);
    };
    let params = params(storage)?;
    let height = height(storage)?;
    Ok(Some(view(storage, record, &params, height)?))
}

/// Every provider, by operator id.
pub fn providers(storage: &dyn Storage) -> Result<Vec<ProviderView>, Error> {
    let params = params(storage)?;
    let height = height(storage)?;
    let mut out = Vec::new();
    for (key, value) in storage.scan_prefix(keys::PROVIDER_PREFIX)? {
        let record: Provider = decode_record(&key, &value)?;
        out.push(view(storage, record, &params, height)?);
    }
    Ok(out)
}

/// Whether `account` is a registered verifier.
pub fn is_verifier(storage: &dyn Storage, account: &AccountId) -> Result<bool, Error> {
    Ok(storage.get(&keys::verifier(account))?.is_some())
}

/// One model, active or retired.
pub fn model(storage: &dyn Storage, cid: &Cid) -> Result<Option<Model>, Error> {
    read(storage, &keys::model(cid))
}

/// Every model, by digest.
pub fn models(storage: &dyn Storage) -> Result<Vec<Model>, Error> {
    let mut out = Vec::new();
    for (key, value) in storage.scan_prefix(keys::MODEL_PREFIX)? {
        out.push(decode_record(&key, &value)?);
    }
    Ok(out)
}

/// One proposal.
pub fn proposal(storage: &dyn Storage, id: u64) -> Result<Option<Proposal>, Error> {
    read(storage, &keys::proposal(id))
}

/// Every proposal, by id.
pub fn proposals(storage: &dyn Storage) -> Result<Vec<Proposal>, Error> {
    let mut out = Vec::new();
    for (key, value) in storage.scan_prefix(keys::PROPOSAL_PREFIX)? {
        out.push(decode_record(&key, &value)?);
    }
    Ok(out)
}

/// Votes cast on a proposal, by voter.
pub fn votes(storage: &dyn Storage, id: u64) -> Result<Vec<(AccountId, Vote)>, Error> {
    let mut out = Vec::new();
    for (key, value) in storage.scan_prefix(&keys::votes(id))? {
        let voter: [u8; 32] = key
            .get(key.len().saturating_sub(32)..)
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| Error::Corrupt {
                key: state::hex_key(&key),
            })?;
        out.push((AccountId(voter), decode_record(&key, &value)?));
    }
    Ok(out)
}

/// Current parameters.
pub fn params(storage: &dyn Storage) -> Result<Params, Error> {
    read_required(storage, keys::PARAMS)
}

/// One channel.
pub fn channel(storage: &dyn Storage, id: &Hash) -> Result<Option<Channel>, Error> {
    read(storage, &keys::channel(id))
}

/// Every open channel, by id.
pub fn channels(storage: &dyn Storage) -> Result<Vec<Channel>, Error> {
    let mut out = Vec::new();
    for (key, value) in storage.scan_prefix(keys::CHANNEL_PREFIX)? {
        out.push(decode_record(&key, &value)?);
    }
    Ok(out)
}

/// Every registered verifier, by account.
pub fn verifiers(storage: &dyn Storage) -> Result<Vec<Verifier>, Error> {
    let mut out = Vec::new();
    for (key, value) in storage.scan_prefix(keys::VERIFIER_PREFIX)? {
        out.push(decode_record(&key, &value)?);
    }
    Ok(out)
}

/// A provider's receipt commitment for an epoch.
pub fn receipt_commitment(
    storage: &dyn Storage,
    provider: &AccountId,
    epoch: u64,
) -> Result<Option<ReceiptCommitment>, Error> {
    read(storage, &keys::receipts(provider, epoch))
}

/// Supply counters.
pub fn supply(storage: &dyn Storage) -> Result<Supply, Error> {
    state::load_supply(storage)
}

/// The members of the validator set in force.
pub fn validators(storage: &dyn Storage) -> Result<Vec<Validator>, Error> {
    Ok(validator_set(storage)?.members)
}

/// The validator set in force, with its epoch and floor.
pub fn validator_set(storage: &dyn Storage) -> Result<ValidatorSet, Error> {
    read_required(storage, keys::VALIDATORS)
}

/// Every registered validator, member of the set or not, by account.
pub fn registered_validators(storage: &dyn Storage) -> Result<Vec<Validator>, Error> {
    let mut out = Vec::new();
    for (key, _) in storage.scan_prefix(keys::VALIDATOR_PREFIX)? {
        if let Some(validator) = read(storage, &key)? {
            out.push(validator);
        }
    }
    Ok(out)
}

/// The adopted safety policy, if any.
pub fn safety_policy(storage: &dyn Storage) -> Result<Option<Cid>, Error> {
    read(storage, keys::SAFETY)
}

/// One dispute, open or resolved, by id (the challenged receipt's id).
pub fn dispute(storage: &dyn Storage, id: &Hash) -> Result<Option<Dispute>, Error> {
    read(storage, &keys::dispute(id))
}

/// Every dispute, by id; only the open ones when `open_only`.
pub fn disputes(storage: &dyn Storage, open_only: bool) -> Result<Vec<Dispute>, Error> {
    let mut out = Vec::new();
    for (key, value) in storage.scan_prefix(keys::DISPUTE_PREFIX)? {
        let dispute: Dispute = decode_record(&key, &value)?;
        if !open_only || dispute.status == DisputeStatus::Open {
            out.push(dispute);
        }
    }
    Ok(out)
}

/// How an epoch's emission was split, once its scores were combined.
pub fn epoch_rewards(storage: &dyn Storage, epoch: u64) -> Result<Option<EpochRewards>, Error> {
    read(storage, &keys::epoch_rewards(epoch))
}
