//! Score commitments and reveals, the Yuma-style combination and epoch rewards, through real
//! blocks.

use agora_ledger::{query, state::EpochRewards, TxError};
use agora_types::{
    score_commitment, Amount, GenesisProvider, Hash, ProviderScore, ReceiptTotals, TxBody,
    UNITS_PER_AGR,
};

use super::harness::{genesis, id, model, provider_info, register_verifier, Net, FEE};

const EPOCH: u64 = 10;
const EMISSION: Amount = 1_000 * UNITS_PER_AGR;
const STAKE: Amount = 200 * UNITS_PER_AGR;

/// Providers "prov" (A) and "prov2" (B); `verifiers` bonded and registered in block 1.
fn net_with(verifiers: &[&str]) -> Net {
    let mut genesis = genesis();
    genesis.params.emission_per_epoch = EMISSION;
    genesis.params.epoch_blocks = EPOCH;
    genesis.accounts.push((id("prov2"), 1_000 * UNITS_PER_AGR));
    genesis.providers.push(GenesisProvider {
        operator: id("prov2"),
        stake: 100 * UNITS_PER_AGR,
        info: provider_info(&[model("base").cid]),
    });
    for name in verifiers {
        genesis.accounts.push((id(name), 1_000 * UNITS_PER_AGR));
    }
    let mut net = Net::from_genesis(&genesis);
    let mut txs = Vec::new();
    for name in verifiers {
        txs.push(net.tx(name, TxBody::Bond { amount: STAKE }));
        txs.push(net.tx(name, register_verifier("http://v:9000")));
    }
    let outcome = net.block(txs);
    assert!(outcome.txs.iter().all(|tx| tx.result.is_ok()));
    net
}

fn scores(a: u32, b: u32) -> Vec<ProviderScore> {
    let mut out = vec![
        ProviderScore {
            provider: id("prov"),
            score_ppm: a,
        },
        ProviderScore {
            provider: id("prov2"),
            score_ppm: b,
        },
    ];
    out.sort_by_key(|s| s.provider);
    out
}

fn salt(name: &str) -> Hash {
    Hash::of(name.as_bytes())
}

fn commit_body(name: &str, epoch: u64, scores: &[ProviderScore]) -> TxBody {
    TxBody::CommitScores {
        epoch,
        commitment: score_commitment(&id(name), epoch, scores, &salt(name)),
    }
}

fn reveal_body(name: &str, epoch: u64, scores: &[ProviderScore]) -> TxBody {
    TxBody::RevealScores {
        epoch,
        scores: scores.to_vec().try_into().unwrap(),
        salt: salt(name),
    }
}

fn receipts(epoch: u64, tokens_out: u64) -> TxBody {
    let totals = ReceiptTotals {
        requests: 10,
        tokens_in: 5_000,
        tokens_out,
        amount: 1,
    };
    TxBody::CommitReceipts {
        epoch,
        root: Hash::of(b"root"),
        totals,
        by_model: vec![agora_types::ModelTotals {
            model: agora_types::Cid::of(b"model"),
            totals,
        }]
        .try_into()
        .unwrap(),
    }
}

/// Applies empty blocks until the next block has height `height`.
fn advance_to(net: &mut Net, height: u64) {
    while net.height + 1 < height {
        net.empty_blocks(1);
    }
}

/// One epoch of scoring: each `(verifier, A score, B score)` commits in epoch 0 and reveals in
/// epoch 1; A served 1,000 completion tokens, B 3,000. Returns epoch 0's rewards.
fn run_epoch(verifiers: &[(&str, u32, u32)]) -> (Net, EpochRewards) {
    let names: Vec<&str> = verifiers.iter().map(|(name, _, _)| *name).collect();
    let mut net = net_with(&names);
    let mut txs = vec![
        net.tx("prov", receipts(0, 1_000)),
        net.tx("prov2", receipts(0, 3_000)),
    ];
    for (name, a, b) in verifiers {
        txs.push(net.tx(name, commit_body(name, 0, &scores(*a, *b))));
    }
    assert!(net.block(txs).txs.iter().all(|tx| tx.result.is_ok()));
    advance_to(&mut net, EPOCH);
    let txs = verifiers
        .iter()
        .map(|(name, a, b)| net.tx(name, reveal_body(name, 0, &scores(*a, *b))))
        .collect();
    let outcome = net.block(txs);
    for tx in &outcome.txs {
        tx.result.clone().unwrap();
    }
    assert_eq!(query::epoch_rewards(&net.storage, 0).unwrap(), None);
    advance_to(&mut net, 2 * EPOCH);
    assert_eq!(net.height, 2 * EPOCH - 1);
    let rewards = query::epoch_rewards(&net.storage, 0)
        .unwrap()
        .expect("epoch 0 settled at the last block of epoch 1");
    net.audit();
    (net, rewards)
}

