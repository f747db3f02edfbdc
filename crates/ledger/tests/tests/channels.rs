use agora_ledger::{channel_id, query, TxError};
use agora_types::{ChainId, Hash, Keypair, SignedVoucher, TxBody, Voucher, UNITS_PER_AGR};

use super::harness::{id, key, Net, FEE};

const DEPOSIT: u128 = 100 * UNITS_PER_AGR;

/// Opens a channel alice → bob expiring at height 10 and returns its id.
fn open(net: &mut Net) -> Hash {
    let nonce = net.account("alice").nonce;
    net.run(
        "alice",
        TxBody::OpenChannel {
            payee: id("bob"),
            deposit: DEPOSIT,
            expiry_height: 10,
        },
    )
    .unwrap();
    channel_id(&id("alice"), nonce)
}

fn voucher(net: &Net, channel: Hash, cumulative: u128) -> SignedVoucher {
    Voucher {
        chain_id: net.chain_id.clone(),
        channel_id: channel,
        payer: id("alice"),
        payee: id("bob"),
        cumulative,
    }
    .sign(&key("alice"))
}

/// Redeems `voucher`, claiming its whole cumulative amount.
fn redeem(net: &mut Net, who: &str, voucher: SignedVoucher) -> Result<(), TxError> {
    let amount = voucher.voucher.cumulative;
    claim(net, who, voucher, amount)
}

/// Redeems `voucher`, claiming `amount` in total.
fn claim(net: &mut Net, who: &str, voucher: SignedVoucher, amount: u128) -> Result<(), TxError> {
    net.run(who, TxBody::RedeemChannel { voucher, amount })
}

fn redeem_at(net: &mut Net, channel: Hash, cumulative: u128) -> Result<(), TxError> {
    let signed = voucher(net, channel, cumulative);
    redeem(net, "bob", signed)
}

/// Runs a redeem that must fail, and checks that only bob's fee and nonce changed.
fn check_redeem_fails(net: &mut Net, voucher: SignedVoucher, expected: TxError) {
    let amount = voucher.voucher.cumulative;
    check_claim_fails(net, voucher, amount, expected);
}

/// Runs a claim that must fail, and checks that only bob's fee and nonce changed.
fn check_claim_fails(net: &mut Net, voucher: SignedVoucher, amount: u128, expected: TxError) {
    let channel = voucher.voucher.channel_id;
    let before_channel = query::channel(&net.storage, &channel).unwrap();
    let before_bob = net.account("bob");
    let before_alice = net.account("alice");
    assert_eq!(claim(net, "bob", voucher, amount), Err(expected));
    assert_eq!(
        query::channel(&net.storage, &channel).unwrap(),
        before_channel
    );
    let after_bob = net.account("bob");
    assert_eq!(after_bob.balance, before_bob.balance - FEE);
    assert_eq!(after_bob.nonce, before_bob.nonce + 1);
    assert_eq!(net.account("alice"), before_alice);
    net.audit();
}

#[test]
fn open_escrows_the_deposit() {
    let mut net = Net::new();
    let before = net.balance("alice");
    let channel = open(&mut net);
    assert_eq!(net.balance("alice"), before - DEPOSIT - FEE);
    let record = query::channel(&net.storage, &channel).unwrap().unwrap();
    assert_eq!((record.deposit, record.redeemed), (DEPOSIT, 0));
    assert_eq!(query::supply(&net.storage).unwrap().escrowed, DEPOSIT);
    assert_eq!(query::channels(&net.storage).unwrap(), vec![record]);
    net.audit();
}

#[test]
fn redeem_pays_only_the_increase_of_the_latest_voucher() {
    let mut net = Net::new();
    let channel = open(&mut net);
    let bob = net.balance("bob");
    redeem_at(&mut net, channel, 10).unwrap();
    redeem_at(&mut net, channel, 25).unwrap();
    assert_eq!(net.balance("bob"), bob + 25 - 2 * FEE);
    assert_eq!(
        query::channel(&net.storage, &channel)
            .unwrap()
            .unwrap()
            .redeemed,
        25
    );
    net.audit();
}

fn redeemed(net: &Net, channel: Hash) -> u128 {
    query::channel(&net.storage, &channel)
        .unwrap()
        .unwrap()
        .redeemed
}

