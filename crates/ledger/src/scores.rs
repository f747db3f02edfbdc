//! Verifier quality scores (commit, then reveal) and the epoch's emission (DESIGN §4, §7).
//!
//! # Windows
//!
//! Epoch `e` is heights `[e × epoch_blocks, (e + 1) × epoch_blocks)`, as for receipt
//! commitments.
//! `CommitScores { epoch: e }` is accepted only during epoch `e`, from a registered verifier
//! with `min_stake` bonded and not jailed; a later commitment in the same epoch replaces the
//! earlier one.
//! `RevealScores { epoch: e }` is accepted only during epoch `e + 1`, once, and must hash to
//! the commitment ([`agora_types::score_commitment`], which binds the verifier's account);
//! scores are sorted by provider without duplicates and each is at most 1,000,000 ppm.
//! A verifier that did not commit during epoch `e` cannot reveal for it, so it cannot copy
//! scores revealed by others.
//!
//! # Combining (Yuma-style)
//!
//! At the end of the last block of epoch `e + 1`, epoch `e`'s reveals are combined.
//! Each revealing verifier weighs its bonded stake at that moment; one that is then jailed or
//! below `min_stake` is left out.
//! For each provider scored by anyone (a verifier that did not score it counts as 0), the
//! consensus `C_j` is the highest score `x` such that the verifiers scoring it at least `x`
//! hold at least half the revealing stake (`2 × stake ≥ total`): a stake-weighted upper
//! median.
//! A verifier's agreement is `Σ_j min(s_ij, C_j) / Σ_j max(s_ij, C_j)` in ppm (1,000,000 when
//! both sums are zero), so scoring above or below consensus both lower it.
//!
//! # Emission
//!
//! `emission_per_epoch` is split: verifiers get `verifier_reward_bps` of it, providers the
//! rest.
//! A provider's weight is `C_j × tokens_out` from its receipt commitment for epoch `e` (zero
//! when it has none, is not registered, or is jailed at settlement).
//! A verifier's weight is `stake × agreement / 1,000,000`.
//! Each side's pool is divided in proportion to weight, rounded down (exact 256-bit
//! arithmetic); remainders and the pool of a side whose weights are all zero are not minted.
//! Rewards are minted to liquid balances and recorded as [`EpochRewards`].
//! The raw commitments and reveals of epoch `e` are deleted once combined.

use std::collections::BTreeSet;

use agora_types::{amount, score_commitment, AccountId, Amount, Hash, Params, ProviderScore};

use crate::{
    bank,
    error::{Error, Fail, TxError},
    events::Event,
    exec::Ctx,
    registry::active_verifier_stake,
    staking::{ensure_min_stake, ensure_not_jailed},
    state::{
        decode_record, hex_key, keys, load_stake, read, read_required, update_supply, write,
        EpochRewards, ProviderReward, ReceiptCommitment, ScoreCommitment, ScoreReveal,
        VerifierReward,
    },
    storage::Storage,
};

/// A perfect score, and the scale of agreement.
pub(crate) const PPM: u32 = 1_000_000;

/// `TxBody::CommitScores`.
pub(crate) fn commit(
    ctx: &mut Ctx<'_>,
    verifier: &AccountId,
    epoch: u64,
    commitment: &Hash,
) -> Result<(), Fail> {
    if ctx.store.get(&keys::verifier(verifier))?.is_none() {
        return Err(TxError::NotVerifier.into());
    }
    ensure_not_jailed(ctx.store, verifier, ctx.height)?;
    ensure_min_stake(ctx.store, verifier, ctx.params.min_stake)?;
    let current = ctx.height / ctx.params.epoch_blocks.max(1);
    if epoch != current {
        return Err(TxError::CommitWindow { epoch, current }.into());
    }
    let record = ScoreCommitment {
        commitment: *commitment,
        height: ctx.height,
    };
    write(ctx.store, &keys::score_commit(epoch, verifier), &record)?;
    ctx.events.push(Event::ScoresCommitted {
        verifier: *verifier,
        epoch,
    });
    Ok(())
}