fn reward_of(rewards: &EpochRewards, name: &str) -> Amount {
    rewards
        .verifiers
        .iter()
        .find(|v| v.verifier == id(name))
        .map(|v| v.reward)
        .unwrap()
}

#[test]
fn yuma_clips_an_inflated_friend_score_and_pays_the_outlier_less() {
    let honest = [
        ("v1", 500_000, 800_000),
        ("v2", 500_000, 800_000),
        ("v3", 500_000, 800_000),
    ];
    let mut with_outlier = honest.to_vec();
    with_outlier.push(("v4", 1_000_000, 800_000));
    let (net, rewards) = run_epoch(&with_outlier);
    let (_, baseline) = run_epoch(&honest);

    // The friend's consensus stays at the honest level, so it gains nothing.
    let consensus: Vec<(agora_types::AccountId, u32)> = rewards
        .providers
        .iter()
        .map(|p| (p.provider, p.consensus_ppm))
        .collect();
    assert!(consensus.contains(&(id("prov"), 500_000)));
    assert!(consensus.contains(&(id("prov2"), 800_000)));
    assert_eq!(rewards.providers, baseline.providers);

    // Provider pool: 80% of the emission, split by consensus × completion tokens.
    let pool = EMISSION / 10 * 8;
    let weight_a: Amount = 500_000 * 1_000;
    let weight_b: Amount = 800_000 * 3_000;
    let reward_a = rewards
        .providers
        .iter()
        .find(|p| p.provider == id("prov"))
        .unwrap()
        .reward;
    assert_eq!(reward_a, pool * weight_a / (weight_a + weight_b));

    // The outlier agrees 1.3 / 1.8 with consensus and earns less than every honest verifier.
    let outlier = reward_of(&rewards, "v4");
    for name in ["v1", "v2", "v3"] {
        assert!(outlier < reward_of(&rewards, name), "{name}");
        let agreement = rewards
            .verifiers
            .iter()
            .find(|v| v.verifier == id(name))
            .unwrap()
            .agreement_ppm;
        assert_eq!(agreement, 1_000_000);
    }
    let outlier_agreement = rewards.verifiers.iter().find(|v| v.verifier == id("v4"));
    assert_eq!(outlier_agreement.unwrap().agreement_ppm, 722_222);

    // Minted is what was paid, never more than the emission; balances got it.
    let paid: Amount = rewards.providers.iter().map(|p| p.reward).sum::<Amount>()
        + rewards.verifiers.iter().map(|v| v.reward).sum::<Amount>();
    assert_eq!(rewards.minted, paid);
    assert!(rewards.minted <= EMISSION);
    let supply = query::supply(&net.storage).unwrap();
    assert_eq!(supply.minted, rewards.minted);
    // Bond and register, commit, reveal: four fees.
    assert_eq!(net.balance("v4"), 800 * UNITS_PER_AGR - 4 * FEE + outlier);
}

#[test]
fn an_outlier_below_consensus_earns_less_too() {
    let (_, rewards) = run_epoch(&[
        ("v1", 500_000, 800_000),
        ("v2", 500_000, 800_000),
        ("v3", 500_000, 800_000),
        ("v4", 0, 800_000),
    ]);
    assert!(reward_of(&rewards, "v4") < reward_of(&rewards, "v1"));
    assert_eq!(rewards.providers[0].consensus_ppm.min(500_000), 500_000);
}

#[test]
fn no_reveals_mint_nothing_and_no_tokens_pay_no_provider() {
    // Commitments without reveals: nothing is minted.
    let mut net = net_with(&["v1"]);
    net.run("v1", commit_body("v1", 0, &scores(1, 2))).unwrap();
    advance_to(&mut net, 2 * EPOCH);
    let rewards = query::epoch_rewards(&net.storage, 0).unwrap().unwrap();
    assert!(rewards.providers.is_empty() && rewards.verifiers.is_empty());
    assert_eq!(rewards.minted, 0);
    assert_eq!(query::supply(&net.storage).unwrap().minted, 0);

    // Reveals but no receipts: only the verifiers' share is minted.
    let mut net = net_with(&["v1"]);
    net.run("v1", commit_body("v1", 0, &scores(500_000, 500_000)))
        .unwrap();
    advance_to(&mut net, EPOCH);
    net.run("v1", reveal_body("v1", 0, &scores(500_000, 500_000)))
        .unwrap();
    advance_to(&mut net, 2 * EPOCH);
    let rewards = query::epoch_rewards(&net.storage, 0).unwrap().unwrap();
    assert!(rewards.providers.iter().all(|p| p.reward == 0));
    assert_eq!(rewards.minted, EMISSION / 10 * 2);
    net.audit();
}

