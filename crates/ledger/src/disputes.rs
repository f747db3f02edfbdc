//! Challenges of receipts, committee votes, and slashing of proven fraud (DESIGN §4, §7).
//!
//! # Challenge
//!
//! A registered verifier with `min_stake` bonded and not jailed challenges a provider-signed
//! receipt of this chain, naming the transcript's CID and escrowing a bond of at least
//! `challenge_bond`.
//! Receipts are not stored on chain one by one, so "known" means: signed for this chain by a
//! registered provider whose signature verifies.
//! The dispute's id is the receipt's id, so a receipt is challenged at most once.
//!
//! # Committee
//!
//! `dispute_committee_size` verifiers are drawn without replacement, each with probability
//! proportional to its bonded stake, from the registered verifiers with at least `min_stake`
//! bonded and not jailed, excluding the challenger and the provider.
//! Draw `n` (from 0) takes the first 16 bytes of
//! `BLAKE3(BLAKE3("agora/committee/v1" || parent block hash || dispute id) || u64-le(n))` as a
//! little-endian `u128`, reduces it modulo the remaining pool's total stake, and picks the
//! verifier whose cumulative stake interval (in account order) holds it.
//! Each member's stake at the draw is recorded and is its voting weight.
//! With fewer eligible verifiers than the committee size, all of them sit; with none, the
//! challenge fails with `NoCommittee` and nothing is escrowed.
//!
//! # Verdict
//!
//! Members vote once each, from the opening block through `deadline_height = opened_height +
//! dispute_period_blocks`; the dispute is settled at the end of that block.
//! Fraud is found when `3 × fraud_stake ≥ 2 × committee_stake`, both being recorded stakes
//! (members that did not vote count against fraud), and the committee stake is not zero.
//!
//! On fraud, `slash_fraction_fraud_bps` of the provider's bonded stake *at settlement* is
//! seized and the provider is jailed until `height + jail_blocks`.
//! From the seized amount the payer is refunded `min(receipt charge, seized)`; the challenger
//! gets `challenger_reward_bps` of the remainder (rounded down) and its bond back; the rest is
//! burned.
//! Without fraud the bond is burned.

use agora_types::{amount, AccountId, Amount, Cid, Hash, Params, SignedReceipt};

use crate::{
    bank,
    error::{Error, Fail, TxError},
    events::Event,
    exec::Ctx,
    registry::active_verifier_stake,
    staking::{self, ensure_min_stake, ensure_not_jailed},
    state::{
        decode_record, hex_key, keys, load_meta, read, read_required, write, CommitteeMember,
        Dispute, DisputeOutcome, DisputeStatus, Verifier,
    },
    storage::Storage,
};

/// Tag of the committee seed, so it never collides with another use of the same hashes.
const COMMITTEE_SEED_TAG: &[u8] = b"agora/committee/v1";

/// `TxBody::Challenge`.
pub(crate) fn challenge(
    ctx: &mut Ctx<'_>,
    challenger: &AccountId,
    signed: &SignedReceipt,
    transcript: &Cid,
    bond: Amount,
) -> Result<(), Fail> {
    if ctx.store.get(&keys::verifier(challenger))?.is_none() {
        return Err(TxError::NotVerifier.into());
    }
    ensure_not_jailed(ctx.store, challenger, ctx.height)?;
    ensure_min_stake(ctx.store, challenger, ctx.params.min_stake)?;
    if bond < ctx.params.challenge_bond {
        return Err(TxError::BondTooLow {
            min: ctx.params.challenge_bond,
            got: bond,
        }
        .into());
    }
    let receipt = &signed.receipt;
    if receipt.chain_id != *ctx.chain_id {
        return Err(TxError::UnknownReceipt(receipt.chain_id.to_string()).into());
    }
    if signed.verify().is_err() {
        return Err(TxError::BadReceiptSignature.into());
    }
    let provider = receipt.provider;
    if ctx.store.get(&keys::provider(&provider))?.is_none() {
        return Err(TxError::UnknownProvider.into());
    }
    if provider == *challenger {
        return Err(TxError::SelfChallenge.into());
    }
    let id = receipt.id();
    let key = keys::dispute(&id);
    if ctx.store.get(&key)?.is_some() {
        return Err(TxError::AlreadyChallenged(id).into());
    }
    let parent = load_meta(ctx.store)?.last_block_hash;
    let committee = draw_committee(
        ctx.store,
        ctx.params,
        ctx.height,
        &committee_seed(&parent, &id),
        &[*challenger, provider],
    )?;
    if committee.is_empty() {
        return Err(TxError::NoCommittee.into());
    }
    let deadline_height = ctx
        .height
        .checked_add(ctx.params.dispute_period_blocks)
        .ok_or(TxError::Overflow)?;
    bank::escrow(ctx.store, challenger, bond)?;
    let dispute = Dispute {
        id,
        receipt: signed.clone(),
        transcript: *transcript,
        challenger: *challenger,
        bond,
        opened_height: ctx.height,
        deadline_height,
        committee,
        status: DisputeStatus::Open,
    };
    write(ctx.store, &key, &dispute)?;
    ctx.store
        .put(&keys::dispute_due(deadline_height, &id), &[])?;
    ctx.events.push(Event::DisputeOpened {
        id,
        challenger: *challenger,
        provider,
        committee: dispute.committee.iter().map(|m| m.account).collect(),
        deadline_height,
    });
    Ok(())
}

