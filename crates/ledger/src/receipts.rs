//! Per-epoch receipt commitments by providers.

use agora_types::{AccountId, Hash, ReceiptTotals};

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
) -> Result<(), Fail> {
    if ctx.store.get(&keys::provider(provider))?.is_none() {
        return Err(TxError::NotRegistered.into());
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
