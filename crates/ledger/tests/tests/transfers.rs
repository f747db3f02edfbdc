use agora_ledger::TxError;
use agora_types::{ChainId, Cid, Hash, Keypair, ProviderScore, SignedTx, TxBody, UNITS_PER_AGR};

use super::harness::{id, key, Net, FEE};

fn transfer(to: &str, amount: u128) -> TxBody {
    TxBody::Transfer { to: id(to), amount }
}

#[test]
fn transfer_moves_amount_and_burns_fee() {
    let mut net = Net::new();
    let before = (net.balance("alice"), net.balance("bob"));
    net.run("alice", transfer("bob", 5 * UNITS_PER_AGR))
        .unwrap();
    assert_eq!(net.balance("alice"), before.0 - 5 * UNITS_PER_AGR - FEE);
    assert_eq!(net.balance("bob"), before.1 + 5 * UNITS_PER_AGR);
    assert_eq!(net.account("alice").nonce, 1);
    let supply = agora_ledger::query::supply(&net.storage).unwrap();
    assert_eq!(supply.burned, FEE);
    net.audit();
}

#[test]
fn overdrawn_transfer_pays_fee_and_changes_nothing_else() {
    let mut net = Net::new();
    let before = net.balance("alice");
    let res = net.run("alice", transfer("bob", before));
    assert!(
        matches!(res, Err(TxError::InsufficientFunds { .. })),
        "{res:?}"
    );
    assert_eq!(net.balance("alice"), before - FEE);
    assert_eq!(net.balance("bob"), 1_000 * UNITS_PER_AGR);
    assert_eq!(net.account("alice").nonce, 1);
    net.audit();
}

#[test]
fn zero_transfer_fails_with_fee_charged() {
    let mut net = Net::new();
    let res = net.run("alice", transfer("bob", 0));
    assert_eq!(res, Err(TxError::ZeroAmount));
    assert_eq!(net.account("alice").nonce, 1);
}

#[test]
fn replayed_tx_is_rejected_and_changes_nothing() {
    let mut net = Net::new();
    let tx = net.tx("alice", transfer("bob", 7));
    net.block(vec![tx.clone()]);
    let before = net.account("alice");
    let outcome = net.block(vec![tx]);
    let err = outcome.txs[0].result.clone().unwrap_err();
    assert_eq!(
        err,
        TxError::BadNonce {
            expected: 1,
            got: 0
        }
    );
    assert!(err.is_rejection());
    assert_eq!(outcome.txs[0].fee_paid, 0);
    assert_eq!(net.account("alice"), before);
}

#[test]
fn same_tx_twice_in_one_block_runs_once() {
    let mut net = Net::new();
    let tx = net.tx("alice", transfer("bob", 7));
    let outcome = net.block(vec![tx.clone(), tx]);
    assert!(outcome.txs[0].result.is_ok());
    assert!(matches!(
        outcome.txs[1].result,
        Err(TxError::BadNonce { .. })
    ));
    assert_eq!(net.balance("bob"), 1_000 * UNITS_PER_AGR + 7);
}

#[test]
fn out_of_order_nonce_is_rejected() {
    let mut net = Net::new();
    let first = net.tx("alice", transfer("bob", 1));
    let second = net.tx("alice", transfer("bob", 2));
    let outcome = net.block(vec![second.clone(), first]);
    assert!(matches!(
        outcome.txs[0].result,
        Err(TxError::BadNonce {
            expected: 0,
            got: 1
        })
    ));
    assert!(outcome.txs[1].result.is_ok());
    let outcome = net.block(vec![second]);
    assert!(outcome.txs[0].result.is_ok());
    assert_eq!(net.account("alice").nonce, 2);
}

#[test]
fn tx_signed_for_another_chain_is_rejected() {
    let mut net = Net::new();
    let other = ChainId::new("agora-other").unwrap();
    let tx = SignedTx::sign(&key("alice"), &other, 0, FEE, transfer("bob", 1));
    let before = net.account("alice");
    let outcome = net.block(vec![tx]);
    assert_eq!(outcome.txs[0].result, Err(TxError::BadSignature));
    assert_eq!(net.account("alice"), before);
}

