//! Challenges, committee draws, votes and verdicts, through real blocks.

use agora_ledger::{
    query,
    state::{DisputeOutcome, DisputeStatus},
    Event, TxError,
};
use agora_types::{
    AccountId, Amount, ChainId, Genesis, Hash, Receipt, SamplingParams, SignedReceipt, TxBody,
    UNITS_PER_AGR,
};

use super::harness::{genesis, id, key, model, register_verifier, Net, FEE};

const BOND: Amount = 10 * UNITS_PER_AGR;
const STAKE: Amount = 200 * UNITS_PER_AGR;
const PERIOD: u64 = 5;

/// The test genesis plus `verifiers` (10,000 AGR each), committee size 3, period 5.
fn verifier_genesis(verifiers: &[&str]) -> Genesis {
    let mut genesis = genesis();
    for name in verifiers {
        genesis.accounts.push((id(name), 10_000 * UNITS_PER_AGR));
    }
    genesis.params.dispute_period_blocks = PERIOD;
    genesis.params.dispute_committee_size = 3;
    genesis
}

/// A chain where each `(name, stake)` bonded `stake` and registered as a verifier in block 1.
fn net_with(verifiers: &[(&str, Amount)]) -> Net {
    let names: Vec<&str> = verifiers.iter().map(|(name, _)| *name).collect();
    let mut net = Net::from_genesis(&verifier_genesis(&names));
    let mut txs = Vec::new();
    for (name, stake) in verifiers {
        txs.push(net.tx(name, TxBody::Bond { amount: *stake }));
        txs.push(net.tx(name, register_verifier(&format!("http://{name}:9000"))));
    }
    let outcome = net.block(txs);
    for tx in &outcome.txs {
        tx.result.clone().unwrap();
    }
    net
}

/// Four verifiers of equal stake: `v1` challenges, `v2`..`v4` are the only candidates.
fn four() -> Net {
    net_with(&[("v1", STAKE), ("v2", STAKE), ("v3", STAKE), ("v4", STAKE)])
}

/// A receipt by `provider` for `payer`, signed with `signer`'s key, charging 3 AGR
/// (100 prompt tokens at 10,000 AGR per million, 200 completion tokens at the same price).
fn receipt_signed_by(
    chain: &ChainId,
    provider: &str,
    signer: &str,
    payer: &str,
    tag: u64,
) -> SignedReceipt {
    Receipt {
        chain_id: chain.clone(),
        provider: id(provider),
        request_hash: Hash::of(&tag.to_le_bytes()),
        response_hash: Hash::of(b"response"),
        model: model("base").cid,
        prompt_tokens: 100,
        completion_tokens: 200,
        sampling: SamplingParams {
            temperature_milli: 0,
            top_p_milli: 1_000,
            top_k: 0,
            seed: 7,
        },
        price_in: 10_000 * UNITS_PER_AGR,
        price_out: 10_000 * UNITS_PER_AGR,
        payer: id(payer),
        voucher_amount: 5 * UNITS_PER_AGR,
        timestamp_ms: 1_700_000_000_000,
    }
    .sign(&key(signer))
}

fn receipt(net: &Net, tag: u64) -> SignedReceipt {
    receipt_signed_by(&net.chain_id, "prov", "prov", "alice", tag)
}

fn challenge_body(receipt: SignedReceipt, bond: Amount) -> TxBody {
    TxBody::Challenge {
        receipt,
        transcript: agora_types::Cid::of(b"transcript"),
        bond,
    }
}

/// Challenges `receipt` from `who` and returns the committee.
fn challenge(net: &mut Net, who: &str, receipt: SignedReceipt) -> Vec<AccountId> {
    let tx = net.tx(who, challenge_body(receipt, BOND));
    let outcome = net.block(vec![tx]);
    outcome.txs[0].result.clone().unwrap();
    match &outcome.txs[0].events[..] {
        [.., Event::DisputeOpened { committee, .. }] => committee.clone(),
        other => panic!("no DisputeOpened event: {other:?}"),
    }
}

fn vote(net: &mut Net, who: &str, dispute_id: Hash, fraud: bool) -> Result<(), TxError> {
    net.run(who, TxBody::DisputeVote { dispute_id, fraud })
}

fn name_of(account: &AccountId, names: &[&str]) -> String {
    names
        .iter()
        .find(|name| id(name) == *account)
        .map(|name| name.to_string())
        .unwrap()
}