#[test]
fn a_copying_verifier_cannot_reveal_what_it_did_not_commit() {
    let mut net = net_with(&["v1", "copier"]);
    let honest = scores(500_000, 800_000);
    let commit = commit_body("v1", 0, &honest);
    net.run("v1", commit.clone()).unwrap();
    // The copier commits v1's very commitment, seen in the block.
    net.run("copier", commit).unwrap();
    advance_to(&mut net, EPOCH);
    net.run("v1", reveal_body("v1", 0, &honest)).unwrap();
    // Replaying v1's reveal (scores and salt) fails: the commitment binds v1's account.
    let copied = TxBody::RevealScores {
        epoch: 0,
        scores: honest.clone().try_into().unwrap(),
        salt: salt("v1"),
    };
    assert_eq!(
        net.run("copier", copied.clone()),
        Err(TxError::CommitmentMismatch(0))
    );
    // Committing now, after seeing the reveal, is outside epoch 0's window.
    let late = TxBody::CommitScores {
        epoch: 0,
        commitment: score_commitment(&id("copier"), 0, &honest, &salt("v1")),
    };
    assert_eq!(
        net.run("copier", late),
        Err(TxError::CommitWindow {
            epoch: 0,
            current: 1
        })
    );
    // A verifier that never committed cannot reveal at all.
    let mut fresh = net_with(&["v1", "lazy"]);
    fresh.run("v1", commit_body("v1", 0, &honest)).unwrap();
    advance_to(&mut fresh, EPOCH);
    assert_eq!(
        fresh.run("lazy", reveal_body("lazy", 0, &honest)),
        Err(TxError::NoCommitment(0))
    );
}

#[test]
fn bad_commits_and_reveals_are_rejected_with_a_reason() {
    let mut net = net_with(&["v1"]);
    let good = scores(500_000, 800_000);
    assert_eq!(
        net.run("alice", commit_body("alice", 0, &good)),
        Err(TxError::NotVerifier)
    );
    assert_eq!(
        net.run("v1", commit_body("v1", 1, &good)),
        Err(TxError::CommitWindow {
            epoch: 1,
            current: 0
        })
    );
    net.run("v1", commit_body("v1", 0, &good)).unwrap();
    // Too early: still in epoch 0.
    let res = net.run("v1", reveal_body("v1", 0, &good));
    assert_eq!(
        res,
        Err(TxError::RevealTooEarly {
            epoch: 0,
            opens: EPOCH,
            closes: 2 * EPOCH - 1
        })
    );
    assert!(res.unwrap_err().to_string().contains("heights 10..=19"));
    advance_to(&mut net, EPOCH);
    // Unsorted, duplicated and over-range scores, each committed exactly so only the shape is
    // wrong.
    let mut unsorted = good.clone();
    unsorted.reverse();
    let duplicated = vec![good[0], good[0]];
    let over = scores(1_000_001, 0);
    for bad in [unsorted, duplicated, over] {
        let res = net.run("v1", reveal_body("v1", 0, &bad));
        assert!(matches!(res, Err(TxError::InvalidScores(_))), "{res:?}");
    }
    // Not what was committed.
    let res = net.run("v1", reveal_body("v1", 0, &scores(500_000, 800_001)));
    assert_eq!(res, Err(TxError::CommitmentMismatch(0)));
    net.run("v1", reveal_body("v1", 0, &good)).unwrap();
    let res = net.run("v1", reveal_body("v1", 0, &good));
    assert_eq!(res, Err(TxError::AlreadyRevealed(0)));

    // Too late: epoch 2 for epoch 1's commitment.
    let mut net = net_with(&["v1"]);
    advance_to(&mut net, EPOCH);
    net.run("v1", commit_body("v1", 1, &good)).unwrap();
    advance_to(&mut net, 3 * EPOCH);
    let res = net.run("v1", reveal_body("v1", 1, &good));
    assert_eq!(
        res,
        Err(TxError::RevealTooLate {
            epoch: 1,
            opens: 2 * EPOCH,
            closes: 3 * EPOCH - 1
        })
    );
    net.audit();
}
