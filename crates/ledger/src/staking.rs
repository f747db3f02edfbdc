//! Bonding, unbonding, withdrawal, slashing and jail.

use agora_types::{amount, AccountId, Amount};

use crate::{
    bank,
    error::{Fail, TxError},
    events::Event,
    exec::Ctx,
    state::{load_stake, save_stake, update_supply, Unbonding},
    storage::Storage,
};

/// `TxBody::Bond`.
pub(crate) fn bond(ctx: &mut Ctx<'_>, who: &AccountId, value: Amount) -> Result<(), Fail> {
    if value == 0 {
        return Err(TxError::ZeroAmount.into());
    }
    bank::debit(ctx.store, who, value)?;
    let mut stake = load_stake(ctx.store, who)?;
    stake.bonded = amount::add(stake.bonded, value)?;
    save_stake(ctx.store, who, &stake)?;
    update_supply(ctx.store, |supply| {
        supply.liquid = amount::sub(supply.liquid, value)?;
        supply.bonded = amount::add(supply.bonded, value)?;
        Ok(())
    })?;
    ctx.events.push(Event::Bonded {
        account: *who,
        amount: value,
    });
    Ok(())
}

/// `TxBody::Unbond`.
pub(crate) fn unbond(ctx: &mut Ctx<'_>, who: &AccountId, value: Amount) -> Result<(), Fail> {
    if value == 0 {
        return Err(TxError::ZeroAmount.into());
    }
    let mut stake = load_stake(ctx.store, who)?;
    if stake.bonded < value {
        return Err(TxError::InsufficientStake {
            need: value,
            have: stake.bonded,
        }
        .into());
    }
    if stake.unbonding.len() as u64 >= ctx.params.max_unbonding_entries {
        return Err(TxError::TooManyUnbonding.into());
    }
    let release_height = ctx
        .height
        .checked_add(ctx.params.unbonding_blocks)
        .ok_or(TxError::Overflow)?;
    stake.bonded -= value;
    stake.unbonding.push(Unbonding {
        amount: value,
        release_height,
    });
    save_stake(ctx.store, who, &stake)?;
    update_supply(ctx.store, |supply| {
        supply.bonded = amount::sub(supply.bonded, value)?;
        supply.unbonding = amount::add(supply.unbonding, value)?;
        Ok(())
    })?;
    ctx.events.push(Event::Unbonding {
        account: *who,
        amount: value,
        release_height,
    });
    Ok(())
}

/// `TxBody::WithdrawUnbonded`: every entry whose release height has come.
pub(crate) fn withdraw(ctx: &mut Ctx<'_>, who: &AccountId) -> Result<(), Fail> {
    let mut stake = load_stake(ctx.store, who)?;
    let height = ctx.height;
    let (matured, waiting): (Vec<Unbonding>, Vec<Unbonding>) = stake
        .unbonding
        .iter()
        .partition(|entry| entry.release_height <= height);
    if matured.is_empty() {
        return Err(TxError::NothingToWithdraw.into());
    }
    let mut total: Amount = 0;
    for entry in &matured {
        total = amount::add(total, entry.amount)?;
    }
    stake.unbonding = waiting;
    save_stake(ctx.store, who, &stake)?;
    bank::credit(ctx.store, who, total)?;
    update_supply(ctx.store, |supply| {
        supply.unbonding = amount::sub(supply.unbonding, total)?;
        supply.liquid = amount::add(supply.liquid, total)?;
        Ok(())
    })?;
    ctx.events.push(Event::Withdrawn {
        account: *who,
        amount: total,
    });
    Ok(())
}

/// Moves `fraction_bps` of `who`'s bonded stake into escrow and jails it until `jail_until`.
///
/// Returns the amount seized; the caller must release or burn all of it in the same step.
pub(crate) fn seize(
    store: &mut dyn Storage,
    who: &AccountId,
    fraction_bps: u64,
    jail_until: u64,
) -> Result<Amount, Fail> {
    let mut stake = load_stake(store, who)?;
    let bps = u32::try_from(fraction_bps).unwrap_or(u32::MAX);
    let seized = amount::fraction_bps(stake.bonded, bps);
    stake.bonded -= seized;
    stake.jailed_until = stake.jailed_until.max(jail_until);
    save_stake(store, who, &stake)?;
    update_supply(store, |supply| {
        supply.bonded = amount::sub(supply.bonded, seized)?;
        supply.escrowed = amount::add(supply.escrowed, seized)?;
        Ok(())
    })?;
    Ok(seized)
}

/// Fails with [`TxError::Jailed`] while `who` is jailed at `height`.
pub(crate) fn ensure_not_jailed(
    store: &dyn Storage,
    who: &AccountId,
    height: u64,
) -> Result<(), Fail> {
    let stake = load_stake(store, who)?;
    if height < stake.jailed_until {
        return Err(TxError::Jailed {
            until: stake.jailed_until,
        }
        .into());
    }
    Ok(())
}

/// Fails with [`TxError::InsufficientStake`] when `who` has less than `min` bonded.
pub(crate) fn ensure_min_stake(
    store: &dyn Storage,
    who: &AccountId,
    min: Amount,
) -> Result<(), Fail> {
    let stake = load_stake(store, who)?;
    if stake.bonded < min {
        return Err(TxError::InsufficientStake {
            need: min,
            have: stake.bonded,
        }
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use agora_types::Keypair;

    use super::*;
    use crate::{
        state::{keys, load_supply, save_supply, Supply},
        storage::MemStorage,
    };

    #[test]
    fn seize_escrows_a_fraction_of_bonded_stake_and_jails() {
        let mut store = MemStorage::new();
        let who = Keypair::from_seed(b"slashed").account_id();
        let stake = crate::state::Stake {
            bonded: 1_000,
            ..Default::default()
        };
        save_stake(&mut store, &who, &stake).unwrap();
        let supply = Supply {
            bonded: 1_000,
            genesis: 1_000,
            ..Default::default()
        };
        save_supply(&mut store, &supply).unwrap();
        let seized = seize(&mut store, &who, 1_000, 50).unwrap();
        assert_eq!(seized, 100);
        let supply = load_supply(&store).unwrap();
        assert_eq!((supply.bonded, supply.escrowed), (900, 100));
        assert!(supply.is_conserved());
        bank::burn_escrow(&mut store, seized).unwrap();
        let stake = load_stake(&store, &who).unwrap();
        assert_eq!((stake.bonded, stake.jailed_until), (900, 50));
        let supply = load_supply(&store).unwrap();
        assert_eq!((supply.bonded, supply.burned), (900, 100));
        assert!(supply.is_conserved());
        assert!(ensure_not_jailed(&store, &who, 49).is_err());
        assert!(ensure_not_jailed(&store, &who, 50).is_ok());
        assert!(store.get(&keys::stake(&who)).unwrap().is_some());
    }
}