fn outcome(net: &Net, dispute_id: &Hash) -> Option<DisputeOutcome> {
    match query::dispute(&net.storage, dispute_id)
        .unwrap()
        .unwrap()
        .status
    {
        DisputeStatus::Open => None,
        DisputeStatus::Resolved(outcome) => Some(outcome),
    }
}

#[test]
fn proven_fraud_slashes_jails_refunds_the_payer_and_pays_the_challenger() {
    let mut net = four();
    let receipt = receipt(&net, 1);
    let dispute_id = receipt.receipt.id();
    let prov_before = net.account("prov");
    let alice_before = net.balance("alice");
    let v1_before = net.balance("v1");
    let burned_before = query::supply(&net.storage).unwrap().burned;

    let committee = challenge(&mut net, "v1", receipt);
    let opened = net.height;
    assert_eq!(committee.len(), 3);
    assert!(!committee.contains(&id("v1")) && !committee.contains(&id("prov")));
    assert_eq!(net.balance("v1"), v1_before - FEE - BOND);
    net.audit();

    // Exactly two thirds of the committee's stake votes fraud; the third member stays silent.
    let names = ["v2", "v3", "v4"];
    let voters: Vec<String> = committee.iter().map(|m| name_of(m, &names)).collect();
    vote(&mut net, &voters[0], dispute_id, true).unwrap();
    vote(&mut net, &voters[1], dispute_id, true).unwrap();
    while net.height < opened + PERIOD - 1 {
        net.empty_blocks(1);
    }
    assert_eq!(
        outcome(&net, &dispute_id),
        None,
        "settled before its deadline"
    );
    net.empty_blocks(1);
    let outcome = outcome(&net, &dispute_id).expect("settled at its deadline");
    let deadline = opened + PERIOD;

    // 10% of 100 AGR seized; 3 AGR refunded; half of the other 7 AGR to the challenger.
    let slashed = 10 * UNITS_PER_AGR;
    let refunded = 3 * UNITS_PER_AGR;
    let reward = (slashed - refunded) / 2;
    assert_eq!(
        outcome,
        DisputeOutcome {
            fraud: true,
            fraud_stake: 2 * STAKE,
            committee_stake: 3 * STAKE,
            slashed,
            refunded,
            reward,
            bond_returned: BOND,
            burned: slashed - refunded - reward,
        }
    );
    let prov = net.account("prov");
    assert_eq!(prov.bonded, prov_before.bonded - slashed);
    assert_eq!(prov.bonded, prov_before.bonded / 10 * 9);
    assert_eq!(prov.jailed_until, deadline + net_params(&net).jail_blocks);
    assert!(
        !query::provider(&net.storage, &id("prov"))
            .unwrap()
            .unwrap()
            .active
    );
    assert_eq!(net.balance("alice"), alice_before + refunded);
    assert_eq!(net.balance("v1"), v1_before - FEE + reward);
    let supply = query::supply(&net.storage).unwrap();
    assert_eq!(
        supply.burned - burned_before,
        slashed - refunded - reward + 3 * FEE
    );
    net.audit();
}

fn net_params(net: &Net) -> agora_types::Params {
    query::params(&net.storage).unwrap()
}

#[test]
fn dismissed_challenge_burns_the_bond_and_spares_the_provider() {
    let mut net = four();
    let receipt = receipt(&net, 1);
    let dispute_id = receipt.receipt.id();
    let prov_before = net.account("prov");
    let v1_before = net.balance("v1");
    let committee = challenge(&mut net, "v1", receipt);
    let names = ["v2", "v3", "v4"];
    // One member of three votes fraud: below two thirds.
    vote(&mut net, &name_of(&committee[0], &names), dispute_id, true).unwrap();
    vote(&mut net, &name_of(&committee[1], &names), dispute_id, false).unwrap();
    net.empty_blocks(PERIOD);
    let outcome = outcome(&net, &dispute_id).unwrap();
    assert!(!outcome.fraud);
    assert_eq!(outcome.fraud_stake, STAKE);
    assert_eq!((outcome.slashed, outcome.burned), (0, BOND));
    assert_eq!(net.account("prov"), prov_before);
    assert_eq!(net.balance("v1"), v1_before - FEE - BOND);
    assert!(query::disputes(&net.storage, true).unwrap().is_empty());
    assert_eq!(query::disputes(&net.storage, false).unwrap().len(), 1);
    net.audit();
}

