//! Ledger invariants over random transaction sequences (DESIGN §4).

use std::collections::{BTreeMap, BTreeSet};

use agora_ledger::{apply_block, channel_id, query, state::keys, BlockOutcome, MemStorage};
use agora_types::{
    score_commitment, Amount, Block, Hash, ProposalKind, ProviderScore, Receipt, SamplingParams,
    SignedTx, TxBody, Vote, Voucher, UNITS_PER_AGR,
};
use proptest::prelude::*;

use super::harness::{genesis, id, key, model, provider_info, register_verifier, Net, FEE};

/// Emission per epoch in the property chain, so rewards are minted as epochs end.
const EMISSION: Amount = 1_000 * UNITS_PER_AGR;

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
        0u8..23,
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

fn salt() -> Hash {
    Hash::of(b"salt")
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
    disputes: Vec<Hash>,
    /// Scores each actor committed, by (actor, epoch).
    commits: BTreeMap<(usize, u64), Vec<ProviderScore>>,
    sent: Vec<SignedTx>,
    blocks: Vec<Block>,
}

/// The property chain: the test genesis with emission, a short dispute period, and alice,
/// bob and carol bonded (200 AGR) and registered as verifiers in block 1.
fn start() -> (Net, Vec<Block>) {
    let mut genesis = genesis();
    genesis.params.emission_per_epoch = EMISSION;
    genesis.params.dispute_period_blocks = 8;
    genesis.params.dispute_committee_size = 2;
    let mut net = Net::from_genesis(&genesis);
    let mut txs = Vec::new();
    for name in ["alice", "bob", "carol"] {
        txs.push(net.tx(
            name,
            TxBody::Bond {
                amount: 200 * UNITS_PER_AGR,
            },
        ));
        txs.push(net.tx(name, register_verifier("http://v:1")));
    }
    let header = net.header(&txs);
    let block = Block { header, txs };
    let outcome = apply_block(&mut net.storage, &block).unwrap();
    assert!(outcome.txs.iter().all(|tx| tx.result.is_ok()));
    net.height = block.header.height;
    net.parent = block.hash();
    net.root = outcome.state_root;
    net.time = block.header.timestamp_ms;
    (net, vec![block])
}

