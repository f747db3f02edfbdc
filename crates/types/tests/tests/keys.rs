use agora_types::{
    domain, encode, keys::verify_batch, signing::signing_bytes, AccountId, ChainId, Keypair,
    SignedTx, TxBody, Voucher,
};

fn chain(name: &str) -> ChainId {
    ChainId::new(name).unwrap()
}

#[test]
fn account_id_round_trips_as_bech32m_with_agora_prefix() {
    let id = Keypair::from_seed(b"alice").account_id();
    let text = id.to_string();
    assert!(text.starts_with("agora1"), "{text}");
    assert_eq!(text.parse::<AccountId>().unwrap(), id);
}

#[test]
fn account_id_parse_rejects_other_prefix_bech32_and_garbage() {
    let id = Keypair::from_seed(b"alice").account_id();
    let other =
        bech32::encode::<bech32::Bech32m>(bech32::Hrp::parse("cosmos").unwrap(), &id.0).unwrap();
    assert!(other.parse::<AccountId>().is_err());
    let classic =
        bech32::encode::<bech32::Bech32>(bech32::Hrp::parse("agora").unwrap(), &id.0).unwrap();
    assert!(classic.parse::<AccountId>().is_err());
    let short =
        bech32::encode::<bech32::Bech32m>(bech32::Hrp::parse("agora").unwrap(), &id.0[..31])
            .unwrap();
    assert!(short.parse::<AccountId>().is_err());
    assert!("agora1qqqq".parse::<AccountId>().is_err());
    assert!("".parse::<AccountId>().is_err());
}

#[test]
fn keypair_round_trips_through_its_secret_bytes() {
    let key = Keypair::from_seed(b"k");
    assert_eq!(
        Keypair::from_bytes(&key.to_bytes()).account_id(),
        key.account_id()
    );
}

#[test]
fn signature_for_one_domain_never_verifies_for_another() {
    let key = Keypair::from_seed(b"signer");
    let id = key.account_id();
    let chain = chain("agora-a");
    let message = b"same body bytes";
    let signature = key.sign(domain::TX, &chain, message);
    assert!(id.verify(domain::TX, &chain, message, &signature).is_ok());
    for other in [
        domain::VOUCHER,
        domain::RECEIPT,
        domain::PROPOSAL,
        domain::SCORES,
        domain::DISPUTE,
    ] {
        assert!(
            id.verify(other, &chain, message, &signature).is_err(),
            "{other:?}"
        );
    }
}

#[test]
fn signature_for_one_chain_never_verifies_for_another() {
    let key = Keypair::from_seed(b"signer");
    let tx = SignedTx::sign(&key, &chain("agora-a"), 0, 1, TxBody::WithdrawUnbonded);
    assert!(tx.verify(&chain("agora-a")).is_ok());
    assert!(tx.verify(&chain("agora-b")).is_err());
    let voucher = Voucher {
        chain_id: chain("agora-a"),
        channel_id: agora_types::Hash::of(b"c"),
        payer: key.account_id(),
        payee: Keypair::from_seed(b"payee").account_id(),
        cumulative: 5,
    }
    .sign(&key);
    assert!(voucher.verify().is_ok());
    let mut moved = voucher.clone();
    moved.voucher.chain_id = chain("agora-b");
    assert!(moved.verify().is_err());
}

#[test]
fn domain_tags_are_distinct() {
    let tags = [
        domain::TX,
        domain::VOUCHER,
        domain::RECEIPT,
        domain::PROPOSAL,
        domain::SCORES,
        domain::DISPUTE,
    ];
    for (i, a) in tags.iter().enumerate() {
        for b in &tags[i + 1..] {
            assert_ne!(a.tag(), b.tag());
        }
    }
}

#[test]
fn batch_verification_accepts_good_and_refuses_any_bad_signature() {
    let chain = chain("agora-a");
    let txs: Vec<SignedTx> = (0..8u8)
        .map(|n| {
            SignedTx::sign(
                &Keypair::from_seed(&[n]),
                &chain,
                0,
                1,
                TxBody::WithdrawUnbonded,
            )
        })
        .collect();
    let messages: Vec<Vec<u8>> = txs.iter().map(|tx| tx.signing_bytes(&chain)).collect();
    let mut items: Vec<_> = txs
        .iter()
        .zip(&messages)
        .map(|(tx, m)| (tx.signer, m.as_slice(), tx.signature))
        .collect();
    assert!(verify_batch(&items));
    items[3].2 .0[0] ^= 1;
    assert!(!verify_batch(&items));
}

#[test]
fn tx_signing_bytes_are_domain_chain_and_encoding_prefix() {
    let chain = chain("agora-a");
    let tx = SignedTx::sign(
        &Keypair::from_seed(b"s"),
        &chain,
        3,
        7,
        TxBody::WithdrawUnbonded,
    );
    let bytes = encode(&tx);
    let expected = signing_bytes(domain::TX, &chain, &bytes[..bytes.len() - 64]);
    assert_eq!(tx.signing_bytes(&chain), expected);
}

#[test]
fn chain_id_refuses_empty_long_and_odd_characters() {
    assert!(ChainId::new("").is_err());
    assert!(ChainId::new(&"a".repeat(65)).is_err());
    assert!(ChainId::new("Agora").is_err());
    assert!(ChainId::new("agora devnet").is_err());
    assert!(ChainId::new(&"a".repeat(64)).is_ok());
    assert!(ChainId::new("agora-devnet_1.0").is_ok());
}
