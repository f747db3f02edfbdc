//! Unidirectional payment channels, payer to payee.
//!
//! The payer escrows a deposit.
//! A voucher authorizes payment up to its cumulative amount. The payee redeems the payer's
//! latest voucher with a claim (a cumulative total, at most the voucher's) and is paid the
//! increase of the claim over what was already redeemed; what it does not claim stays in
//! escrow for the payer.
//! The payer closes after expiry and gets the rest back; the payee may close at any time,
//! returning the rest to the payer.

use agora_types::{amount, encoding::encode, AccountId, Amount, Hash, SignedVoucher};

use crate::{
    bank,
    error::{Fail, TxError},
    events::Event,
    exec::Ctx,
    state::{keys, read, write, Channel},
};

/// The id of the channel opened by `payer`'s transaction with `nonce`.
pub fn channel_id(payer: &AccountId, nonce: u64) -> Hash {
    Hash::of(&encode(&(b"agora/channel/v1".to_vec(), *payer, nonce)))
}

fn load(ctx: &Ctx<'_>, id: &Hash) -> Result<Channel, Fail> {
    read::<Channel>(ctx.store, &keys::channel(id))?
        .ok_or_else(|| TxError::ChannelNotFound(*id).into())
}

/// `TxBody::OpenChannel`.
pub(crate) fn open(
    ctx: &mut Ctx<'_>,
    payer: &AccountId,
    payee: &AccountId,
    deposit: Amount,
    expiry_height: u64,
) -> Result<(), Fail> {
    if deposit == 0 {
        return Err(TxError::ZeroAmount.into());
    }
    if payer == payee {
        return Err(TxError::SelfChannel.into());
    }
    if expiry_height <= ctx.height {
        return Err(TxError::InvalidExpiry(expiry_height).into());
    }
    let id = channel_id(payer, ctx.nonce);
    bank::escrow(ctx.store, payer, deposit)?;
    let channel = Channel {
        id,
        payer: *payer,
        payee: *payee,
        deposit,
        redeemed: 0,
        expiry_height,
    };
    write(ctx.store, &keys::channel(&id), &channel)?;
    ctx.events.push(Event::ChannelOpened {
        channel_id: id,
        payer: *payer,
        payee: *payee,
        deposit,
        expiry_height,
    });
    Ok(())
}

/// `TxBody::TopUpChannel`.
pub(crate) fn top_up(
    ctx: &mut Ctx<'_>,
    who: &AccountId,
    id: &Hash,
    value: Amount,
    expiry_height: u64,
) -> Result<(), Fail> {
    let mut channel = load(ctx, id)?;
    if channel.payer != *who {
        return Err(TxError::NotChannelPayer.into());
    }
    if expiry_height < channel.expiry_height {
        return Err(TxError::InvalidExpiry(expiry_height).into());
    }
    if value == 0 && expiry_height == channel.expiry_height {
        return Err(TxError::ZeroAmount.into());
    }
    if value > 0 {
        bank::escrow(ctx.store, who, value)?;
    }
    channel.deposit = amount::add(channel.deposit, value)?;
    channel.expiry_height = expiry_height;
    write(ctx.store, &keys::channel(id), &channel)?;
    ctx.events.push(Event::ChannelToppedUp {
        channel_id: *id,
        deposit: channel.deposit,
        expiry_height,
    });
    Ok(())
}

/// `TxBody::RedeemChannel`: only the payee redeems, and only a valid voucher covering a claim
/// above what was already redeemed pays.
///
/// `claim` is the cumulative total the payee claims; it is paid `claim - redeemed`.
pub(crate) fn redeem(
    ctx: &mut Ctx<'_>,
    who: &AccountId,
    signed: &SignedVoucher,
    claim: Amount,
) -> Result<(), Fail> {
    let voucher = &signed.voucher;
    let mut channel = load(ctx, &voucher.channel_id)?;
    if channel.payee != *who {
        return Err(TxError::NotChannelPayee.into());
    }
    if voucher.chain_id != *ctx.chain_id {
        return Err(TxError::VoucherWrongChain.into());
    }
    if voucher.payer != channel.payer || voucher.payee != channel.payee {
        return Err(TxError::VoucherWrongParty.into());
    }
    if signed.verify().is_err() {
        return Err(TxError::VoucherBadSignature.into());
    }
    if claim <= channel.redeemed {
        return Err(TxError::StaleVoucher {
            redeemed: channel.redeemed,
            cumulative: claim,
        }
        .into());
    }
    if claim > voucher.cumulative {
        return Err(TxError::ClaimExceedsVoucher {
            claim,
            cumulative: voucher.cumulative,
        }
        .into());
    }
    if claim > channel.deposit {
        return Err(TxError::VoucherExceedsDeposit {
            deposit: channel.deposit,
            cumulative: claim,
        }
        .into());
    }
    let increase = claim - channel.redeemed;
    channel.redeemed = claim;
    write(ctx.store, &keys::channel(&channel.id), &channel)?;
    bank::release(ctx.store, &channel.payee, increase)?;
    ctx.events.push(Event::ChannelRedeemed {
        channel_id: channel.id,
        payee: channel.payee,
        amount: increase,
        cumulative: claim,
    });
    Ok(())
}

/// `TxBody::CloseChannel`: the payer after expiry, the payee at any time.
pub(crate) fn close(ctx: &mut Ctx<'_>, who: &AccountId, id: &Hash) -> Result<(), Fail> {
    let channel = load(ctx, id)?;
    if *who == channel.payer {
        if ctx.height < channel.expiry_height {
            return Err(TxError::ChannelNotExpired {
                expiry_height: channel.expiry_height,
            }
            .into());
        }
    } else if *who != channel.payee {
        return Err(TxError::NotChannelPayer.into());
    }
    let refund = amount::sub(channel.deposit, channel.redeemed)?;
    ctx.store.delete(&keys::channel(id))?;
    if refund > 0 {
        bank::release(ctx.store, &channel.payer, refund)?;
    }
    ctx.events.push(Event::ChannelClosed {
        channel_id: *id,
        refund,
    });
    Ok(())
}