/// `TxBody::DisputeVote`: once per committee member, until the deadline.
pub(crate) fn vote(
    ctx: &mut Ctx<'_>,
    voter: &AccountId,
    id: &Hash,
    fraud: bool,
) -> Result<(), Fail> {
    let key = keys::dispute(id);
    let Some(mut dispute) = read::<Dispute>(ctx.store, &key)? else {
        return Err(TxError::DisputeNotFound(*id).into());
    };
    if dispute.status != DisputeStatus::Open || ctx.height > dispute.deadline_height {
        return Err(TxError::DisputeClosed {
            id: *id,
            deadline_height: dispute.deadline_height,
        }
        .into());
    }
    let Some(member) = dispute
        .committee
        .iter_mut()
        .find(|member| member.account == *voter)
    else {
        return Err(TxError::NotCommitteeMember(*id).into());
    };
    if member.vote.is_some() {
        return Err(TxError::AlreadyVoted(*id).into());
    }
    member.vote = Some(fraud);
    write(ctx.store, &key, &dispute)?;
    ctx.events.push(Event::DisputeVoted {
        id: *id,
        voter: *voter,
        fraud,
    });
    Ok(())
}

/// Settles every dispute whose deadline is `height`.
pub(crate) fn end_block(store: &mut dyn Storage, height: u64) -> Result<Vec<Event>, Error> {
    let mut events = Vec::new();
    for (key, _) in store.scan_prefix(&keys::disputes_due_at(height))? {
        let id_bytes: [u8; 32] = key
            .get(key.len().saturating_sub(32)..)
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| Error::Corrupt { key: hex_key(&key) })?;
        store.delete(&key)?;
        settle(store, height, &Hash(id_bytes), &mut events)?;
    }
    Ok(events)
}

/// Whether `fraud_stake` is at least two thirds of a non-zero `committee_stake`.
pub(crate) fn is_fraud(fraud_stake: Amount, committee_stake: Amount) -> bool {
    committee_stake > 0 && amount::mul_wide(fraud_stake, 3) >= amount::mul_wide(committee_stake, 2)
}

/// The seed of a dispute's committee draw.
fn committee_seed(parent: &Hash, id: &Hash) -> Hash {
    let mut bytes = Vec::with_capacity(COMMITTEE_SEED_TAG.len() + 64);
    bytes.extend_from_slice(COMMITTEE_SEED_TAG);
    bytes.extend_from_slice(&parent.0);
    bytes.extend_from_slice(&id.0);
    Hash::of(&bytes)
}

/// Draws up to `dispute_committee_size` active verifiers, weighted by bonded stake, without
/// replacement, skipping `excluded`.
fn draw_committee(
    store: &dyn Storage,
    params: &Params,
    height: u64,
    seed: &Hash,
    excluded: &[AccountId],
) -> Result<Vec<CommitteeMember>, Fail> {
    let mut pool: Vec<(AccountId, Amount)> = Vec::new();
    let mut total: Amount = 0;
    for (key, value) in store.scan_prefix(keys::VERIFIER_PREFIX)? {
        let verifier: Verifier = decode_record(&key, &value)?;
        if excluded.contains(&verifier.account) {
            continue;
        }
        let Some(stake) = active_verifier_stake(store, params, height, &verifier.account)? else {
            continue;
        };
        total = amount::add(total, stake)?;
        pool.push((verifier.account, stake));
    }
    let size = usize::try_from(params.dispute_committee_size).unwrap_or(usize::MAX);
    let mut committee = Vec::new();
    let mut counter: u64 = 0;
    while committee.len() < size && total > 0 {
        let mut bytes = Vec::with_capacity(40);
        bytes.extend_from_slice(&seed.0);
        bytes.extend_from_slice(&counter.to_le_bytes());
        let draw = Hash::of(&bytes);
        counter = counter.saturating_add(1);
        let mut low = [0u8; 16];
        low.copy_from_slice(&draw.0[..16]);
        let point = u128::from_le_bytes(low) % total;
        let mut reached: Amount = 0;
        let mut chosen = pool.len().saturating_sub(1);
        for (idx, (_, stake)) in pool.iter().enumerate() {
            reached = reached.saturating_add(*stake);
            if point < reached {
                chosen = idx;
                break;
            }
        }
        let (account, stake) = pool.remove(chosen);
        total -= stake;
        committee.push(CommitteeMember {
            account,
            stake,
            vote: None,
        });
    }
    Ok(committee)
}

