use agora_ledger::TxError;
use agora_types::{TxBody, UNITS_PER_AGR};

use super::harness::{Net, FEE};

#[test]
fn unbonded_stake_is_withdrawable_only_after_unbonding_blocks() {
    let mut net = Net::new();
    net.run(
        "alice",
        TxBody::Bond {
            amount: 50 * UNITS_PER_AGR,
        },
    )
    .unwrap();
    assert_eq!(net.account("alice").bonded, 50 * UNITS_PER_AGR);
    net.run(
        "alice",
        TxBody::Unbond {
            amount: 20 * UNITS_PER_AGR,
        },
    )
    .unwrap();
    let account = net.account("alice");
    assert_eq!(account.bonded, 30 * UNITS_PER_AGR);
    assert_eq!(account.unbonding_total, 20 * UNITS_PER_AGR);
    let release = account.unbonding[0].release_height;
    assert_eq!(release, net.height + 3);
    assert_eq!(
        net.run("alice", TxBody::WithdrawUnbonded),
        Err(TxError::NothingToWithdraw)
    );
    net.empty_blocks(release - net.height - 2);
    // This block is one before the release height.
    assert_eq!(
        net.run("alice", TxBody::WithdrawUnbonded),
        Err(TxError::NothingToWithdraw)
    );
    let before = net.balance("alice");
    // This block is at the release height.
    net.run("alice", TxBody::WithdrawUnbonded).unwrap();
    assert_eq!(net.balance("alice"), before + 20 * UNITS_PER_AGR - FEE);
    assert_eq!(net.account("alice").unbonding_total, 0);
    net.audit();
}

#[test]
fn unbonding_more_than_bonded_fails() {
    let mut net = Net::new();
    net.run("alice", TxBody::Bond { amount: 5 }).unwrap();
    let res = net.run("alice", TxBody::Unbond { amount: 6 });
    assert!(matches!(res, Err(TxError::InsufficientStake { .. })));
    assert_eq!(net.account("alice").bonded, 5);
}

#[test]
fn bonding_more_than_balance_fails_and_changes_nothing() {
    let mut net = Net::new();
    let res = net.run(
        "alice",
        TxBody::Bond {
            amount: 10_000 * UNITS_PER_AGR,
        },
    );
    assert!(matches!(res, Err(TxError::InsufficientFunds { .. })));
    assert_eq!(net.account("alice").bonded, 0);
    net.audit();
}