#[test]
fn claim_below_the_voucher_pays_exactly_the_claim() {
    let mut net = Net::new();
    let channel = open(&mut net);
    let bob = net.balance("bob");
    let alice = net.balance("alice");
    let quoted = voucher(&net, channel, 50);
    claim(&mut net, "bob", quoted, 18).unwrap();
    assert_eq!(net.balance("bob"), bob + 18 - FEE);
    assert_eq!(redeemed(&net, channel), 18);
    assert_eq!(query::supply(&net.storage).unwrap().escrowed, DEPOSIT - 18);
    // The unclaimed rest goes back to the payer when the channel closes.
    net.run(
        "bob",
        TxBody::CloseChannel {
            channel_id: channel,
        },
    )
    .unwrap();
    assert_eq!(net.balance("alice"), alice + DEPOSIT - 18);
    net.audit();
}

#[test]
fn claim_above_the_voucher_fails_and_changes_nothing_but_the_fee() {
    let mut net = Net::new();
    let channel = open(&mut net);
    let quoted = voucher(&net, channel, 50);
    check_claim_fails(
        &mut net,
        quoted,
        51,
        TxError::ClaimExceedsVoucher {
            claim: 51,
            cumulative: 50,
        },
    );
    assert_eq!(redeemed(&net, channel), 0);
    assert_eq!(
        TxError::ClaimExceedsVoucher {
            claim: 51,
            cumulative: 50
        }
        .code(),
        41
    );
}

#[test]
fn later_claim_with_the_same_voucher_pays_the_difference() {
    let mut net = Net::new();
    let channel = open(&mut net);
    let bob = net.balance("bob");
    let quoted = voucher(&net, channel, 50);
    claim(&mut net, "bob", quoted.clone(), 20).unwrap();
    claim(&mut net, "bob", quoted.clone(), 50).unwrap();
    assert_eq!(net.balance("bob"), bob + 50 - 2 * FEE);
    assert_eq!(redeemed(&net, channel), 50);
    // Claiming the same total again is stale.
    check_claim_fails(
        &mut net,
        quoted,
        50,
        TxError::StaleVoucher {
            redeemed: 50,
            cumulative: 50,
        },
    );
}

#[test]
fn claim_at_or_below_the_redeemed_total_is_stale() {
    let mut net = Net::new();
    let channel = open(&mut net);
    let quoted = voucher(&net, channel, 50);
    claim(&mut net, "bob", quoted.clone(), 30).unwrap();
    let newer = voucher(&net, channel, 80);
    check_claim_fails(
        &mut net,
        newer,
        30,
        TxError::StaleVoucher {
            redeemed: 30,
            cumulative: 30,
        },
    );
    check_claim_fails(
        &mut net,
        quoted,
        0,
        TxError::StaleVoucher {
            redeemed: 30,
            cumulative: 0,
        },
    );
}

#[test]
fn redeem_rejects_stale_voucher() {
    let mut net = Net::new();
    let channel = open(&mut net);
    redeem_at(&mut net, channel, 30).unwrap();
    let older = voucher(&net, channel, 20);
    check_redeem_fails(
        &mut net,
        older,
        TxError::StaleVoucher {
            redeemed: 30,
            cumulative: 20,
        },
    );
    let same = voucher(&net, channel, 30);
    check_redeem_fails(
        &mut net,
        same,
        TxError::StaleVoucher {
            redeemed: 30,
            cumulative: 30,
        },
    );
}

#[test]
fn redeem_rejects_forged_voucher() {
    let mut net = Net::new();
    let channel = open(&mut net);
    let forged = Voucher {
        chain_id: net.chain_id.clone(),
        channel_id: channel,
        payer: id("alice"),
        payee: id("bob"),
        cumulative: 50,
    }
    .sign(&key("bob"));
    check_redeem_fails(&mut net, forged, TxError::VoucherBadSignature);
    let mut tampered = voucher(&net, channel, 10);
    tampered.voucher.cumulative = 90;
    check_redeem_fails(&mut net, tampered, TxError::VoucherBadSignature);
}

#[test]
fn redeem_rejects_wrong_chain_voucher() {
    let mut net = Net::new();
    let channel = open(&mut net);
    let foreign = Voucher {
        chain_id: ChainId::new("agora-other").unwrap(),
        channel_id: channel,
        payer: id("alice"),
        payee: id("bob"),
        cumulative: 50,
    }
    .sign(&key("alice"));
    check_redeem_fails(&mut net, foreign, TxError::VoucherWrongChain);
}

