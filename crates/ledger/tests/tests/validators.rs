use agora_ledger::{query, Event, TxError};
use agora_types::{Params, TxBody, UNITS_PER_AGR};

use super::harness::{genesis, id, Net};

fn register(p2p: &str) -> TxBody {
    TxBody::RegisterValidator {
        p2p: p2p.try_into().unwrap(),
    }
}

fn bond(agr: u128) -> TxBody {
    TxBody::Bond {
        amount: agr * UNITS_PER_AGR,
    }
}

fn members(net: &Net) -> Vec<agora_types::AccountId> {
    query::validators(&net.storage)
        .unwrap()
        .iter()
        .map(|v| v.account)
        .collect()
}

/// Runs empty blocks up to and including height `last`.
fn run_to(net: &mut Net, last: u64) -> Vec<Event> {
    let mut events = Vec::new();
    while net.height < last {
        events.extend(net.block(Vec::new()).events);
    }
    events
}

#[test]
fn a_bonded_registered_validator_joins_the_set_at_the_epoch_boundary() {
    let mut net = Net::new();
    assert_eq!(members(&net), vec![id("val")]);
    net.run("alice", register("10.0.0.2:26670")).unwrap();
    net.run("alice", bond(200)).unwrap();
    // Epochs are 10 blocks: the set changes only at the last one (height 9).
    run_to(&mut net, 8);
    let set = query::validator_set(&net.storage).unwrap();
    assert_eq!((set.epoch, set.members.len()), (0, 1));
    let events = run_to(&mut net, 9);
    assert!(events.contains(&Event::ValidatorSetChanged {
        epoch: 1,
        members: 2
    }));
    let set = query::validator_set(&net.storage).unwrap();
    let mut expected = vec![id("val"), id("alice")];
    expected.sort();
    assert_eq!(members(&net), expected);
    assert_eq!((set.epoch, set.floor), (1, None));
    let alice = set
        .members
        .iter()
        .find(|v| v.account == id("alice"))
        .unwrap();
    assert_eq!(alice.p2p.as_ref().unwrap().as_str(), "10.0.0.2:26670");
    // The first block of the new set records where its consensus starts: block 9.
    let last_of_old = net.parent;
    run_to(&mut net, 10);
    let set = query::validator_set(&net.storage).unwrap();
    assert_eq!(set.floor, Some(last_of_old));
    // Nothing changes at the next boundary.
    run_to(&mut net, 19);
    assert_eq!(query::validator_set(&net.storage).unwrap().epoch, 1);
    net.audit();
}

#[test]
fn stake_below_minimum_unbonding_jail_and_deregistration_keep_or_take_a_validator_out() {
    let mut net = Net::new();
    // Below `min_stake` (100 AGR): registered but not chosen.
    net.run("alice", register("alice.example:26670")).unwrap();
    net.run("alice", bond(50)).unwrap();
    net.run("bob", register("bob.example:26670")).unwrap();
    net.run("bob", bond(300)).unwrap();
    run_to(&mut net, 9);
    let mut expected = vec![id("val"), id("bob")];
    expected.sort();
    assert_eq!(members(&net), expected);
    assert_eq!(query::registered_validators(&net.storage).unwrap().len(), 3);

    // Bob unbonds below the minimum and leaves at the next boundary; alice bonds enough.
    net.run(
        "bob",
        TxBody::Unbond {
            amount: 250 * UNITS_PER_AGR,
        },
    )
    .unwrap();
    net.run("alice", bond(100)).unwrap();
    run_to(&mut net, 19);
    let mut expected = vec![id("val"), id("alice")];
    expected.sort();
    assert_eq!(members(&net), expected);
    assert_eq!(query::validator_set(&net.storage).unwrap().epoch, 2);

    // Deregistering takes effect at the boundary, not before.
    net.run("alice", TxBody::DeregisterValidator).unwrap();
    assert_eq!(members(&net).len(), 2);
    run_to(&mut net, 29);
    assert_eq!(members(&net), vec![id("val")]);
    assert_eq!(
        net.run("alice", TxBody::DeregisterValidator),
        Err(TxError::NotRegistered)
    );

    // The last validator cannot leave the chain without one.
    net.run("val", TxBody::DeregisterValidator).unwrap();
    run_to(&mut net, 39);
    assert_eq!(members(&net), vec![id("val")]);
    assert_eq!(query::validator_set(&net.storage).unwrap().epoch, 3);
    net.audit();
}

#[test]
fn the_most_bonded_fill_max_validators_and_ties_go_by_account() {
    let mut genesis = genesis();
    genesis.params = Params {
        max_validators: 2,
        ..genesis.params
    };
    let mut net = Net::from_genesis(&genesis);
    for (name, agr) in [("alice", 500), ("bob", 700), ("carol", 700)] {
        net.run(name, register(&format!("{name}.example:1")))
            .unwrap();
        net.run(name, bond(agr)).unwrap();
    }
    run_to(&mut net, 9);
    // val has 1,000; bob and carol tie at 700 and bob's account sorts first or second.
    let mut tied = [id("bob"), id("carol")];
    tied.sort();
    let mut expected = vec![id("val"), tied[0]];
    expected.sort();
    assert_eq!(members(&net), expected);
}

#[test]
fn a_new_address_updates_the_set_without_a_new_epoch() {
    let mut net = Net::new();
    net.run("alice", register("10.0.0.2:1")).unwrap();
    net.run("alice", bond(200)).unwrap();
    run_to(&mut net, 9);
    net.run("alice", register("10.0.0.3:1")).unwrap();
    run_to(&mut net, 19);
    let set = query::validator_set(&net.storage).unwrap();
    assert_eq!(set.epoch, 1);
    let alice = set
        .members
        .iter()
        .find(|v| v.account == id("alice"))
        .unwrap();
    assert_eq!(alice.p2p.as_ref().unwrap().as_str(), "10.0.0.3:1");
}

#[test]
fn a_malformed_address_is_refused_and_changes_nothing() {
    let mut net = Net::new();
    for bad in ["no-port", "http://10.0.0.2:1", "host:0", ":1", "a b:1"] {
        assert_eq!(
            net.run("alice", register(bad)),
            Err(TxError::InvalidP2pAddress),
            "{bad}"
        );
    }
    assert_eq!(query::registered_validators(&net.storage).unwrap().len(), 1);
}