/// `TxBody::RevealScores`.
pub(crate) fn reveal(
    ctx: &mut Ctx<'_>,
    verifier: &AccountId,
    epoch: u64,
    scores: &[ProviderScore],
    salt: &Hash,
) -> Result<(), Fail> {
    if ctx.store.get(&keys::verifier(verifier))?.is_none() {
        return Err(TxError::NotVerifier.into());
    }
    let blocks = ctx.params.epoch_blocks.max(1);
    let opens = epoch.checked_add(1).and_then(|e| e.checked_mul(blocks));
    let closes = opens.and_then(|h| h.checked_add(blocks - 1));
    let (Some(opens), Some(closes)) = (opens, closes) else {
        return Err(TxError::RevealTooEarly {
            epoch,
            opens: u64::MAX,
            closes: u64::MAX,
        }
        .into());
    };
    if ctx.height < opens {
        return Err(TxError::RevealTooEarly {
            epoch,
            opens,
            closes,
        }
        .into());
    }
    if ctx.height > closes {
        return Err(TxError::RevealTooLate {
            epoch,
            opens,
            closes,
        }
        .into());
    }
    let Some(committed) = read::<ScoreCommitment>(ctx.store, &keys::score_commit(epoch, verifier))?
    else {
        return Err(TxError::NoCommitment(epoch).into());
    };
    let key = keys::score_reveal(epoch, verifier);
    if ctx.store.get(&key)?.is_some() {
        return Err(TxError::AlreadyRevealed(epoch).into());
    }
    validate(scores)?;
    if score_commitment(verifier, epoch, scores, salt) != committed.commitment {
        return Err(TxError::CommitmentMismatch(epoch).into());
    }
    let record = ScoreReveal {
        scores: scores.to_vec(),
        height: ctx.height,
    };
    write(ctx.store, &key, &record)?;
    ctx.events.push(Event::ScoresRevealed {
        verifier: *verifier,
        epoch,
    });
    Ok(())
}

/// At the last block of an epoch, combines the previous epoch's reveals and mints its
/// emission.
pub(crate) fn end_block(store: &mut dyn Storage, height: u64) -> Result<Vec<Event>, Error> {
    let params: Params = read_required(store, keys::PARAMS)?;
    let blocks = params.epoch_blocks.max(1);
    if height.checked_add(1).is_none_or(|next| next % blocks != 0) {
        return Ok(Vec::new());
    }
    let current = height / blocks;
    let Some(epoch) = current.checked_sub(1) else {
        return Ok(Vec::new());
    };
    settle(store, &params, height, epoch)
}

/// Consensus per provider: the stake-weighted upper median of its scores.
///
/// `scores[i]` are verifier `i`'s scores, aligned with `providers`; `stakes[i]` its weight.
pub(crate) fn consensus(scores: &[Vec<u32>], stakes: &[Amount], providers: usize) -> Vec<u32> {
    let total: Amount = stakes.iter().fold(0, |acc, s| acc.saturating_add(*s));
    let mut out = Vec::with_capacity(providers);
    for j in 0..providers {
        let mut levels: Vec<(u32, Amount)> = scores
            .iter()
            .zip(stakes)
            .map(|(row, stake)| (row.get(j).copied().unwrap_or(0), *stake))
            .collect();
        levels.sort_by_key(|level| std::cmp::Reverse(level.0));
        let mut supported: Amount = 0;
        let mut level = 0;
        for (score, stake) in levels {
            supported = supported.saturating_add(stake);
            // At least half: 2 × supported ≥ total, written without overflow.
            if supported >= total.saturating_sub(supported) {
                level = score;
                break;
            }
        }
        out.push(level);
    }
    out
}

/// Agreement of one verifier's scores with consensus, in ppm.
pub(crate) fn agreement(row: &[u32], consensus: &[u32]) -> u32 {
    let (mut low, mut high) = (0u128, 0u128);
    for (score, level) in row.iter().zip(consensus) {
        low += u128::from(*score.min(level));
        high += u128::from(*score.max(level));
    }
    if high == 0 {
        return PPM;
    }
    // low ≤ high, so the quotient is at most PPM.
    u32::try_from(low * u128::from(PPM) / high).unwrap_or(PPM)
}

/// Splits `pool` in proportion to `weights`, rounded down.
///
/// When the weights' sum overflows a `u128`, every weight is halved (rounding down) until it
/// fits, which keeps the proportions to within one part in 2^127.
pub(crate) fn split(pool: Amount, weights: &[Amount]) -> Vec<Amount> {
    let mut shift = 0;
    let total = loop {
        let sum = weights
            .iter()
            .try_fold(0u128, |acc, w| acc.checked_add(w >> shift));
        match sum {
            Some(total) => break total,
            None => shift += 1,
        }
    };
    weights
        .iter()
        .map(|w| amount::mul_div(pool, w >> shift, total).unwrap_or(0))
        .collect()
}

