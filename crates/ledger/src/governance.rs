//! Proposals, stake-weighted votes, and execution at the end of voting.
//!
//! A proposal escrows its deposit and is open for votes from its submission block through
//! `end_height = submit height + voting_period_blocks`.
//! At the end of block `end_height` it is tallied: each voter weighs its bonded stake at that
//! moment.
//! Quorum is reached when the stake that voted (yes, no or abstain) is at least `quorum_bps`
//! of all bonded stake; the proposal passes when, in addition, yes is strictly more than
//! `threshold_bps` of yes + no.
//! The deposit returns to the proposer when quorum is reached and is burned otherwise.
//! A passed proposal executes at once; if it can no longer execute (say the model was added
//! meanwhile), it is recorded as `ExecutionFailed` and changes nothing.

use agora_types::{amount, AccountId, Amount, Cid, Params, ProposalKind, Vote};

use crate::{
    bank,
    error::{Error, Fail, TxError},
    events::Event,
    exec::Ctx,
    state::{
        decode_record, keys, load_meta, load_stake, load_supply, read, read_required, write, Model,
        ModelStatus, Proposal, ProposalStatus, Tally, VoteRecord,
    },
    storage::{write_changes, Overlay, Storage},
};

/// `TxBody::SubmitProposal`.
pub(crate) fn submit(
    ctx: &mut Ctx<'_>,
    proposer: &AccountId,
    kind: &ProposalKind,
    deposit: Amount,
) -> Result<(), Fail> {
    if deposit < ctx.params.proposal_deposit {
        return Err(TxError::DepositTooLow {
            min: ctx.params.proposal_deposit,
            got: deposit,
        }
        .into());
    }
    validate(ctx.store, ctx.params, kind)?;
    bank::escrow(ctx.store, proposer, deposit)?;
    let mut meta = load_meta(ctx.store)?;
    let id = meta.next_proposal_id;
    meta.next_proposal_id = id.checked_add(1).ok_or(TxError::Overflow)?;
    write(ctx.store, keys::META, &meta)?;
    let end_height = ctx
        .height
        .checked_add(ctx.params.voting_period_blocks)
        .ok_or(TxError::Overflow)?;
    let proposal = Proposal {
        id,
        proposer: *proposer,
        kind: kind.clone(),
        deposit,
        submit_height: ctx.height,
        end_height,
        status: ProposalStatus::Voting,
        tally: Tally::default(),
    };
    write(ctx.store, &keys::proposal(id), &proposal)?;
    ctx.store.put(&keys::pending(end_height, id), &[])?;
    ctx.events.push(Event::ProposalSubmitted {
        id,
        proposer: *proposer,
        end_height,
    });
    Ok(())
}

/// `TxBody::VoteProposal`: a later vote by the same account replaces the earlier one.
pub(crate) fn vote(
    ctx: &mut Ctx<'_>,
    voter: &AccountId,
    id: u64,
    choice: Vote,
) -> Result<(), Fail> {
    let Some(proposal) = read::<Proposal>(ctx.store, &keys::proposal(id))? else {
        return Err(TxError::ProposalNotFound(id).into());
    };
    if proposal.status != ProposalStatus::Voting || ctx.height > proposal.end_height {
        return Err(TxError::VotingClosed(id).into());
    }
    if load_stake(ctx.store, voter)?.bonded == 0 {
        return Err(TxError::NoVotingPower.into());
    }
    write(ctx.store, &keys::vote(id, voter), &choice)?;
    ctx.events.push(Event::Voted {
        id,
        voter: *voter,
        vote: choice,
    });
    Ok(())
}

/// Tallies and settles every proposal whose voting ends at `height`.
pub(crate) fn end_block(store: &mut dyn Storage, height: u64) -> Result<Vec<Event>, Error> {
    let mut events = Vec::new();
    let pending = store.scan_prefix(&keys::pending_at(height))?;
    for (key, _) in pending {
        let id_bytes: [u8; 8] = key
            .get(key.len().saturating_sub(8)..)
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| Error::Corrupt {
                key: crate::state::hex_key(&key),
            })?;
        let id = u64::from_be_bytes(id_bytes);
        store.delete(&key)?;
        finish(store, height, id, &mut events)?;
    }
    Ok(events)
}

fn finish(
    store: &mut dyn Storage,
    height: u64,
    id: u64,
    events: &mut Vec<Event>,
) -> Result<(), Error> {
    let mut proposal: Proposal = read_required(store, &keys::proposal(id))?;
    let params: Params = read_required(store, keys::PARAMS)?;
    let tally = tally(store, id)?;
    let voted = tally
        .yes
        .saturating_add(tally.no)
        .saturating_add(tally.abstain);
    let quorum_bps = u32::try_from(params.quorum_bps).unwrap_or(u32::MAX);
    let threshold_bps = u32::try_from(params.threshold_bps).unwrap_or(u32::MAX);
    let quorum = voted > 0 && voted >= amount::fraction_bps(tally.total_bonded, quorum_bps);
    let passed = quorum
        && tally.yes > amount::fraction_bps(tally.yes.saturating_add(tally.no), threshold_bps);

    let settle = if quorum {
        bank::release(store, &proposal.proposer, proposal.deposit)
    } else {
        bank::burn_escrow(store, proposal.deposit)
    };
    fatal_only(settle)?;
    events.push(if quorum {
        Event::DepositReturned {
            id,
            amount: proposal.deposit,
        }
    } else {
        Event::DepositBurned {
            id,
            amount: proposal.deposit,
        }
    });

    proposal.status = if passed {
        let mut overlay = Overlay::new(&*store);
        let mut exec_events = Vec::new();
        match execute(
            &mut overlay,
            height,
            &params,
            &proposal.kind,
            &mut exec_events,
        ) {
            Ok(()) => {
                let changes = overlay.into_changes();
                write_changes(store, changes)?;
                events.extend(exec_events);
                ProposalStatus::Passed
            }
            Err(Fail::Tx(err)) => ProposalStatus::ExecutionFailed(err.to_string()),
            Err(Fail::Fatal(err)) => return Err(err),
        }
    } else if quorum {
        ProposalStatus::Rejected
    } else {
        ProposalStatus::NoQuorum
    };
    proposal.tally = tally;
    write(store, &keys::proposal(id), &proposal)?;
    events.push(Event::ProposalFinished {
        id,
        status: proposal.status,
    });
    Ok(())
}

