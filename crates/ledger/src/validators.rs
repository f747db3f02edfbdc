//! The consensus validator set: registration, and the choice of the next set at each
//! epoch's last block.
//!
//! Any account may register as a validator with the `host:port` its peers reach it at.
//! At the last block of every epoch (`epoch_blocks`), the registered validators with at
//! least `min_stake` bonded and not jailed are ranked by bonded stake (ties by account) and
//! the first `max_validators` form the next set. When its members differ from the current
//! set's, the set's epoch advances and the new set takes over consensus from the next block;
//! the chain's nodes start a new consensus engine for it. A choice that would leave no
//! validator keeps the current set. Members vote with equal weight (simplex counts
//! signers), so stake decides membership, not voting power.

use agora_types::{registry::MAX_ENDPOINT_LEN, AccountId, BoundedString, Hash, Params};

use crate::{
    error::{Error, Fail, TxError},
    events::Event,
    exec::Ctx,
    state::{keys, load_stake, read, read_required, write, Validator, ValidatorSet},
    storage::Storage,
};

/// Whether `text` is `host:port`: a non-empty host of DNS or IP characters (an IPv6 host in
/// brackets) and a port from 1 to 65535.
fn is_p2p_address(text: &str) -> bool {
    let Some((host, port)) = text.rsplit_once(':') else {
        return false;
    };
    let port_ok = port.parse::<u16>().is_ok_and(|port| port > 0);
    let host = host
        .strip_prefix('[')
        .and_then(|inner| inner.strip_suffix(']'))
        .unwrap_or(host);
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':'));
    port_ok && host_ok
}

/// `TxBody::RegisterValidator`: records the signer's offer (or its new address).
///
/// Stake is checked at the boundary, not here: an account may register first and bond after.
pub(crate) fn register(
    ctx: &mut Ctx<'_>,
    who: &AccountId,
    p2p: &BoundedString<MAX_ENDPOINT_LEN>,
) -> Result<(), Fail> {
    if !is_p2p_address(p2p.as_str()) {
        return Err(TxError::InvalidP2pAddress.into());
    }
    let record = Validator {
        account: *who,
        p2p: Some(p2p.clone()),
    };
    write(ctx.store, &keys::validator(who), &record)?;
    ctx.events
        .push(Event::ValidatorRegistered { account: *who });
    Ok(())
}

/// `TxBody::DeregisterValidator`.
pub(crate) fn deregister(ctx: &mut Ctx<'_>, who: &AccountId) -> Result<(), Fail> {
    let key = keys::validator(who);
    if ctx.store.get(&key)?.is_none() {
        return Err(TxError::NotRegistered.into());
    }
    ctx.store.delete(&key)?;
    ctx.events
        .push(Event::ValidatorDeregistered { account: *who });
    Ok(())
}

/// The set the registered validators would form at `height`: see the module docs.
pub(crate) fn choose(
    store: &dyn Storage,
    params: &Params,
    height: u64,
) -> Result<Vec<Validator>, Error> {
    let mut ranked = Vec::new();
    for (key, _) in store.scan_prefix(keys::VALIDATOR_PREFIX)? {
        let Some(validator) = read::<Validator>(store, &key)? else {
            continue;
        };
        let stake = load_stake(store, &validator.account)?;
        let eligible = stake.bonded > 0
            && stake.bonded >= params.min_stake
            && height.saturating_add(1) >= stake.jailed_until;
        if eligible {
            ranked.push((stake.bonded, validator));
        }
    }
    ranked
        .sort_by(|(a_stake, a), (b_stake, b)| b_stake.cmp(a_stake).then(a.account.cmp(&b.account)));
    let max = usize::try_from(params.max_validators).unwrap_or(usize::MAX);
    let mut members: Vec<Validator> = ranked
        .into_iter()
        .take(max)
        .map(|(_, validator)| validator)
        .collect();
    members.sort_by_key(|validator| validator.account);
    Ok(members)
}

/// End of block: records the new set's floor at its first block, and at an epoch's last
/// block chooses the next set.
pub(crate) fn end_block(
    store: &mut dyn Storage,
    height: u64,
    parent: &Hash,
) -> Result<Vec<Event>, Error> {
    let mut set: ValidatorSet = read_required(store, keys::VALIDATORS)?;
    let mut changed = false;
    let mut events = Vec::new();
    if set.epoch > 0 && set.floor.is_none() {
        set.floor = Some(*parent);
        changed = true;
        events.push(Event::ValidatorSetStarted {
            epoch: set.epoch,
            floor: *parent,
        });
    }
    let params: Params = read_required(store, keys::PARAMS)?;
    let blocks = params.epoch_blocks.max(1);
    if height.checked_add(1).is_some_and(|next| next % blocks == 0) {
        let next = choose(store, &params, height)?;
        let same_accounts = next.len() == set.members.len()
            && next
                .iter()
                .zip(&set.members)
                .all(|(a, b)| a.account == b.account);
        if !next.is_empty() && next != set.members {
            // Same members with new addresses: peers reconnect, consensus goes on.
            if !same_accounts {
                set.epoch = set.epoch.saturating_add(1);
                set.floor = None;
            }
            events.push(Event::ValidatorSetChanged {
                epoch: set.epoch,
                members: next.len() as u64,
            });
            set.members = next;
            changed = true;
        }
    }
    if changed {
        write(store, keys::VALIDATORS, &set)?;
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::is_p2p_address;

    #[test]
    fn p2p_addresses_are_host_and_port() {
        for good in ["10.0.0.1:26670", "node-1.example.org:1", "[::1]:26670"] {
            assert!(is_p2p_address(good), "{good}");
        }
        for bad in [
            "",
            "10.0.0.1",
            ":26670",
            "host:0",
            "host:65536",
            "http://host:1",
            "a b:1",
        ] {
            assert!(!is_p2p_address(bad), "{bad}");
        }
    }
}
