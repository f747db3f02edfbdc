//! Ledger invariants over random transaction sequences (DESIGN §4).

use std::collections::BTreeSet;

use agora_ledger::{apply_block, channel_id, query, state::keys, BlockOutcome, MemStorage};
use agora_types::{
    Amount, Block, Hash, ProposalKind, SignedTx, TxBody, Vote, Voucher, UNITS_PER_AGR,
};
use proptest::prelude::*;

use super::harness::{id, key, model, provider_info, Net, FEE};

const ACTORS: [&str; 5] = ["alice", "bob", "carol", "prov", "val"];

/// How a generated transaction picks its nonce.
#[derive(Debug, Clone, Copy)]
enum NonceMode {
    Next,
    Replay,
    Gap,
}

#[derive(Debug, Clone)]
struct Step {
    actor: usize,
    other: usize,
    op: u8,
    amount_sel: u8,
    small: u64,
    nonce: NonceMode,
}

fn step() -> impl Strategy<Value = Step> {
    (
        0..ACTORS.len(),
        0..ACTORS.len(),
        0u8..12,
        0u8..5,
        0u64..50,
        prop_oneof![8 => Just(NonceMode::Next), 1 => Just(NonceMode::Replay), 1 => Just(NonceMode::Gap)],
    )
        .prop_map(|(actor, other, op, amount_sel, small, nonce)| Step {
            actor,
            other,
            op,
            amount_sel,
            small,
            nonce,
        })
}

fn amount(sel: u8, small: u64) -> Amount {
    match sel {
        0 => 0,
        1 => Amount::from(small) + 1,
        2 => Amount::from(small) * UNITS_PER_AGR,
        3 => 2_000 * UNITS_PER_AGR,
        _ => Amount::MAX,
    }
}

struct World {
    net: Net,
    channels: Vec<(Hash, usize, usize)>,
    sent: Vec<SignedTx>,
    blocks: Vec<Block>,
}

impl World {
    fn body(&self, s: &Step) -> TxBody {
        let value = amount(s.amount_sel, s.small);
        let other = id(ACTORS[s.other]);
        let height = self.net.height;
        match s.op {
            0 | 1 => TxBody::Transfer {
                to: other,
                amount: value,
            },
            2 => TxBody::Bond { amount: value },
            3 => TxBody::Unbond { amount: value },
            4 => TxBody::WithdrawUnbonded,
            5 => TxBody::OpenChannel {
                payee: other,
                deposit: value,
                expiry_height: height + s.small % 8,
            },
            6 | 7 => {
                let Some(&(channel, payer, payee)) = self
                    .channels
                    .get(s.small as usize % self.channels.len().max(1))
                else {
                    return TxBody::WithdrawUnbonded;
                };
                if s.op == 7 {
                    return TxBody::CloseChannel {
                        channel_id: channel,
                    };
                }
                let signer = if s.amount_sel == 4 { s.other } else { payer };
                let voucher = Voucher {
                    chain_id: self.net.chain_id.clone(),
                    channel_id: channel,
                    payer: id(ACTORS[payer]),
                    payee: id(ACTORS[payee]),
                    cumulative: Amount::from(s.small) * 1_000,
                }
                .sign(&key(ACTORS[signer]));
                // Mostly the whole voucher; sometimes less, sometimes more than it allows.
                let amount = match s.amount_sel {
                    0 => voucher.voucher.cumulative / 2,
                    1 => voucher.voucher.cumulative + 1,
                    _ => voucher.voucher.cumulative,
                };
                TxBody::RedeemChannel { voucher, amount }
            }
            8 => {
                let kind = if s.small.is_multiple_of(2) {
                    ProposalKind::AddModel(model(&format!("m{}", s.small)))
                } else {
                    ProposalKind::SetParam {
                        name: "unbonding_blocks".try_into().unwrap(),
                        value: u128::from(s.small),
                    }
                };
                TxBody::SubmitProposal {
                    kind,
                    deposit: value,
                }
            }
            9 => TxBody::VoteProposal {
                proposal_id: s.small % 3,
                vote: [Vote::Yes, Vote::No, Vote::Abstain][s.other % 3],
            },
            10 => TxBody::RegisterProvider(provider_info(&[model("base").cid])),
            _ => TxBody::CommitReceipts {
                epoch: s.small % 2,
                root: Hash::of(b"r"),
                totals: Default::default(),
            },
        }
    }

    fn tx(&self, s: &Step) -> SignedTx {
        if let (NonceMode::Replay, Some(old)) = (
            s.nonce,
            self.sent.get(s.small as usize % self.sent.len().max(1)),
        ) {
            return old.clone();
        }
        let signer = key(ACTORS[s.actor]);
        let mut nonce = query::account(&self.net.storage, &signer.account_id())
            .unwrap()
            .nonce;
        if let NonceMode::Gap = s.nonce {
            nonce += 1 + s.small % 3;
        }
        SignedTx::sign(&signer, &self.net.chain_id, nonce, FEE, self.body(s))
    }

