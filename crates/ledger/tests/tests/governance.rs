use agora_ledger::{
    query,
    state::{ModelStatus, ProposalStatus},
    TxError,
};
use agora_types::{ProposalKind, SignedTx, TxBody, Vote, UNITS_PER_AGR};

use super::harness::{id, key, model, provider_info, Net, FEE};

const DEPOSIT: u128 = 10 * UNITS_PER_AGR;

fn submit(net: &mut Net, kind: ProposalKind) -> u64 {
    let id = query::meta(&net.storage).unwrap().next_proposal_id;
    net.run(
        "alice",
        TxBody::SubmitProposal {
            kind,
            deposit: DEPOSIT,
        },
    )
    .unwrap();
    id
}

fn vote(net: &mut Net, who: &str, proposal_id: u64, vote: Vote) {
    net.run(who, TxBody::VoteProposal { proposal_id, vote })
        .unwrap();
}

#[test]
fn add_model_passes_with_quorum_and_activates_at_end_of_voting() {
    let mut net = Net::new();
    let new_model = model("new");
    let before = net.balance("alice");
    let proposal = submit(&mut net, ProposalKind::AddModel(new_model.clone()));
    let record = query::proposal(&net.storage, proposal).unwrap().unwrap();
    assert_eq!(record.end_height, 3);
    net.audit();
    vote(&mut net, "val", proposal, Vote::Yes);
    assert!(query::model(&net.storage, &new_model.cid)
        .unwrap()
        .is_none());
    let outcome = net.block(Vec::new());
    assert_eq!(net.height, 3);
    assert!(outcome
        .events
        .iter()
        .any(|e| matches!(e, agora_ledger::Event::ModelActivated { .. })));
    let record = query::proposal(&net.storage, proposal).unwrap().unwrap();
    assert_eq!(record.status, ProposalStatus::Passed);
    assert_eq!(record.tally.yes, 1_000 * UNITS_PER_AGR);
    let active = query::model(&net.storage, &new_model.cid).unwrap().unwrap();
    assert_eq!(active.status, ModelStatus::Active);
    // The deposit came back: alice paid only her fee.
    assert_eq!(net.balance("alice"), before - FEE);
    // A provider may now serve it.
    let base = model("base").cid;
    net.run(
        "prov",
        TxBody::UpdateProvider(provider_info(&[base, new_model.cid])),
    )
    .unwrap();
    net.audit();
}

#[test]
fn proposal_without_quorum_fails_and_burns_deposit() {
    let mut net = Net::new();
    let new_model = model("lonely");
    let before = net.balance("alice");
    let burned_before = query::supply(&net.storage).unwrap().burned;
    let proposal = submit(&mut net, ProposalKind::AddModel(new_model.clone()));
    // prov has 100 of 1,100 bonded: below the 33.4% quorum.
    vote(&mut net, "prov", proposal, Vote::Yes);
    net.block(Vec::new());
    let record = query::proposal(&net.storage, proposal).unwrap().unwrap();
    assert_eq!(record.status, ProposalStatus::NoQuorum);
    assert!(query::model(&net.storage, &new_model.cid)
        .unwrap()
        .is_none());
    assert_eq!(net.balance("alice"), before - DEPOSIT - FEE);
    let burned = query::supply(&net.storage).unwrap().burned;
    assert_eq!(burned - burned_before, DEPOSIT + 2 * FEE);
    net.audit();
}

#[test]
fn rejected_proposal_with_quorum_returns_deposit() {
    let mut net = Net::new();
    let before = net.balance("alice");
    let proposal = submit(&mut net, ProposalKind::AddModel(model("nope")));
    vote(&mut net, "val", proposal, Vote::No);
    vote(&mut net, "prov", proposal, Vote::Yes);
    let record = query::proposal(&net.storage, proposal).unwrap().unwrap();
    assert_eq!(record.status, ProposalStatus::Rejected);
    assert_eq!(net.balance("alice"), before - FEE);
    net.audit();
}

#[test]
fn parameter_change_takes_effect_after_voting() {
    let mut net = Net::new();
    let proposal = submit(
        &mut net,
        ProposalKind::SetParam {
            name: "min_fee".try_into().unwrap(),
            value: 5_000,
        },
    );
    vote(&mut net, "val", proposal, Vote::Yes);
    net.block(Vec::new());
    assert_eq!(query::params(&net.storage).unwrap().min_fee, 5_000);
    let cheap = net.tx(
        "bob",
        TxBody::Transfer {
            to: id("carol"),
            amount: 1,
        },
    );
    let outcome = net.block(vec![cheap]);
    assert_eq!(
        outcome.txs[0].result,
        Err(TxError::FeeTooLow {
            min: 5_000,
            got: FEE
        })
    );
    let paid = SignedTx::sign(
        &key("bob"),
        &net.chain_id,
        0,
        5_000,
        TxBody::Transfer {
            to: id("carol"),
            amount: 1,
        },
    );
    let outcome = net.block(vec![paid]);
    assert!(outcome.txs[0].result.is_ok());
    net.audit();
}

#[test]
fn retire_model_passes_and_model_stops_being_registrable() {
    let mut net = Net::new();
    let base = model("base").cid;
    let proposal = submit(&mut net, ProposalKind::RetireModel { cid: base });
    vote(&mut net, "val", proposal, Vote::Yes);
    net.block(Vec::new());
    let record = query::model(&net.storage, &base).unwrap().unwrap();
    assert_eq!(record.status, ModelStatus::Retired);
    let res = net.run("prov", TxBody::UpdateProvider(provider_info(&[base])));
    assert_eq!(res, Err(TxError::ModelNotActive { cid: base }));
}

