//! Balances, transfers, fees and escrow moves.
//!
//! Every move keeps the [`Supply`](crate::state::Supply) counters in step.

use agora_types::{AccountId, Amount};

use crate::{
    error::{Fail, TxError},
    events::Event,
    exec::Ctx,
    state::{load_account, save_account, update_supply},
    storage::Storage,
};

/// Takes `amount` from `id`'s balance; the caller accounts for where it goes.
pub(crate) fn debit(store: &mut dyn Storage, id: &AccountId, amount: Amount) -> Result<(), Fail> {
    let mut account = load_account(store, id)?;
    account.balance = account
        .balance
        .checked_sub(amount)
        .ok_or(TxError::InsufficientFunds {
            need: amount,
            have: account.balance,
        })?;
    save_account(store, id, &account)?;
    Ok(())
}

/// Adds `amount` to `id`'s balance; the caller accounts for where it came from.
pub(crate) fn credit(store: &mut dyn Storage, id: &AccountId, amount: Amount) -> Result<(), Fail> {
    let mut account = load_account(store, id)?;
    account.balance = account
        .balance
        .checked_add(amount)
        .ok_or(TxError::Overflow)?;
    save_account(store, id, &account)?;
    Ok(())
}

/// Moves `amount` from `id`'s balance into escrow (channels, deposits).
pub(crate) fn escrow(store: &mut dyn Storage, id: &AccountId, amount: Amount) -> Result<(), Fail> {
    debit(store, id, amount)?;
    update_supply(store, |supply| {
        supply.liquid = agora_types::amount::sub(supply.liquid, amount)?;
        supply.escrowed = agora_types::amount::add(supply.escrowed, amount)?;
        Ok(())
    })
}

/// Moves `amount` from escrow to `id`'s balance.
pub(crate) fn release(store: &mut dyn Storage, id: &AccountId, amount: Amount) -> Result<(), Fail> {
    credit(store, id, amount)?;
    update_supply(store, |supply| {
        supply.escrowed = agora_types::amount::sub(supply.escrowed, amount)?;
        supply.liquid = agora_types::amount::add(supply.liquid, amount)?;
        Ok(())
    })
}

/// Burns `amount` held in escrow.
pub(crate) fn burn_escrow(store: &mut dyn Storage, amount: Amount) -> Result<(), Fail> {
    update_supply(store, |supply| {
        supply.escrowed = agora_types::amount::sub(supply.escrowed, amount)?;
        supply.burned = agora_types::amount::add(supply.burned, amount)?;
        Ok(())
    })
}

/// `TxBody::Transfer`.
pub(crate) fn transfer(
    ctx: &mut Ctx<'_>,
    from: &AccountId,
    to: &AccountId,
    amount: Amount,
) -> Result<(), Fail> {
    if amount == 0 {
        return Err(TxError::ZeroAmount.into());
    }
    debit(ctx.store, from, amount)?;
    credit(ctx.store, to, amount)?;
    ctx.events.push(Event::Transfer {
        from: *from,
        to: *to,
        amount,
    });
    Ok(())
}
