//! Transfer throughput of `apply_block`, signatures verified, against the 10,000 tx/s target.
//!
//! Run with `cargo bench -p agora-ledger --bench apply`.
//! Signing happens before the clock starts; the timed part is `apply_block` alone: batch
//! signature verification, execution, and the state root recomputed over every entry.

// A benchmark measures wall time and reports rates: the ledger's no-clock, no-float rules
// (crates/ledger/clippy.toml) govern the state machine, not the harness that times it.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::time::Instant;

use agora_ledger::{apply_block, init_genesis, MemStorage};
use agora_types::{
    tx_root, Block, ChainId, Genesis, GenesisValidator, Header, Keypair, Params, SignedTx, TxBody,
    UNITS_PER_AGR,
};

const TARGET_TPS: f64 = 10_000.0;
const SENDERS: usize = 1_000;
const TXS_PER_BLOCK: usize = 5_000;
const BLOCKS: usize = 8;
/// Idle accounts added to genesis in the second run, to show the state root's O(state) cost.
const IDLE_ACCOUNTS: usize = 100_000;

fn main() {
    println!("small state ({SENDERS} senders):");
    run(0);
    println!("large state ({SENDERS} senders + {IDLE_ACCOUNTS} idle accounts):");
    run(IDLE_ACCOUNTS);
}

fn run(idle: usize) {
    let chain_id = ChainId::new("agora-bench").expect("valid chain id");
    let senders: Vec<Keypair> = (0..SENDERS)
        .map(|i| Keypair::from_seed(format!("sender-{i}").as_bytes()))
        .collect();
    let receivers: Vec<Keypair> = (0..SENDERS)
        .map(|i| Keypair::from_seed(format!("receiver-{i}").as_bytes()))
        .collect();
    let genesis = Genesis {
        chain_id: chain_id.clone(),
        timestamp_ms: 0,
        accounts: senders
            .iter()
            .map(|k| (k.account_id(), 1_000_000 * UNITS_PER_AGR))
            .chain((0..idle).map(|i| {
                let mut id = [0u8; 32];
                id[..8].copy_from_slice(&(i as u64).to_be_bytes());
                (agora_types::AccountId(id), 1)
            }))
            .collect(),
        validators: vec![GenesisValidator {
            account: senders[0].account_id(),
            stake: UNITS_PER_AGR,
        }],
        params: Params::default(),
        models: Vec::new(),
        providers: Vec::new(),
    };
    let mut storage = MemStorage::new();
    let mut root = init_genesis(&mut storage, &genesis).expect("genesis applies");
    let mut parent = genesis.hash();
    let fee = genesis.params.min_fee;

    let mut nonces = vec![0u64; SENDERS];
    let mut blocks_txs = Vec::with_capacity(BLOCKS);
    for block_idx in 0..BLOCKS {
        let txs: Vec<SignedTx> = (0..TXS_PER_BLOCK)
            .map(|i| {
                let sender = (block_idx * TXS_PER_BLOCK + i) % SENDERS;
                let nonce = nonces[sender];
                nonces[sender] += 1;
                SignedTx::sign(
                    &senders[sender],
                    &chain_id,
                    nonce,
                    fee,
                    TxBody::Transfer {
                        to: receivers[(sender + i) % SENDERS].account_id(),
                        amount: 1 + i as u128,
                    },
                )
            })
            .collect();
        blocks_txs.push(txs);
    }

    let mut total_txs = 0usize;
    let mut total_secs = 0f64;
    for (idx, txs) in blocks_txs.into_iter().enumerate() {
        let header = Header {
            height: idx as u64 + 1,
            parent,
            timestamp_ms: idx as u64 + 1,
            proposer: senders[0].account_id(),
            tx_root: tx_root(&txs),
            state_root: root,
        };
        let block = Block { header, txs };
        let start = Instant::now();
        let outcome = apply_block(&mut storage, &block).expect("block applies");
        let secs = start.elapsed().as_secs_f64();
        let ok = outcome.txs.iter().filter(|tx| tx.result.is_ok()).count();
        assert_eq!(ok, block.txs.len(), "every transfer must succeed");
        root = outcome.state_root;
        parent = block.hash();
        total_txs += block.txs.len();
        total_secs += secs;
        println!(
            "  block {:>2}: {} transfers in {:.1} ms ({:.0} tx/s)",
            idx + 1,
            block.txs.len(),
            secs * 1e3,
            block.txs.len() as f64 / secs
        );
    }
    let tps = total_txs as f64 / total_secs;
    println!(
        "  apply_block transfers: {tps:.0} tx/s over {total_txs} txs ({:.2}x the {TARGET_TPS:.0} tx/s target), {} state entries",
        tps / TARGET_TPS,
        storage.entries().len()
    );
}
