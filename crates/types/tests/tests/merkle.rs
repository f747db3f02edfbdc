use agora_types::{
    merkle::{leaf_hash, prove, root, verify, EMPTY_ROOT},
    BoundedVec, Hash, MerkleProof,
};
use proptest::prelude::*;

fn leaves(n: usize) -> Vec<Hash> {
    (0..n)
        .map(|i| leaf_hash(&(i as u64).to_le_bytes()))
        .collect()
}

#[test]
fn every_leaf_of_every_small_tree_has_a_valid_proof() {
    assert_eq!(root(&[]), EMPTY_ROOT);
    for n in 1..40 {
        let leaves = leaves(n);
        let root = root(&leaves);
        for (idx, leaf) in leaves.iter().enumerate() {
            let proof = prove(&leaves, idx).unwrap();
            assert!(verify(&root, leaf, &proof), "n={n} idx={idx}");
            let other = leaf_hash(b"other");
            assert!(!verify(&root, &other, &proof));
        }
        assert!(prove(&leaves, n).is_none());
    }
}

#[test]
fn root_depends_on_order_and_content() {
    let mut l = leaves(5);
    let original = root(&l);
    l.swap(0, 1);
    assert_ne!(root(&l), original);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn garbage_proofs_never_panic_and_never_verify(
        index in prop_oneof![0u64..32, any::<u64>()],
        total in prop_oneof![0u64..32, 1u64 << 40..1u64 << 49, any::<u64>()],
        siblings in proptest::collection::vec(any::<[u8; 32]>(), 0..49),
    ) {
        let leaves = leaves(7);
        let real_root = root(&leaves);
        let proof = MerkleProof {
            index,
            total,
            siblings: BoundedVec::new(siblings.into_iter().map(Hash).collect()).unwrap(),
        };
        prop_assert!(!verify(&real_root, &leaf_hash(b"nope"), &proof));
    }
}