#[test]
fn redeem_rejects_wrong_payee_voucher_and_non_payee_signer() {
    let mut net = Net::new();
    let channel = open(&mut net);
    let for_carol = Voucher {
        chain_id: net.chain_id.clone(),
        channel_id: channel,
        payer: id("alice"),
        payee: id("carol"),
        cumulative: 50,
    }
    .sign(&key("alice"));
    check_redeem_fails(&mut net, for_carol, TxError::VoucherWrongParty);
    let good = voucher(&net, channel, 50);
    let before = net.balance("carol");
    assert_eq!(
        redeem(&mut net, "carol", good),
        Err(TxError::NotChannelPayee)
    );
    assert_eq!(net.balance("carol"), before - FEE);
    assert_eq!(
        query::channel(&net.storage, &channel)
            .unwrap()
            .unwrap()
            .redeemed,
        0
    );
}

#[test]
fn redeem_rejects_voucher_above_deposit() {
    let mut net = Net::new();
    let channel = open(&mut net);
    let greedy = voucher(&net, channel, DEPOSIT + 1);
    check_redeem_fails(
        &mut net,
        greedy,
        TxError::VoucherExceedsDeposit {
            deposit: DEPOSIT,
            cumulative: DEPOSIT + 1,
        },
    );
}

#[test]
fn payer_reclaims_remainder_only_after_expiry() {
    let mut net = Net::new();
    let channel = open(&mut net);
    redeem_at(&mut net, channel, 40).unwrap();
    let close = TxBody::CloseChannel {
        channel_id: channel,
    };
    assert_eq!(
        net.run("alice", close.clone()),
        Err(TxError::ChannelNotExpired { expiry_height: 10 })
    );
    assert!(query::channel(&net.storage, &channel).unwrap().is_some());
    net.empty_blocks(10 - net.height - 1);
    let before = net.balance("alice");
    net.run("alice", close.clone()).unwrap();
    assert_eq!(net.height, 10);
    assert_eq!(net.balance("alice"), before + DEPOSIT - 40 - FEE);
    assert!(query::channel(&net.storage, &channel).unwrap().is_none());
    assert_eq!(
        net.run("alice", close),
        Err(TxError::ChannelNotFound(channel))
    );
    assert_eq!(query::supply(&net.storage).unwrap().escrowed, 0);
    net.audit();
}

#[test]
fn payee_may_close_early_returning_the_rest_to_payer() {
    let mut net = Net::new();
    let channel = open(&mut net);
    let before = net.balance("alice");
    net.run(
        "bob",
        TxBody::CloseChannel {
            channel_id: channel,
        },
    )
    .unwrap();
    assert_eq!(net.balance("alice"), before + DEPOSIT);
    net.audit();
}

#[test]
fn top_up_adds_deposit_and_extends_expiry_for_payer_only() {
    let mut net = Net::new();
    let channel = open(&mut net);
    let top_up = TxBody::TopUpChannel {
        channel_id: channel,
        amount: 5,
        expiry_height: 20,
    };
    assert_eq!(
        net.run("bob", top_up.clone()),
        Err(TxError::NotChannelPayer)
    );
    net.run("alice", top_up).unwrap();
    let record = query::channel(&net.storage, &channel).unwrap().unwrap();
    assert_eq!((record.deposit, record.expiry_height), (DEPOSIT + 5, 20));
    let shorten = TxBody::TopUpChannel {
        channel_id: channel,
        amount: 1,
        expiry_height: 15,
    };
    assert_eq!(net.run("alice", shorten), Err(TxError::InvalidExpiry(15)));
    net.audit();
}

#[test]
fn open_refuses_self_channel_past_expiry_and_zero_deposit() {
    let mut net = Net::new();
    let open = |payee: &str, deposit, expiry_height| TxBody::OpenChannel {
        payee: id(payee),
        deposit,
        expiry_height,
    };
    assert_eq!(
        net.run("alice", open("alice", 1, 10)),
        Err(TxError::SelfChannel)
    );
    assert_eq!(
        net.run("alice", open("bob", 1, 1)),
        Err(TxError::InvalidExpiry(1))
    );
    assert_eq!(
        net.run("alice", open("bob", 0, 10)),
        Err(TxError::ZeroAmount)
    );
    let _ = Keypair::from_seed(b"unused");
}