#[test]
fn committee_is_deterministic_and_excludes_challenger_provider_and_inactive_verifiers() {
    let verifiers = [
        ("v1", STAKE),
        ("v2", STAKE),
        ("v3", STAKE),
        ("v4", STAKE),
        ("v5", STAKE),
        ("poor", 100 * UNITS_PER_AGR),
    ];
    let build = || {
        let mut net = net_with(&verifiers);
        // The provider is a verifier too, and "poor" falls below min_stake.
        net.run("prov", register_verifier("http://prov:9000"))
            .unwrap();
        net.run("poor", TxBody::Unbond { amount: 1 }).unwrap();
        net
    };
    let mut first = build();
    let mut second = build();
    let receipt_a = receipt(&first, 1);
    let committee_a = challenge(&mut first, "v1", receipt_a.clone());
    let committee_b = challenge(&mut second, "v1", receipt_a);
    assert_eq!(committee_a, committee_b, "same state, same committee");
    assert_eq!(
        query::dispute(&first.storage, &receipt(&first, 1).receipt.id()).unwrap(),
        query::dispute(&second.storage, &receipt(&second, 1).receipt.id()).unwrap()
    );
    for tag in 2..30 {
        let receipt = receipt(&first, tag);
        let committee = challenge(&mut first, "v1", receipt);
        assert_eq!(committee.len(), 3);
        for excluded in ["v1", "prov", "poor"] {
            assert!(!committee.contains(&id(excluded)), "{excluded} drawn");
        }
        let mut sorted = committee.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 3, "drawn twice");
    }
    first.audit();
}

#[test]
fn committee_draw_is_weighted_by_stake() {
    let mut genesis = verifier_genesis(&["ch", "big", "s1", "s2", "s3"]);
    genesis.params.dispute_committee_size = 1;
    let mut net = Net::from_genesis(&genesis);
    let mut txs = Vec::new();
    for (name, stake) in [
        ("ch", 100),
        ("big", 900),
        ("s1", 100),
        ("s2", 100),
        ("s3", 100),
    ] {
        txs.push(net.tx(
            name,
            TxBody::Bond {
                amount: stake * UNITS_PER_AGR,
            },
        ));
        txs.push(net.tx(name, register_verifier("http://v:1")));
    }
    net.block(txs);
    let mut big = 0;
    let mut small = [0; 3];
    let draws = 120;
    for tag in 0..draws {
        let receipt = receipt(&net, tag);
        let committee = challenge(&mut net, "ch", receipt);
        if committee == [id("big")] {
            big += 1;
        }
        for (idx, name) in ["s1", "s2", "s3"].iter().enumerate() {
            if committee == [id(name)] {
                small[idx] += 1;
            }
        }
    }
    // Expected 75% for "big" (900 of 1,200) and about 8% for each small one.
    assert_eq!(big + small.iter().sum::<i32>(), draws as i32);
    assert!((75..=105).contains(&big), "big drawn {big} of {draws}");
    for count in small {
        assert!((1..=20).contains(&count), "small drawn {count}: {small:?}");
    }
}

#[test]
fn challenge_without_eligible_committee_fails_and_escrows_nothing() {
    let mut net = net_with(&[("v1", STAKE)]);
    let before = net.balance("v1");
    let tx = net.tx("v1", challenge_body(receipt(&net, 1), BOND));
    let res = net.block(vec![tx]).txs[0].result.clone();
    assert_eq!(res, Err(TxError::NoCommittee));
    assert_eq!(net.balance("v1"), before - FEE);
    net.audit();
}

