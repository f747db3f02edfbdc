use agora_ledger::{
    proof::{prove, state_root, verify},
    state::keys,
};
use agora_types::TxBody;

use super::harness::{id, Net};

#[test]
fn account_and_provider_entries_have_inclusion_proofs_under_the_state_root() {
    let mut net = Net::new();
    net.run(
        "alice",
        TxBody::Transfer {
            to: id("bob"),
            amount: 3,
        },
    )
    .unwrap();
    let root = state_root(&net.storage).unwrap();
    for key in [keys::account(&id("alice")), keys::provider(&id("prov"))] {
        let proof = prove(&net.storage, &key).unwrap().unwrap();
        assert!(verify(&root, &key, &proof.value, &proof.merkle));
        // Light clients check the same proof with agora-types alone.
        assert!(agora_types::merkle::verify_state_entry(
            &root,
            &key,
            &proof.value,
            &proof.merkle
        ));
        let mut wrong_value = proof.value.clone();
        wrong_value[0] ^= 1;
        assert!(!verify(&root, &key, &wrong_value, &proof.merkle));
        assert!(!verify(
            &root,
            &keys::account(&id("carol")),
            &proof.value,
            &proof.merkle
        ));
        let mut moved = proof.merkle.clone();
        moved.index = (moved.index + 1) % moved.total;
        assert!(!verify(&root, &key, &proof.value, &moved));
    }
    assert!(prove(&net.storage, &keys::account(&id("nobody")))
        .unwrap()
        .is_none());
}

#[test]
fn proof_from_an_older_root_fails_against_the_new_root() {
    let mut net = Net::new();
    let key = keys::account(&id("alice"));
    let old = prove(&net.storage, &key).unwrap().unwrap();
    net.run(
        "alice",
        TxBody::Transfer {
            to: id("bob"),
            amount: 3,
        },
    )
    .unwrap();
    let root = state_root(&net.storage).unwrap();
    assert!(!verify(&root, &key, &old.value, &old.merkle));
}
