//! Per-epoch receipt commitments by providers.

use agora_types::{AccountId, Hash, ModelTotals, ReceiptTotals};

use crate::{
    error::{Fail, TxError},
    events::Event,
    exec::Ctx,
    state::{keys, write, ReceiptCommitment},
};

/// `TxBody::CommitReceipts`: once per provider and epoch, for an epoch that has started.
pub(crate) fn commit(
    ctx: &mut Ctx<'_>,
    provider: &AccountId,
    epoch: u64,
    root: &Hash,
    totals: &ReceiptTotals,
    by_model: &[ModelTotals],
) -> Result<(), Fail> {
    if ctx.store.get(&keys::provider(provider))?.is_none() {
        return Err(TxError::NotRegistered.into());
    }
    let mut sum = ReceiptTotals::default();
    for (index, entry) in by_model.iter().enumerate() {
        if by_model[..index].iter().any(|e| e.model == entry.model) {
            return Err(TxError::BadModelTotals(format!("{} is listed twice", entry.model)).into());
        }
        sum = sum
            .checked_add(&entry.totals)
            .ok_or_else(|| TxError::BadModelTotals("the totals overflow".into()))?;
    }
    if sum != *totals {
        return Err(TxError::BadModelTotals(
            "the totals by model do not add up to the epoch's totals".into(),
        )
        .into());
    }
    let current = ctx.height / ctx.params.epoch_blocks.max(1);
    if epoch > current {
        return Err(TxError::EpochInFuture { epoch, current }.into());
    }
    let key = keys::receipts(provider, epoch);
    if ctx.store.get(&key)?.is_some() {
        return Err(TxError::AlreadyCommitted(epoch).into());
    }
    let commitment = ReceiptCommitment {
        provider: *provider,
        epoch,
        root: *root,
        totals: *totals,
        by_model: by_model.to_vec(),
        height: ctx.height,
    };
    write(ctx.store, &key, &commitment)?;
    ctx.events.push(Event::ReceiptsCommitted {
        provider: *provider,
        epoch,
        root: *root,
    });
    Ok(())
}