fn scores_for(seed: u64) -> Vec<ProviderScore> {
    // Out of range now and then (every seventh seed), to exercise the checks.
    let score_ppm = if seed.is_multiple_of(7) {
        1_000_001
    } else {
        (seed as u32 % 11) * 100_000
    };
    vec![ProviderScore {
        provider: id("prov"),
        score_ppm,
    }]
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
            11 => {
                let totals = agora_types::ReceiptTotals {
                    requests: 1,
                    tokens_in: s.small,
                    tokens_out: s.small * 10,
                    amount: 1,
                };
                // Usually consistent totals by model; sometimes ones that do not add up.
                let mut by_model = agora_types::ModelTotals {
                    model: model("base").cid,
                    totals,
                };
                if s.other.is_multiple_of(5) {
                    by_model.totals.tokens_out += 1;
                }
                TxBody::CommitReceipts {
                    epoch: self.epoch().saturating_sub(s.small % 2),
                    root: Hash::of(b"r"),
                    totals,
                    by_model: vec![by_model].try_into().unwrap(),
                }
            }
            12 => {
                // Mostly a real receipt by "prov"; sometimes one signed by someone else.
                let signer = if s.amount_sel == 4 {
                    ACTORS[s.other]
                } else {
                    "prov"
                };
                let receipt = Receipt {
                    chain_id: self.net.chain_id.clone(),
                    provider: id("prov"),
                    request_hash: Hash::of(&s.small.to_le_bytes()),
                    response_hash: Hash::of(b"answer"),
                    model: model("base").cid,
                    prompt_tokens: 10,
                    completion_tokens: s.small as u32,
                    sampling: SamplingParams {
                        temperature_milli: 0,
                        top_p_milli: 1_000,
                        top_k: 0,
                        seed: 1,
                    },
                    price_in: UNITS_PER_AGR,
                    price_out: 1_000 * UNITS_PER_AGR,
                    payer: id(ACTORS[s.other]),
                    voucher_amount: 1,
                    timestamp_ms: 1,
                }
                .sign(&key(signer));
                let bond = if s.amount_sel == 0 {
                    1
                } else {
                    10 * UNITS_PER_AGR
                };
                TxBody::Challenge {
                    receipt,
                    transcript: agora_types::Cid::of(b"t"),
                    bond,
                }
            }
            13 | 17 | 18 => {
                // Mostly the latest dispute, which is likely still open.
                let pick = if s.op == 13 {
                    s.small as usize % self.disputes.len().max(1)
                } else {
                    self.disputes.len().saturating_sub(1)
                };
                TxBody::DisputeVote {
                    dispute_id: self
                        .disputes
                        .get(pick)
                        .copied()
                        .unwrap_or(Hash::of(b"none")),
                    fraud: !s.other.is_multiple_of(4),
                }
            }
            14 => {
                let epoch = self.epoch().saturating_sub(u64::from(s.amount_sel == 0));
                let scores = scores_for(s.small);
                TxBody::CommitScores {
                    epoch,
                    commitment: score_commitment(&id(ACTORS[s.actor]), epoch, &scores, &salt()),
                }
            }
            15 | 19 | 20 => {
                let epoch = if s.amount_sel == 0 {
                    self.epoch()
                } else {
                    self.epoch().saturating_sub(1)
                };
                let scores = self
                    .commits
                    .get(&(s.actor, epoch))
                    .filter(|_| s.amount_sel != 1)
                    .cloned()
                    .unwrap_or_else(|| scores_for(s.small));
                TxBody::RevealScores {
                    epoch,
                    scores: scores.try_into().unwrap(),
                    salt: salt(),
                }
            }
            16 => register_verifier("http://v:2"),
            // Validators join and leave the set at epoch boundaries (every 10 blocks).
            21 => TxBody::RegisterValidator {
                p2p: "v.example:26670".try_into().unwrap(),
            },
            22 => TxBody::DeregisterValidator,
            _ => unreachable!("op {}", s.op),
        }
    }

    /// The epoch of the next block.
    fn epoch(&self) -> u64 {
        (self.net.height + 1) / 10
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
        let (net, blocks) = start();
        let mut world = World {
            net,
            channels: Vec::new(),
            disputes: Vec::new(),
            commits: BTreeMap::new(),
            sent: Vec::new(),
            blocks,
        };
        let genesis_supply = query::supply(&world.net.storage).unwrap();
        let mut minted = 0;
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
            // The chain always has a validator set.
            prop_assert!(!query::validators(&world.net.storage).unwrap().is_empty());
            // Minting only grows, by at most one emission per epoch settled.
            prop_assert!(supply.minted >= minted);
            let epochs = world.net.height / 10;
            prop_assert!(supply.minted <= Amount::from(epochs) * EMISSION);
            minted = supply.minted;

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
                    if let TxBody::Challenge { receipt, .. } = &tx.body {
                        world.disputes.push(receipt.receipt.id());
                    }
                    if let TxBody::CommitScores { epoch, .. } = &tx.body {
                        world.commits.insert((s.actor, *epoch), scores_for(s.small));
                    }
                }
                Err(err) if err.is_rejection() => {
                    // Rejected: nothing but block bookkeeping changed.
                    prop_assert_eq!(result.fee_paid, 0);
                    // End-of-block settlement (rewards, slashes) may touch the signer.
                    if quiet_block {
                        prop_assert!(changed.is_subset(&bookkeeping), "{:?}", changed);
                        prop_assert_eq!(signer_after, signer_before);
                    }
                }
                Err(_) => {
                    // Failed: only the fee and the nonce changed.
                    prop_assert_eq!(result.fee_paid, FEE);
                    prop_assert_eq!(signer_after.nonce, signer_before.nonce + 1);
                    if quiet_block {
                        prop_assert_eq!(signer_after.balance, signer_before.balance - FEE);
                        prop_assert_eq!(signer_after.bonded, signer_before.bonded);
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
        let mut replica = Net::from_genesis(&{
            let mut genesis = genesis();
            genesis.params.emission_per_epoch = EMISSION;
            genesis.params.dispute_period_blocks = 8;
            genesis.params.dispute_committee_size = 2;
            genesis
        });
        for block in &world.blocks {
            let outcome = apply_block(&mut replica.storage, block).unwrap();
            replica.root = outcome.state_root;
        }
        prop_assert_eq!(replica.root, world.net.root);
        prop_assert_eq!(replica.storage.entries(), world.net.storage.entries());
    }
}
