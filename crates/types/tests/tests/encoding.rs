use agora_types::{
    decode, encode, Block, BoundedString, BoundedVec, DecodeError, Genesis, Header, SignedReceipt,
    SignedTx, SignedVoucher,
};
use proptest::prelude::*;

#[test]
fn bounded_types_refuse_values_over_their_bound() {
    assert!(BoundedString::<3>::new("abcd").is_err());
    assert!(BoundedString::<3>::new("abc").is_ok());
    assert!(BoundedVec::<u8, 2>::new(vec![1, 2, 3]).is_err());
}

#[test]
fn bounded_decoding_refuses_declared_lengths_over_the_bound() {
    let long = encode(&"abcd".to_string());
    assert!(borsh::from_slice::<BoundedString<3>>(&long).is_err());
    let ok = encode(&"abc".to_string());
    assert_eq!(
        borsh::from_slice::<BoundedString<3>>(&ok).unwrap().as_str(),
        "abc"
    );
    let huge = u32::MAX.to_le_bytes();
    assert!(borsh::from_slice::<BoundedVec<u64, 10>>(&huge).is_err());
    let mut bad_utf8 = 2u32.to_le_bytes().to_vec();
    bad_utf8.extend_from_slice(&[0xff, 0xfe]);
    assert!(borsh::from_slice::<BoundedString<3>>(&bad_utf8).is_err());
}

#[test]
fn decode_refuses_empty_input() {
    assert!(matches!(
        decode::<SignedTx>(&[]),
        Err(DecodeError::Invalid(_))
    ));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3_000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_any_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = decode::<SignedTx>(&bytes);
        let _ = decode::<Block>(&bytes);
        let _ = decode::<Header>(&bytes);
        let _ = decode::<Genesis>(&bytes);
        let _ = decode::<SignedVoucher>(&bytes);
        let _ = decode::<SignedReceipt>(&bytes);
        if let Ok(tx) = decode::<SignedTx>(&bytes) {
            // Whatever decodes re-encodes to the same bytes: the encoding is canonical.
            prop_assert_eq!(encode(&tx), bytes);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1_000, ..ProptestConfig::default() })]

    /// Any body that decodes, once signed, round-trips through the wire form and verifies.
    #[test]
    fn signed_arbitrary_bodies_round_trip_and_verify(
        variant in 0u8..20,
        rest in proptest::collection::vec(any::<u8>(), 0..300),
        nonce in any::<u64>(),
        fee in any::<u128>(),
    ) {
        let bytes = [&[variant][..], &rest].concat();
        let mut slice = bytes.as_slice();
        let Ok(body) = <agora_types::TxBody as borsh::BorshDeserialize>::deserialize(&mut slice) else {
            return Ok(());
        };
        let chain = agora_types::ChainId::new("agora-prop").unwrap();
        let key = agora_types::Keypair::from_seed(b"prop");
        let tx = SignedTx::sign(&key, &chain, nonce, fee, body);
        let wire = tx.to_bytes();
        let back = SignedTx::from_bytes(&wire).unwrap();
        prop_assert_eq!(&back, &tx);
        prop_assert!(back.verify(&chain).is_ok());
        prop_assert_eq!(back.hash(), agora_types::Hash::of(&wire));
    }
}