#[test]
fn tampered_tx_is_rejected() {
    let mut net = Net::new();
    let mut tx = net.tx("alice", transfer("bob", 1));
    tx.body = transfer("carol", 1_000);
    let outcome = net.block(vec![tx]);
    assert_eq!(outcome.txs[0].result, Err(TxError::BadSignature));
}

#[test]
fn bad_signature_among_many_is_found_and_the_rest_apply() {
    let mut net = Net::new();
    let mut txs: Vec<SignedTx> = (0..10)
        .map(|n| net.tx("alice", transfer("bob", n + 1)))
        .collect();
    txs[4].signature.0[0] ^= 1;
    let outcome = net.block(txs);
    for (idx, tx) in outcome.txs.iter().enumerate() {
        match idx {
            4 => assert_eq!(tx.result, Err(TxError::BadSignature)),
            0..=3 => assert!(tx.result.is_ok(), "{idx}: {:?}", tx.result),
            _ => assert!(matches!(tx.result, Err(TxError::BadNonce { .. }))),
        }
    }
}

#[test]
fn fee_below_minimum_and_unpayable_fee_are_rejected() {
    let mut net = Net::new();
    let chain = net.chain_id.clone();
    let low = SignedTx::sign(&key("alice"), &chain, 0, FEE - 1, transfer("bob", 1));
    let broke = Keypair::from_seed(b"nobody");
    let unpaid = SignedTx::sign(&broke, &chain, 0, FEE, transfer("bob", 1));
    let outcome = net.block(vec![low, unpaid]);
    assert!(matches!(
        outcome.txs[0].result,
        Err(TxError::FeeTooLow { .. })
    ));
    assert!(matches!(
        outcome.txs[1].result,
        Err(TxError::CannotPayFee { .. })
    ));
    assert_eq!(net.account("alice").nonce, 0);
    net.audit();
}

#[test]
fn dispute_and_score_txs_from_a_non_verifier_fail_and_pay_fee() {
    let mut net = Net::new();
    let bodies = [
        TxBody::DisputeVote {
            dispute_id: Hash::of(b"d"),
            fraud: true,
        },
        TxBody::CommitScores {
            epoch: 0,
            commitment: Hash::of(b"c"),
        },
        TxBody::RevealScores {
            epoch: 0,
            scores: vec![ProviderScore {
                provider: id("prov"),
                score_ppm: 1,
            }]
            .try_into()
            .unwrap(),
            salt: Hash::of(b"s"),
        },
    ];
    let before = net.balance("carol");
    let expected = [
        TxError::DisputeNotFound(Hash::of(b"d")),
        TxError::NotVerifier,
        TxError::NotVerifier,
    ];
    for (body, expected) in bodies.into_iter().zip(expected) {
        let err = net.run("carol", body).unwrap_err();
        assert_eq!(err, expected);
        assert!(!err.is_rejection());
    }
    assert_eq!(net.balance("carol"), before - 3 * FEE);
    assert_eq!(net.account("carol").nonce, 3);
    let _ = Cid::of(b"unused");
}

#[test]
fn check_tx_admits_valid_and_refuses_bad_txs() {
    let mut net = Net::new();
    let good = net.tx("alice", transfer("bob", 1));
    assert_eq!(agora_ledger::check_tx(&net.storage, &good), Ok(()));
    let ahead = net.tx("alice", transfer("bob", 1));
    assert_eq!(agora_ledger::check_tx(&net.storage, &ahead), Ok(()));
    net.block(vec![good.clone()]);
    assert!(matches!(
        agora_ledger::check_tx(&net.storage, &good),
        Err(TxError::BadNonce { .. })
    ));
    let mut forged = ahead.clone();
    forged.fee += 1;
    assert_eq!(
        agora_ledger::check_tx(&net.storage, &forged),
        Err(TxError::BadSignature)
    );
    let other = ChainId::new("elsewhere").unwrap();
    let foreign = SignedTx::sign(&key("alice"), &other, 1, FEE, transfer("bob", 1));
    assert_eq!(
        agora_ledger::check_tx(&net.storage, &foreign),
        Err(TxError::BadSignature)
    );
    let broke = SignedTx::sign(
        &Keypair::from_seed(b"nobody"),
        &net.chain_id,
        0,
        FEE,
        transfer("bob", 1),
    );
    assert!(matches!(
        agora_ledger::check_tx(&net.storage, &broke),
        Err(TxError::CannotPayFee { .. })
    ));
}