fn validate(scores: &[ProviderScore]) -> Result<(), Fail> {
    for pair in scores.windows(2) {
        if pair[0].provider >= pair[1].provider {
            return Err(TxError::InvalidScores(
                "scores must be sorted by provider without duplicates",
            )
            .into());
        }
    }
    if scores.iter().any(|s| s.score_ppm > PPM) {
        return Err(TxError::InvalidScores("a score exceeds 1000000 ppm").into());
    }
    Ok(())
}

fn account_suffix(key: &[u8]) -> Result<AccountId, Error> {
    key.get(key.len().saturating_sub(32)..)
        .and_then(|bytes| bytes.try_into().ok())
        .map(AccountId)
        .ok_or_else(|| Error::Corrupt { key: hex_key(key) })
}

fn settle(
    store: &mut dyn Storage,
    params: &Params,
    height: u64,
    epoch: u64,
) -> Result<Vec<Event>, Error> {
    let commits = store.scan_prefix(&keys::score_commits(epoch))?;
    let reveals = store.scan_prefix(&keys::score_reveals(epoch))?;
    if commits.is_empty() && reveals.is_empty() {
        return Ok(Vec::new());
    }
    if store.get(&keys::epoch_rewards(epoch))?.is_some() {
        // Already combined (only possible after `epoch_blocks` changed).
        return Ok(Vec::new());
    }
    for (key, _) in &commits {
        store.delete(key)?;
    }

    let mut verifiers: Vec<(AccountId, Amount, Vec<ProviderScore>)> = Vec::new();
    for (key, value) in &reveals {
        store.delete(key)?;
        let verifier = account_suffix(key)?;
        let reveal: ScoreReveal = decode_record(key, value)?;
        if let Some(stake) = active_verifier_stake(store, params, height, &verifier)? {
            verifiers.push((verifier, stake, reveal.scores));
        }
    }
    let providers: Vec<AccountId> = verifiers
        .iter()
        .flat_map(|(_, _, scores)| scores.iter().map(|s| s.provider))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let matrix: Vec<Vec<u32>> = verifiers
        .iter()
        .map(|(_, _, scores)| {
            providers
                .iter()
                .map(|p| {
                    scores
                        .binary_search_by(|s| s.provider.cmp(p))
                        .ok()
                        .and_then(|idx| scores.get(idx))
                        .map_or(0, |s| s.score_ppm)
                })
                .collect()
        })
        .collect();
    let stakes: Vec<Amount> = verifiers.iter().map(|(_, stake, _)| *stake).collect();
    let levels = consensus(&matrix, &stakes, providers.len());

    let verifier_bps = u32::try_from(params.verifier_reward_bps).unwrap_or(u32::MAX);
    let verifier_pool = amount::fraction_bps(params.emission_per_epoch, verifier_bps);
    let provider_pool = params.emission_per_epoch - verifier_pool;

    let mut tokens = Vec::with_capacity(providers.len());
    let mut provider_weights = Vec::with_capacity(providers.len());
    for (provider, level) in providers.iter().zip(&levels) {
        let served = read::<ReceiptCommitment>(store, &keys::receipts(provider, epoch))?
            .map_or(0, |c| c.totals.tokens_out);
        let registered = store.get(&keys::provider(provider))?.is_some();
        let free = height >= load_stake(store, provider)?.jailed_until;
        let weight = if registered && free {
            Amount::from(*level) * Amount::from(served)
        } else {
            0
        };
        tokens.push(served);
        provider_weights.push(weight);
    }
    let provider_rewards = split(provider_pool, &provider_weights);

    let agreements: Vec<u32> = matrix.iter().map(|row| agreement(row, &levels)).collect();
    let verifier_weights: Vec<Amount> = stakes
        .iter()
        .zip(&agreements)
        .map(|(stake, agree)| amount::mul_div(*stake, Amount::from(*agree), Amount::from(PPM)))
        .map(|w| w.unwrap_or(0))
        .collect();
    let verifier_rewards = split(verifier_pool, &verifier_weights);

    let mut record = EpochRewards {
        epoch,
        height,
        providers: Vec::with_capacity(providers.len()),
        verifiers: Vec::with_capacity(verifiers.len()),
        minted: 0,
    };
    let mut to_providers: Amount = 0;
    for (idx, provider) in providers.iter().enumerate() {
        let reward = provider_rewards.get(idx).copied().unwrap_or(0);
        to_providers = mint(store, provider, reward, to_providers)?;
        record.providers.push(ProviderReward {
            provider: *provider,
            consensus_ppm: levels.get(idx).copied().unwrap_or(0),
            tokens: tokens.get(idx).copied().unwrap_or(0),
            reward,
        });
    }
    let mut to_verifiers: Amount = 0;
    for (idx, (verifier, stake, _)) in verifiers.iter().enumerate() {
        let reward = verifier_rewards.get(idx).copied().unwrap_or(0);
        to_verifiers = mint(store, verifier, reward, to_verifiers)?;
        record.verifiers.push(VerifierReward {
            verifier: *verifier,
            stake: *stake,
            agreement_ppm: agreements.get(idx).copied().unwrap_or(0),
            reward,
        });
    }
    record.minted = to_providers.saturating_add(to_verifiers);
    write(store, &keys::epoch_rewards(epoch), &record)?;
    Ok(vec![Event::EpochRewarded {
        epoch,
        providers: to_providers,
        verifiers: to_verifiers,
    }])
}