#[test]
fn invalid_proposals_and_votes_fail() {
    let mut net = Net::new();
    let unknown = ProposalKind::SetParam {
        name: "no_such_param".try_into().unwrap(),
        value: 1,
    };
    let res = net.run(
        "alice",
        TxBody::SubmitProposal {
            kind: unknown,
            deposit: DEPOSIT,
        },
    );
    assert!(matches!(res, Err(TxError::InvalidProposal(_))), "{res:?}");
    let known = ProposalKind::AddModel(model("base"));
    let res = net.run(
        "alice",
        TxBody::SubmitProposal {
            kind: known,
            deposit: DEPOSIT,
        },
    );
    assert!(matches!(res, Err(TxError::InvalidProposal(_))), "{res:?}");
    let cheap = ProposalKind::AddModel(model("cheap"));
    let res = net.run(
        "alice",
        TxBody::SubmitProposal {
            kind: cheap,
            deposit: 1,
        },
    );
    assert!(matches!(res, Err(TxError::DepositTooLow { .. })));
    let proposal = submit(&mut net, ProposalKind::AddModel(model("x")));
    let res = net.run(
        "bob",
        TxBody::VoteProposal {
            proposal_id: proposal,
            vote: Vote::Yes,
        },
    );
    assert_eq!(res, Err(TxError::NoVotingPower));
    let res = net.run(
        "val",
        TxBody::VoteProposal {
            proposal_id: 99,
            vote: Vote::Yes,
        },
    );
    assert_eq!(res, Err(TxError::ProposalNotFound(99)));
    net.empty_blocks(3);
    let res = net.run(
        "val",
        TxBody::VoteProposal {
            proposal_id: proposal,
            vote: Vote::Yes,
        },
    );
    assert_eq!(res, Err(TxError::VotingClosed(proposal)));
    net.audit();
}

#[test]
fn replace_model_retires_old_and_activates_new() {
    let mut net = Net::new();
    let old = model("base").cid;
    let new = model("base-v2");
    let proposal = submit(
        &mut net,
        ProposalKind::ReplaceModel {
            old,
            new: new.clone(),
        },
    );
    vote(&mut net, "val", proposal, Vote::Yes);
    net.block(Vec::new());
    assert_eq!(
        query::model(&net.storage, &old).unwrap().unwrap().status,
        ModelStatus::Retired
    );
    assert_eq!(
        query::model(&net.storage, &new.cid)
            .unwrap()
            .unwrap()
            .status,
        ModelStatus::Active
    );
}

#[test]
fn safety_policy_and_text_proposals_pass() {
    let mut net = Net::new();
    let policy = agora_types::Cid::of(b"policy v1");
    let first = submit(&mut net, ProposalKind::SetSafetyPolicy { cid: policy });
    let second = submit(
        &mut net,
        ProposalKind::Text {
            text: "be kind".try_into().unwrap(),
        },
    );
    vote(&mut net, "val", first, Vote::Yes);
    vote(&mut net, "val", second, Vote::Yes);
    net.empty_blocks(1);
    assert_eq!(query::safety_policy(&net.storage).unwrap(), Some(policy));
    for id in [first, second] {
        assert_eq!(
            query::proposal(&net.storage, id).unwrap().unwrap().status,
            ProposalStatus::Passed
        );
    }
    net.audit();
}

#[test]
fn later_vote_replaces_earlier_vote() {
    let mut net = Net::new();
    let proposal = submit(&mut net, ProposalKind::AddModel(model("flip")));
    vote(&mut net, "val", proposal, Vote::Yes);
    vote(&mut net, "val", proposal, Vote::No);
    let record = query::proposal(&net.storage, proposal).unwrap().unwrap();
    assert_eq!(record.status, ProposalStatus::Rejected);
    assert_eq!(
        (record.tally.yes, record.tally.no),
        (0, 1_000 * UNITS_PER_AGR)
    );
    assert_eq!(
        query::votes(&net.storage, proposal).unwrap(),
        vec![(id("val"), Vote::No)]
    );
}

#[test]
fn votes_weigh_bonded_stake_at_the_end_of_voting() {
    let mut net = Net::new();
    let proposal = submit(&mut net, ProposalKind::AddModel(model("fickle")));
    vote(&mut net, "val", proposal, Vote::Yes);
    // The voter unbonds everything before the tally: its vote then weighs nothing.
    net.run(
        "val",
        TxBody::Unbond {
            amount: 1_000 * UNITS_PER_AGR,
        },
    )
    .unwrap();
    let record = query::proposal(&net.storage, proposal).unwrap().unwrap();
    assert_eq!(record.status, ProposalStatus::NoQuorum);
    assert_eq!(record.tally.yes, 0);
    net.audit();
}

#[test]
fn second_passed_proposal_for_the_same_model_fails_to_execute_and_keeps_deposit() {
    let mut net = Net::new();
    let twin = model("twin");
    let first = submit(&mut net, ProposalKind::AddModel(twin.clone()));
    let second = submit(&mut net, ProposalKind::AddModel(twin.clone()));
    vote(&mut net, "val", first, Vote::Yes);
    vote(&mut net, "val", second, Vote::Yes);
    net.empty_blocks(1);
    assert_eq!(
        query::proposal(&net.storage, first)
            .unwrap()
            .unwrap()
            .status,
        ProposalStatus::Passed
    );
    let status = query::proposal(&net.storage, second)
        .unwrap()
        .unwrap()
        .status;
    assert!(
        matches!(status, ProposalStatus::ExecutionFailed(_)),
        "{status:?}"
    );
    assert_eq!(query::supply(&net.storage).unwrap().escrowed, 0);
    net.audit();
}
