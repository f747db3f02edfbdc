//! Providers and verifiers; models change only through genesis and governance.

use std::collections::BTreeSet;

use agora_types::{
    registry::MAX_ENDPOINT_LEN, AccountId, Amount, BoundedString, Params, ProviderInfo,
};

use crate::{
    error::{Error, Fail, TxError},
    events::Event,
    exec::Ctx,
    staking::{ensure_min_stake, ensure_not_jailed},
    state::{keys, load_stake, model_is_active, read, write, Provider, Verifier},
    storage::Storage,
};

/// Checks a provider record: an http(s) endpoint, at least one model, no model twice, and
/// every model active.
pub(crate) fn validate_info(store: &dyn Storage, info: &ProviderInfo) -> Result<(), Fail> {
    if !is_http_url(info.endpoint.as_str()) {
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

/// `TxBody::RegisterVerifier`: registers the signer, or updates a registered verifier's
/// endpoint.
///
/// A first registration needs `min_stake` bonded and no jail; an update needs neither, so a
/// jailed verifier can still move its server.
pub(crate) fn register_verifier(
    ctx: &mut Ctx<'_>,
    who: &AccountId,
    endpoint: &BoundedString<MAX_ENDPOINT_LEN>,
) -> Result<(), Fail> {
    if !is_http_url(endpoint.as_str()) {
        return Err(TxError::InvalidEndpoint.into());
    }
    let key = keys::verifier(who);
    if let Some(mut verifier) = read::<Verifier>(ctx.store, &key)? {
        verifier.endpoint = endpoint.clone();
        write(ctx.store, &key, &verifier)?;
        ctx.events.push(Event::VerifierUpdated { account: *who });
        return Ok(());
    }
    ensure_not_jailed(ctx.store, who, ctx.height)?;
    ensure_min_stake(ctx.store, who, ctx.params.min_stake)?;
    let verifier = Verifier {
        account: *who,
        endpoint: endpoint.clone(),
        registered_height: ctx.height,
    };
    write(ctx.store, &key, &verifier)?;
    ctx.events.push(Event::VerifierRegistered { account: *who });
    Ok(())
}

/// The bonded stake of `who` when it is a registered verifier with at least `min_stake` (and
/// more than zero) bonded and not jailed at `height`; `None` otherwise.
pub(crate) fn active_verifier_stake(
    store: &dyn Storage,
    params: &Params,
    height: u64,
    who: &AccountId,
) -> Result<Option<Amount>, Error> {
    if store.get(&keys::verifier(who))?.is_none() {
        return Ok(None);
    }
    let stake = load_stake(store, who)?;
    let active =
        stake.bonded > 0 && stake.bonded >= params.min_stake && height >= stake.jailed_until;
    Ok(active.then_some(stake.bonded))
}

fn is_http_url(text: &str) -> bool {
    text.starts_with("http://") || text.starts_with("https://")
}