/// Sums each voter's current bonded stake by choice.
fn tally(store: &dyn Storage, id: u64) -> Result<Tally, Error> {
    let mut tally = Tally {
        total_bonded: load_supply(store)?.bonded,
        ..Tally::default()
    };
    for (key, value) in store.scan_prefix(&keys::votes(id))? {
        let voter_bytes: [u8; 32] = key
            .get(key.len().saturating_sub(32)..)
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| Error::Corrupt {
                key: crate::state::hex_key(&key),
            })?;
        let choice: VoteRecord = decode_record(&key, &value)?;
        let weight = load_stake(store, &AccountId(voter_bytes))?.bonded;
        let slot = match choice {
            Vote::Yes => &mut tally.yes,
            Vote::No => &mut tally.no,
            Vote::Abstain => &mut tally.abstain,
        };
        *slot = slot.saturating_add(weight);
    }
    Ok(tally)
}

/// Checks that `kind` could execute against the current state.
fn validate(store: &dyn Storage, params: &Params, kind: &ProposalKind) -> Result<(), Fail> {
    let invalid = |msg: &str| Fail::Tx(TxError::InvalidProposal(msg.to_string()));
    match kind {
        ProposalKind::AddModel(info) => {
            if model(store, &info.cid)?.is_some() {
                return Err(invalid("model is already known"));
            }
        }
        ProposalKind::ReplaceModel { old, new } => {
            if !is_active(store, old)? {
                return Err(invalid("model to replace is not active"));
            }
            if model(store, &new.cid)?.is_some() {
                return Err(invalid("replacement model is already known"));
            }
        }
        ProposalKind::RetireModel { cid } => {
            if !is_active(store, cid)? {
                return Err(invalid("model to retire is not active"));
            }
        }
        ProposalKind::SetParam { name, value } => {
            let mut copy = params.clone();
            if let Err(err) = copy.set(name.as_str(), *value) {
                return Err(invalid(&err.to_string()));
            }
        }
        ProposalKind::SetSafetyPolicy { .. } | ProposalKind::Text { .. } => {}
    }
    Ok(())
}

/// Applies a passed proposal.
fn execute(
    store: &mut dyn Storage,
    height: u64,
    params: &Params,
    kind: &ProposalKind,
    events: &mut Vec<Event>,
) -> Result<(), Fail> {
    validate(store, params, kind)?;
    match kind {
        ProposalKind::AddModel(info) => {
            set_model(store, info.clone(), ModelStatus::Active, height)?;
            events.push(Event::ModelActivated { cid: info.cid });
        }
        ProposalKind::ReplaceModel { old, new } => {
            retire(store, old, height)?;
            events.push(Event::ModelRetired { cid: *old });
            set_model(store, new.clone(), ModelStatus::Active, height)?;
            events.push(Event::ModelActivated { cid: new.cid });
        }
        ProposalKind::RetireModel { cid } => {
            retire(store, cid, height)?;
            events.push(Event::ModelRetired { cid: *cid });
        }
        ProposalKind::SetParam { name, value } => {
            let mut params = params.clone();
            params
                .set(name.as_str(), *value)
                .map_err(|err| TxError::InvalidProposal(err.to_string()))?;
            write(store, keys::PARAMS, &params)?;
            events.push(Event::ParamChanged {
                name: name.as_str().to_string(),
                value: *value,
            });
        }
        ProposalKind::SetSafetyPolicy { cid } => {
            write(store, keys::SAFETY, cid)?;
            events.push(Event::SafetyPolicySet { cid: *cid });
        }
        ProposalKind::Text { .. } => {}
    }
    Ok(())
}

fn model(store: &dyn Storage, cid: &Cid) -> Result<Option<Model>, Error> {
    read(store, &keys::model(cid))
}

fn is_active(store: &dyn Storage, cid: &Cid) -> Result<bool, Error> {
    Ok(matches!(model(store, cid)?, Some(m) if m.status == ModelStatus::Active))
}

fn set_model(
    store: &mut dyn Storage,
    info: agora_types::ModelInfo,
    status: ModelStatus,
    height: u64,
) -> Result<(), Error> {
    let key = keys::model(&info.cid);
    let model = Model {
        info,
        status,
        updated_height: height,
    };
    write(store, &key, &model)
}

fn retire(store: &mut dyn Storage, cid: &Cid, height: u64) -> Result<(), Fail> {
    let Some(model) = model(store, cid)? else {
        return Err(TxError::InvalidProposal("model is not known".to_string()).into());
    };
    set_model(store, model.info, ModelStatus::Retired, height)?;
    Ok(())
}

/// Turns a transaction-level failure of an internal move into a fatal one: settling a
/// deposit that was escrowed cannot fail unless the state is broken.
fn fatal_only(res: Result<(), Fail>) -> Result<(), Error> {
    match res {
        Ok(()) => Ok(()),
        Err(Fail::Fatal(err)) => Err(err),
        Err(Fail::Tx(err)) => Err(Error::SupplyMismatch(format!(
            "settling an escrowed deposit failed: {err}"
        ))),
    }
}