    fn apply(&mut self, txs: Vec<SignedTx>) -> (MemStorage, BlockOutcome) {
        let before = self.net.storage.clone();
        let header = self.net.header(&txs);
        let block = Block { header, txs };
        let outcome = apply_block(&mut self.net.storage, &block).unwrap();
        self.net.height = block.header.height;
        self.net.parent = block.hash();
        self.net.root = outcome.state_root;
        self.net.time = block.header.timestamp_ms;
        self.blocks.push(block);
        (before, outcome)
    }
}

/// Keys whose entries changed between two stores.
fn changed_keys(before: &MemStorage, after: &MemStorage) -> BTreeSet<Vec<u8>> {
    let mut out = BTreeSet::new();
    for (key, value) in before.entries() {
        if after.entries().get(key) != Some(value) {
            out.insert(key.clone());
        }
    }
    for key in after.entries().keys() {
        if !before.entries().contains_key(key) {
            out.insert(key.clone());
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_tx_sequences_keep_ledger_invariants(steps in proptest::collection::vec(step(), 1..60)) {
        let mut world = World { net: Net::new(), channels: Vec::new(), sent: Vec::new(), blocks: Vec::new() };
        let genesis_supply = query::supply(&world.net.storage).unwrap();
        for s in &steps {
            let tx = world.tx(s);
            let signer = tx.signer;
            let signer_before = query::account(&world.net.storage, &signer).unwrap();
            let supply_before = query::supply(&world.net.storage).unwrap();
            let (before, outcome) = world.apply(vec![tx.clone()]);
            let result = &outcome.txs[0];

            // Supply is conserved and every counter matches the records.
            let supply = agora_ledger::proof::audit_supply(&world.net.storage).unwrap();
            prop_assert_eq!(supply.genesis, genesis_supply.genesis);
            prop_assert_eq!(supply.minted, 0);

            let signer_after = query::account(&world.net.storage, &signer).unwrap();
            let changed = changed_keys(&before, &world.net.storage);
            let bookkeeping: BTreeSet<Vec<u8>> =
                [keys::META.to_vec(), keys::STATE_ROOT.to_vec()].into_iter().collect();
            let quiet_block = outcome.events.is_empty();
            match &result.result {
                Ok(()) => {
                    prop_assert_eq!(signer_after.nonce, signer_before.nonce + 1);
                    world.sent.push(tx.clone());
                    if let TxBody::OpenChannel { payee, .. } = &tx.body {
                        let payer = ACTORS.iter().position(|n| id(n) == signer).unwrap();
                        let payee = ACTORS.iter().position(|n| id(n) == *payee).unwrap();
                        world.channels.push((channel_id(&signer, tx.nonce), payer, payee));
                    }
                }
                Err(err) if err.is_rejection() => {
                    // Rejected: nothing but block bookkeeping changed.
                    prop_assert_eq!(result.fee_paid, 0);
                    if quiet_block {
                        prop_assert!(changed.is_subset(&bookkeeping), "{:?}", changed);
                    }
                    prop_assert_eq!(signer_after, signer_before);
                }
                Err(_) => {
                    // Failed: only the fee and the nonce changed.
                    prop_assert_eq!(result.fee_paid, FEE);
                    prop_assert_eq!(signer_after.nonce, signer_before.nonce + 1);
                    prop_assert_eq!(signer_after.balance, signer_before.balance - FEE);
                    prop_assert_eq!(signer_after.bonded, signer_before.bonded);
                    if quiet_block {
                        let mut allowed = bookkeeping.clone();
                        allowed.insert(keys::account(&signer));
                        allowed.insert(keys::SUPPLY.to_vec());
                        prop_assert!(changed.is_subset(&allowed), "{:?}", changed);
                        let supply_after = query::supply(&world.net.storage).unwrap();
                        prop_assert_eq!(supply_after.burned, supply_before.burned + FEE);
                    }
                    world.sent.push(tx.clone());
                }
            }
            // A transaction already included can never apply again.
            if result.result.is_ok() || !result.result.as_ref().unwrap_err().is_rejection() {
                let replay = world.apply(vec![tx]).1;
                prop_assert!(
                    matches!(replay.txs[0].result, Err(agora_ledger::TxError::BadNonce { .. })),
                    "{:?}",
                    replay.txs[0].result
                );
            }
        }

        // A fresh ledger fed the same blocks ends with the same state and root.
        let mut replica = Net::new();
        for block in &world.blocks {
            let outcome = apply_block(&mut replica.storage, block).unwrap();
            replica.root = outcome.state_root;
        }
        prop_assert_eq!(replica.root, world.net.root);
        prop_assert_eq!(replica.storage.entries(), world.net.storage.entries());
    }
}