#[test]
fn bad_challenges_are_rejected_with_a_reason() {
    let mut net = four();
    net.run("prov", TxBody::Bond { amount: STAKE }).unwrap();
    net.run("prov", register_verifier("http://prov:9000"))
        .unwrap();
    let chain = net.chain_id.clone();
    let v1_before = net.balance("v1");

    // Forged: names "prov" but signed by "alice".
    let forged = receipt_signed_by(&chain, "prov", "alice", "alice", 1);
    let res = net.run("v1", challenge_body(forged, BOND));
    assert_eq!(res, Err(TxError::BadReceiptSignature));
    // Properly signed, but "alice" is no provider.
    let stranger = receipt_signed_by(&chain, "alice", "alice", "bob", 1);
    let res = net.run("v1", challenge_body(stranger, BOND));
    assert_eq!(res, Err(TxError::UnknownProvider));
    // Signed for another chain: not a receipt of this ledger.
    let other = ChainId::new("agora-other").unwrap();
    let foreign = receipt_signed_by(&other, "prov", "prov", "alice", 1);
    let res = net.run("v1", challenge_body(foreign, BOND));
    assert_eq!(res, Err(TxError::UnknownReceipt("agora-other".to_string())));
    // Bond too low.
    let res = net.run("v1", challenge_body(receipt(&net, 1), BOND - 1));
    assert_eq!(
        res,
        Err(TxError::BondTooLow {
            min: BOND,
            got: BOND - 1
        })
    );
    // Not a verifier.
    let res = net.run("alice", challenge_body(receipt(&net, 1), BOND));
    assert_eq!(res, Err(TxError::NotVerifier));
    // Its own receipt.
    let res = net.run("prov", challenge_body(receipt(&net, 1), BOND));
    assert_eq!(res, Err(TxError::SelfChallenge));
    // Each failure cost only its fee.
    assert_eq!(net.balance("v1"), v1_before - 4 * FEE);
    assert!(query::disputes(&net.storage, false).unwrap().is_empty());

    // Twice.
    let first = receipt(&net, 1);
    challenge(&mut net, "v1", first);
    let id = receipt(&net, 1).receipt.id();
    let res = net.run("v2", challenge_body(receipt(&net, 1), BOND));
    assert_eq!(res, Err(TxError::AlreadyChallenged(id)));
    net.audit();
}

#[test]
fn bad_votes_are_rejected_with_a_reason() {
    let mut net = net_with(&[
        ("v1", STAKE),
        ("v2", STAKE),
        ("v3", STAKE),
        ("v4", STAKE),
        ("v5", STAKE),
    ]);
    let receipt = receipt(&net, 1);
    let dispute_id = receipt.receipt.id();
    let committee = challenge(&mut net, "v1", receipt);
    let names = ["v2", "v3", "v4", "v5"];
    let outsider = names
        .iter()
        .find(|name| !committee.contains(&id(name)))
        .unwrap();
    let member = name_of(&committee[0], &names);

    let res = vote(&mut net, outsider, dispute_id, true);
    assert_eq!(res, Err(TxError::NotCommitteeMember(dispute_id)));
    let res = vote(&mut net, "v1", dispute_id, true);
    assert_eq!(res, Err(TxError::NotCommitteeMember(dispute_id)));
    let unknown = Hash::of(b"nothing");
    let res = vote(&mut net, &member, unknown, true);
    assert_eq!(res, Err(TxError::DisputeNotFound(unknown)));
    vote(&mut net, &member, dispute_id, false).unwrap();
    let res = vote(&mut net, &member, dispute_id, true);
    assert_eq!(res, Err(TxError::AlreadyVoted(dispute_id)));

    let deadline = query::dispute(&net.storage, &dispute_id)
        .unwrap()
        .unwrap()
        .deadline_height;
    while net.height < deadline {
        net.empty_blocks(1);
    }
    let late = name_of(&committee[1], &names);
    let res = vote(&mut net, &late, dispute_id, true);
    assert_eq!(
        res,
        Err(TxError::DisputeClosed {
            id: dispute_id,
            deadline_height: deadline
        })
    );
    net.audit();
}

#[test]
fn a_vote_in_the_deadline_block_counts() {
    let mut net = four();
    let receipt = receipt(&net, 1);
    let dispute_id = receipt.receipt.id();
    let committee = challenge(&mut net, "v1", receipt);
    let names = ["v2", "v3", "v4"];
    let opened = net.height;
    while net.height < opened + PERIOD - 1 {
        net.empty_blocks(1);
    }
    let txs = committee
        .iter()
        .map(|member| {
            net.tx(
                &name_of(member, &names),
                TxBody::DisputeVote {
                    dispute_id,
                    fraud: true,
                },
            )
        })
        .collect();
    let outcome_block = net.block(txs);
    assert_eq!(net.height, opened + PERIOD);
    assert!(outcome_block.txs.iter().all(|tx| tx.result.is_ok()));
    assert!(outcome_block
        .events
        .iter()
        .any(|event| matches!(event, Event::DisputeResolved { outcome, .. } if outcome.fraud)));
    assert!(outcome(&net, &dispute_id).unwrap().fraud);
}
