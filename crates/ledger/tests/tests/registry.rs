use agora_ledger::{query, TxError};
use agora_types::{Cid, Hash, ReceiptTotals, TxBody, UNITS_PER_AGR};

use super::harness::{model, provider_info, Net};

#[test]
fn genesis_provider_is_active() {
    let net = Net::new();
    let providers = query::providers(&net.storage).unwrap();
    assert_eq!(providers.len(), 1);
    assert!(providers[0].active);
}

#[test]
fn provider_needs_min_stake_and_active_models() {
    let mut net = Net::new();
    let base = model("base").cid;
    let res = net.run("alice", TxBody::RegisterProvider(provider_info(&[base])));
    assert!(matches!(res, Err(TxError::InsufficientStake { .. })));
    net.run(
        "alice",
        TxBody::Bond {
            amount: 100 * UNITS_PER_AGR,
        },
    )
    .unwrap();
    let unknown = Cid::of(b"ungoverned");
    let res = net.run("alice", TxBody::RegisterProvider(provider_info(&[unknown])));
    assert_eq!(res, Err(TxError::ModelNotActive { cid: unknown }));
    let res = net.run(
        "alice",
        TxBody::RegisterProvider(provider_info(&[base, base])),
    );
    assert!(matches!(res, Err(TxError::InvalidProviderInfo(_))));
    net.run("alice", TxBody::RegisterProvider(provider_info(&[base])))
        .unwrap();
    let res = net.run("alice", TxBody::RegisterProvider(provider_info(&[base])));
    assert_eq!(res, Err(TxError::AlreadyRegistered));
    let view = query::provider(&net.storage, &super::harness::id("alice"))
        .unwrap()
        .unwrap();
    assert!(view.active);
    // Unbonding below min_stake makes it inactive.
    net.run("alice", TxBody::Unbond { amount: 1 }).unwrap();
    let view = query::provider(&net.storage, &super::harness::id("alice"))
        .unwrap()
        .unwrap();
    assert!(!view.active);
    net.run("alice", TxBody::DeregisterProvider).unwrap();
    assert!(query::provider(&net.storage, &super::harness::id("alice"))
        .unwrap()
        .is_none());
    assert_eq!(
        net.run("alice", TxBody::DeregisterProvider),
        Err(TxError::NotRegistered)
    );
}

#[test]
fn verifier_needs_min_stake() {
    let mut net = Net::new();
    let res = net.run(
        "carol",
        super::harness::register_verifier("http://carol:9000"),
    );
    assert!(matches!(res, Err(TxError::InsufficientStake { .. })));
    net.run(
        "carol",
        TxBody::Bond {
            amount: 100 * UNITS_PER_AGR,
        },
    )
    .unwrap();
    net.run("carol", super::harness::register_verifier("ftp://carol"))
        .unwrap_err();
    net.run(
        "carol",
        super::harness::register_verifier("http://carol:9000"),
    )
    .unwrap();
    assert!(query::is_verifier(&net.storage, &super::harness::id("carol")).unwrap());
    let verifiers = query::verifiers(&net.storage).unwrap();
    assert_eq!(verifiers.len(), 1);
    assert_eq!(verifiers[0].account, super::harness::id("carol"));
    assert_eq!(verifiers[0].endpoint.as_str(), "http://carol:9000");
}

#[test]
fn registering_a_verifier_again_updates_its_endpoint() {
    let mut net = Net::new();
    net.run(
        "carol",
        TxBody::Bond {
            amount: 100 * UNITS_PER_AGR,
        },
    )
    .unwrap();
    net.run("carol", super::harness::register_verifier("http://old:1"))
        .unwrap();
    let res = net.run("carol", super::harness::register_verifier("not a url"));
    assert_eq!(res, Err(TxError::InvalidEndpoint));
    net.run("carol", super::harness::register_verifier("https://new:2"))
        .unwrap();
    let verifiers = query::verifiers(&net.storage).unwrap();
    assert_eq!(verifiers.len(), 1);
    assert_eq!(verifiers[0].endpoint.as_str(), "https://new:2");
    assert_eq!(verifiers[0].registered_height, 2);
}

#[test]
fn receipts_commit_once_per_epoch_for_registered_providers() {
    let mut net = Net::new();
    let totals = ReceiptTotals {
        requests: 3,
        tokens_in: 30,
        tokens_out: 60,
        amount: 900,
    };
    let by_model = |parts: &[(&str, u64)]| {
        parts
            .iter()
            .map(|(name, requests)| agora_types::ModelTotals {
                model: model(name).cid,
                totals: ReceiptTotals {
                    requests: *requests,
                    tokens_in: 10 * requests,
                    tokens_out: 20 * requests,
                    amount: 300 * u128::from(*requests),
                },
            })
            .collect::<Vec<_>>()
            .try_into()
            .unwrap()
    };
    let commit = |epoch| TxBody::CommitReceipts {
        epoch,
        root: Hash::of(b"root"),
        totals,
        by_model: by_model(&[("base", 2), ("other", 1)]),
    };
    // Totals by model must add up to the totals, each model once.
    for parts in [&[("base", 2)][..], &[("base", 2), ("base", 1)][..]] {
        let bad = TxBody::CommitReceipts {
            epoch: 0,
            root: Hash::of(b"root"),
            totals,
            by_model: by_model(parts),
        };
        assert!(
            matches!(net.run("prov", bad), Err(TxError::BadModelTotals(_))),
            "{parts:?}"
        );
    }
    assert_eq!(net.run("alice", commit(0)), Err(TxError::NotRegistered));
    net.run("prov", commit(0)).unwrap();
    assert_eq!(
        net.run("prov", commit(0)),
        Err(TxError::AlreadyCommitted(0))
    );
    assert_eq!(
        net.run("prov", commit(5)),
        Err(TxError::EpochInFuture {
            epoch: 5,
            current: 0
        })
    );
    let stored = query::receipt_commitment(&net.storage, &super::harness::id("prov"), 0)
        .unwrap()
        .unwrap();
    assert_eq!(stored.totals, totals);
}