/// Mints `reward` to `who`'s balance and returns `so_far + reward`.
fn mint(
    store: &mut dyn Storage,
    who: &AccountId,
    reward: Amount,
    so_far: Amount,
) -> Result<Amount, Error> {
    if reward == 0 {
        return Ok(so_far);
    }
    let minted = bank::credit(store, who, reward).and_then(|()| {
        update_supply(store, |supply| {
            supply.liquid = amount::add(supply.liquid, reward)?;
            supply.minted = amount::add(supply.minted, reward)?;
            Ok(())
        })
    });
    match minted {
        Ok(()) => Ok(so_far.saturating_add(reward)),
        Err(Fail::Fatal(err)) => Err(err),
        Err(Fail::Tx(err)) => Err(Error::SupplyMismatch(format!(
            "minting an epoch reward failed: {err}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consensus_is_the_stake_weighted_upper_median() {
        // Three equal verifiers at 0.5, one at 1.0: 0.5 holds 4/4 ≥ half, 1.0 only 1/4.
        let rows = vec![vec![500_000], vec![500_000], vec![500_000], vec![1_000_000]];
        assert_eq!(consensus(&rows, &[1, 1, 1, 1], 1), vec![500_000]);
        // Exactly half the stake at the higher level is enough.
        let rows = vec![vec![900_000], vec![100_000]];
        assert_eq!(consensus(&rows, &[5, 5], 1), vec![900_000]);
        // Less than half is not.
        assert_eq!(consensus(&rows, &[4, 6], 1), vec![100_000]);
        // A verifier that did not score a provider counts as 0.
        let rows = vec![vec![800_000], vec![0], vec![0]];
        assert_eq!(consensus(&rows, &[1, 1, 1], 1), vec![0]);
        assert_eq!(consensus(&[], &[], 2), vec![0, 0]);
    }

    #[test]
    fn agreement_penalizes_both_directions() {
        assert_eq!(agreement(&[500_000, 800_000], &[500_000, 800_000]), PPM);
        // (0.5 + 0.8) / (1.0 + 0.8)
        assert_eq!(
            agreement(&[1_000_000, 800_000], &[500_000, 800_000]),
            722_222
        );
        // (0.2 + 0.8) / (0.5 + 0.8)
        assert_eq!(agreement(&[200_000, 800_000], &[500_000, 800_000]), 769_230);
        assert_eq!(agreement(&[0], &[0]), PPM);
    }

    #[test]
    fn split_is_proportional_and_never_exceeds_the_pool() {
        assert_eq!(split(100, &[1, 1, 1]), vec![33, 33, 33]);
        assert_eq!(split(100, &[0, 0]), vec![0, 0]);
        let huge = split(Amount::MAX, &[Amount::MAX, Amount::MAX]);
        assert_eq!(huge, vec![Amount::MAX / 2, Amount::MAX / 2]);
    }
}
