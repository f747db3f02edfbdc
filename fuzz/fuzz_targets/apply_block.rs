//! Arbitrary transactions through `check_tx` and `apply_block`.
//!
//! The first byte picks a mode: odd means each decoded transaction's body is re-signed by a
//! funded key with its correct nonce, so execution (not just signature checks) is fuzzed.

#![no_main]

use std::sync::OnceLock;

use agora_ledger::{apply_block, check_tx, init_genesis, proof, query, MemStorage};
use agora_types::{
    tx_root, Block, ChainId, Cid, Genesis, GenesisValidator, Hash, Header, Keypair, ModelInfo,
    Params, SignedTx, UNITS_PER_AGR,
};
use borsh::BorshDeserialize;
use libfuzzer_sys::fuzz_target;

struct Start {
    storage: MemStorage,
    genesis: Genesis,
    root: Hash,
    keys: Vec<Keypair>,
}

fn start() -> &'static Start {
    static START: OnceLock<Start> = OnceLock::new();
    START.get_or_init(|| {
        let keys: Vec<Keypair> = (0..4u8).map(|i| Keypair::from_seed(&[i])).collect();
        let model = ModelInfo {
            cid: Cid::of(b"model"),
            name: "m".try_into().unwrap(),
            architecture: "llama".try_into().unwrap(),
            quantization: "Q4_1".try_into().unwrap(),
            context_length: 1,
            license: "MIT".try_into().unwrap(),
            size: 1,
        };
        let genesis = Genesis {
            chain_id: ChainId::new("agora-fuzz").unwrap(),
            timestamp_ms: 0,
            accounts: keys
                .iter()
                .map(|k| (k.account_id(), 1_000 * UNITS_PER_AGR))
                .collect(),
            validators: vec![GenesisValidator {
                account: keys[0].account_id(),
                stake: 500 * UNITS_PER_AGR,
            }],
            params: Params {
                voting_period_blocks: 1,
                unbonding_blocks: 1,
                ..Params::default()
            },
            models: vec![model],
            providers: Vec::new(),
        };
        let mut storage = MemStorage::new();
        let root = init_genesis(&mut storage, &genesis).unwrap();
        Start {
            storage,
            genesis,
            root,
            keys,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let start = start();
    let mut storage = start.storage.clone();
    let mut txs = Vec::new();
    while !rest.is_empty() && txs.len() < 16 {
        let Ok(tx) = SignedTx::deserialize(&mut rest) else {
            break;
        };
        txs.push(tx);
    }
    if mode & 1 == 1 {
        let mut nonces = [0u64; 4];
        txs = txs
            .into_iter()
            .map(|tx| {
                let who = usize::from(tx.nonce as u8 % 4);
                let key = &start.keys[who];
                let signed =
                    SignedTx::sign(key, &start.genesis.chain_id, nonces[who], tx.fee, tx.body);
                nonces[who] += 1;
                signed
            })
            .collect();
    }
    for tx in &txs {
        let _ = check_tx(&storage, tx);
    }
    let header = Header {
        height: 1,
        parent: start.genesis.hash(),
        timestamp_ms: 1,
        proposer: start.keys[0].account_id(),
        tx_root: tx_root(&txs),
        state_root: start.root,
    };
    let block = Block { header, txs };
    let outcome = apply_block(&mut storage, &block).expect("a well-formed block always applies");
    assert_eq!(outcome.txs.len(), block.txs.len());
    proof::audit_supply(&storage).expect("supply is conserved");
    let _ = query::providers(&storage);
    let _ = query::proposals(&storage);
});
