//! Providers and verifiers; models change only through genesis and governance.

use std::collections::BTreeSet;

use agora_types::{AccountId, ProviderInfo};

use crate::{
    error::{Fail, TxError},
    events::Event,
    exec::Ctx,
    staking::{ensure_min_stake, ensure_not_jailed},
    state::{keys, model_is_active, read, write, Provider, Verifier},
    storage::Storage,
};

/// Checks a provider record: an http(s) endpoint, at least one model, no model twice, and
/// every model active.
pub(crate) fn validate_info(store: &dyn Storage, info: &ProviderInfo) -> Result<(), Fail> {
    let endpoint = info.endpoint.as_str();
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        return Err(TxError::InvalidProviderInfo("endpoint must be an http(s) URL").into());
    }
    if info.models.is_empty() {
        return Err(TxError::InvalidProviderInfo("at least one model is required").into());
    }
    let mut seen = BTreeSet::new();
    for offer in info.models.iter() {
        if !seen.insert(offer.cid) {
            return Err(TxError::InvalidProviderInfo("a model is listed twice").into());
        }
        if !model_is_active(store, &offer.cid)? {
            return Err(TxError::ModelNotActive { cid: offer.cid }.into());
        }
    }
    Ok(())
}

/// `TxBody::RegisterProvider`.
pub(crate) fn register_provider(
    ctx: &mut Ctx<'_>,
    who: &AccountId,
    info: &ProviderInfo,
) -> Result<(), Fail> {
    let key = keys::provider(who);
    if ctx.store.get(&key)?.is_some() {
        return Err(TxError::AlreadyRegistered.into());
    }
    ensure_not_jailed(ctx.store, who, ctx.height)?;
    ensure_min_stake(ctx.store, who, ctx.params.min_stake)?;
    validate_info(ctx.store, info)?;
    let provider = Provider {
        operator: *who,
        info: info.clone(),
        registered_height: ctx.height,
    };
    write(ctx.store, &key, &provider)?;
    ctx.events
        .push(Event::ProviderRegistered { operator: *who });
    Ok(())
}

/// `TxBody::UpdateProvider`.
pub(crate) fn update_provider(
    ctx: &mut Ctx<'_>,
    who: &AccountId,
    info: &ProviderInfo,
) -> Result<(), Fail> {
    let key = keys::provider(who);
    let Some(mut provider) = read::<Provider>(ctx.store, &key)? else {
        return Err(TxError::NotRegistered.into());
    };
    validate_info(ctx.store, info)?;
    provider.info = info.clone();
    write(ctx.store, &key, &provider)?;
    ctx.events.push(Event::ProviderUpdated { operator: *who });
    Ok(())
}

/// `TxBody::DeregisterProvider`.
pub(crate) fn deregister_provider(ctx: &mut Ctx<'_>, who: &AccountId) -> Result<(), Fail> {
    let key = keys::provider(who);
    if ctx.store.get(&key)?.is_none() {
        return Err(TxError::NotRegistered.into());
    }
    ctx.store.delete(&key)?;
    ctx.events
        .push(Event::ProviderDeregistered { operator: *who });
    Ok(())
}

/// `TxBody::RegisterVerifier`.
pub(crate) fn register_verifier(ctx: &mut Ctx<'_>, who: &AccountId) -> Result<(), Fail> {
    let key = keys::verifier(who);
    if ctx.store.get(&key)?.is_some() {
        return Err(TxError::AlreadyRegistered.into());
    }
    ensure_not_jailed(ctx.store, who, ctx.height)?;
    ensure_min_stake(ctx.store, who, ctx.params.min_stake)?;
    let verifier = Verifier {
        account: *who,
        registered_height: ctx.height,
    };
    write(ctx.store, &key, &verifier)?;
    ctx.events.push(Event::VerifierRegistered { account: *who });
    Ok(())
}
