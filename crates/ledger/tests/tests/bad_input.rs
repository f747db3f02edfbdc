use agora_ledger::{apply_block, check_tx, TxError};
use agora_types::{decode, encode, Block, DecodeError, Hash, SignedTx, TxBody, MAX_TX_BYTES};
use proptest::prelude::*;

use super::harness::{id, Net};

fn sample_tx(net: &mut Net) -> SignedTx {
    net.tx(
        "alice",
        TxBody::Transfer {
            to: id("bob"),
            amount: 5,
        },
    )
}

/// Decodes `bytes` as a transaction and, if it decodes, pushes it through `check_tx` and a
/// block; nothing may panic, and a block with it must apply.
fn check_bytes(net: &mut Net, bytes: &[u8]) {
    let Ok(tx) = SignedTx::from_bytes(bytes) else {
        return;
    };
    let _ = check_tx(&net.storage, &tx);
    let txs = vec![tx];
    let block = Block {
        header: net.header(&txs),
        txs,
    };
    let outcome = apply_block(&mut net.storage, &block).unwrap();
    net.height = block.header.height;
    net.parent = block.hash();
    net.root = outcome.state_root;
    net.time = block.header.timestamp_ms;
    net.audit();
}

#[test]
fn every_truncation_of_a_tx_fails_to_decode() {
    let mut net = Net::new();
    let bytes = encode(&sample_tx(&mut net));
    for len in 0..bytes.len() {
        assert!(
            SignedTx::from_bytes(&bytes[..len]).is_err(),
            "prefix of {len} decoded"
        );
    }
    assert!(SignedTx::from_bytes(&bytes).is_ok());
}

#[test]
fn trailing_bytes_are_refused() {
    let mut net = Net::new();
    let mut bytes = encode(&sample_tx(&mut net));
    bytes.push(0);
    assert!(matches!(
        SignedTx::from_bytes(&bytes),
        Err(DecodeError::Invalid(_))
    ));
}

#[test]
fn oversized_input_is_refused_before_decoding() {
    let bytes = vec![0u8; MAX_TX_BYTES + 1];
    assert_eq!(
        SignedTx::from_bytes(&bytes),
        Err(DecodeError::TooLong {
            len: MAX_TX_BYTES + 1,
            max: MAX_TX_BYTES
        })
    );
}

#[test]
fn unknown_body_variant_is_refused() {
    let mut net = Net::new();
    let mut bytes = encode(&sample_tx(&mut net));
    // signer (32) + nonce (8) + fee (16), then the body's variant byte.
    bytes[56] = 200;
    assert!(SignedTx::from_bytes(&bytes).is_err());
}

#[test]
fn huge_declared_length_is_refused_without_allocating() {
    let mut net = Net::new();
    let tx = net.tx(
        "alice",
        TxBody::RevealScores {
            epoch: 0,
            scores: Vec::new().try_into().unwrap(),
            salt: Hash::of(b"s"),
        },
    );
    let mut bytes = encode(&tx);
    // Variant byte at 56, epoch u64 at 57..65, then the scores' u32 length.
    bytes[65..69].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(SignedTx::from_bytes(&bytes).is_err());
    let mut block_bytes = encode(&net.header(&[]));
    block_bytes.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(decode::<Block>(&block_bytes).is_err());
}

#[test]
fn tx_with_bad_signature_is_refused_by_check_tx_and_block() {
    let mut net = Net::new();
    let mut tx = sample_tx(&mut net);
    tx.signature.0[10] ^= 0x40;
    assert_eq!(check_tx(&net.storage, &tx), Err(TxError::BadSignature));
    let outcome = net.block(vec![tx]);
    assert_eq!(outcome.txs[0].result, Err(TxError::BadSignature));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_decoding_checking_or_applying(
        bytes in proptest::collection::vec(any::<u8>(), 0..300)
    ) {
        let mut net = Net::new();
        check_bytes(&mut net, &bytes);
    }

    #[test]
    fn mutated_valid_txs_never_panic_and_never_apply_as_signed(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut net = Net::new();
        let original = sample_tx(&mut net);
        let mut bytes = encode(&original);
        // Each flip lands on its own byte: two flips of one byte could cancel out.
        let mut flipped = std::collections::BTreeSet::new();
        for (idx, value) in &flips {
            let idx = idx.index(bytes.len());
            if flipped.insert(idx) {
                bytes[idx] ^= value | 1;
            }
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        if let Ok(tx) = SignedTx::from_bytes(&bytes) {
            prop_assert_ne!(&tx, &original);
        }
        check_bytes(&mut net, &bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1_500, ..ProptestConfig::default() })]

    /// Random bytes read as a body (ignoring what is left over), signed properly by a funded
    /// key, so that execution itself meets arbitrary input.
    #[test]
    fn arbitrary_bodies_signed_by_funded_keys_keep_invariants(
        variant in 0u8..23,
        rest in proptest::collection::vec(any::<u8>(), 0..400),
        who in 0usize..4,
    ) {
        let bytes = [&[variant][..], &rest].concat();
        let mut slice = bytes.as_slice();
        let Ok(body) = <TxBody as borsh::BorshDeserialize>::deserialize(&mut slice) else {
            return Ok(());
        };
        let mut net = Net::new();
        let name = ["alice", "bob", "prov", "val"][who];
        let before = net.account(name);
        let tx = net.tx(name, body);
        prop_assert_eq!(check_tx(&net.storage, &tx), Ok(()));
        let outcome = net.block(vec![tx]);
        net.audit();
        let after = net.account(name);
        prop_assert_eq!(after.nonce, before.nonce + 1);
        if outcome.txs[0].result.is_err() {
            prop_assert_eq!(after.balance, before.balance - super::harness::FEE);
            prop_assert_eq!(after.bonded, before.bonded);
        }
    }
}