fn settle(
    store: &mut dyn Storage,
    height: u64,
    id: &Hash,
    events: &mut Vec<Event>,
) -> Result<(), Error> {
    let key = keys::dispute(id);
    let mut dispute: Dispute =
        read(store, &key)?.ok_or_else(|| Error::Corrupt { key: hex_key(&key) })?;
    if dispute.status != DisputeStatus::Open {
        return Ok(());
    }
    let params: Params = read_required(store, keys::PARAMS)?;
    let mut committee_stake: Amount = 0;
    let mut fraud_stake: Amount = 0;
    for member in &dispute.committee {
        committee_stake = committee_stake.saturating_add(member.stake);
        if member.vote == Some(true) {
            fraud_stake = fraud_stake.saturating_add(member.stake);
        }
    }
    let fraud = is_fraud(fraud_stake, committee_stake);
    let mut outcome = DisputeOutcome {
        fraud,
        fraud_stake,
        committee_stake,
        slashed: 0,
        refunded: 0,
        reward: 0,
        bond_returned: 0,
        burned: 0,
    };
    let moved = if fraud {
        punish(store, height, &params, &dispute, &mut outcome)
    } else {
        outcome.burned = dispute.bond;
        bank::burn_escrow(store, dispute.bond)
    };
    match moved {
        Ok(()) => {}
        Err(Fail::Fatal(err)) => return Err(err),
        Err(Fail::Tx(err)) => {
            return Err(Error::SupplyMismatch(format!(
                "settling dispute {id} failed: {err}"
            )))
        }
    }
    dispute.status = DisputeStatus::Resolved(outcome);
    write(store, &key, &dispute)?;
    events.push(Event::DisputeResolved { id: *id, outcome });
    Ok(())
}

/// Seizes the provider's stake, refunds the payer, pays the challenger, burns the rest.
fn punish(
    store: &mut dyn Storage,
    height: u64,
    params: &Params,
    dispute: &Dispute,
    outcome: &mut DisputeOutcome,
) -> Result<(), Fail> {
    let receipt = &dispute.receipt.receipt;
    let jail_until = height.saturating_add(params.jail_blocks);
    let seized = staking::seize(
        store,
        &receipt.provider,
        params.slash_fraction_fraud_bps,
        jail_until,
    )?;
    // A charge too large to compute is more than any stake: refund everything seized.
    let charge = receipt.charge().unwrap_or(Amount::MAX);
    let refunded = charge.min(seized);
    let rest = seized - refunded;
    let bps = u32::try_from(params.challenger_reward_bps).unwrap_or(u32::MAX);
    let reward = amount::fraction_bps(rest, bps);
    let burned = rest - reward;
    bank::release(store, &receipt.payer, refunded)?;
    bank::release(
        store,
        &dispute.challenger,
        amount::add(reward, dispute.bond)?,
    )?;
    bank::burn_escrow(store, burned)?;
    outcome.slashed = seized;
    outcome.refunded = refunded;
    outcome.reward = reward;
    outcome.bond_returned = dispute.bond;
    outcome.burned = burned;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::is_fraud;

    #[test]
    fn fraud_needs_two_thirds_of_committee_stake() {
        assert!(is_fraud(2, 3));
        assert!(!is_fraud(1, 3));
        assert!(is_fraud(200, 300));
        assert!(!is_fraud(199, 300));
        assert!(!is_fraud(0, 0));
        assert!(is_fraud(u128::MAX, u128::MAX));
        assert!(!is_fraud(u128::MAX / 3 * 2 - 1, u128::MAX));
    }
}
