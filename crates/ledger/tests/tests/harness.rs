//! A tiny chain driver: genesis, then blocks of signed transactions.

use std::collections::BTreeMap;

use agora_ledger::{apply_block, init_genesis, BlockOutcome, MemStorage};
use agora_types::{
    tx_root, AccountId, Amount, Block, ChainId, Cid, Genesis, GenesisProvider, GenesisValidator,
    Hash, Header, Keypair, ModelInfo, ModelOffer, Params, ProviderInfo, SignedTx, TxBody,
    UNITS_PER_AGR,
};

pub(crate) const FEE: Amount = 1_000;
pub(crate) const CHAIN: &str = "agora-test";

pub(crate) fn chain_id() -> ChainId {
    ChainId::new(CHAIN).unwrap()
}

pub(crate) fn key(name: &str) -> Keypair {
    Keypair::from_seed(name.as_bytes())
}

pub(crate) fn id(name: &str) -> AccountId {
    key(name).account_id()
}

pub(crate) fn model(name: &str) -> ModelInfo {
    ModelInfo {
        cid: Cid::of(name.as_bytes()),
        name: name.try_into().unwrap(),
        architecture: "llama".try_into().unwrap(),
        quantization: "Q4_1".try_into().unwrap(),
        context_length: 8192,
        license: "Apache-2.0".try_into().unwrap(),
        size: 98_362_432,
    }
}

pub(crate) fn provider_info(models: &[Cid]) -> ProviderInfo {
    ProviderInfo {
        endpoint: "http://127.0.0.1:8080".try_into().unwrap(),
        models: models
            .iter()
            .map(|cid| ModelOffer {
                cid: *cid,
                price_in: 100,
                price_out: 200,
            })
            .collect::<Vec<_>>()
            .try_into()
            .unwrap(),
        region: "eu-west".try_into().unwrap(),
        hardware: "cpu".try_into().unwrap(),
    }
}

/// Small params so periods end quickly in tests.
pub(crate) fn test_params() -> Params {
    Params {
        min_fee: FEE,
        unbonding_blocks: 3,
        min_stake: 100 * UNITS_PER_AGR,
        proposal_deposit: 10 * UNITS_PER_AGR,
        voting_period_blocks: 2,
        quorum_bps: 3_340,
        threshold_bps: 5_000,
        epoch_blocks: 10,
        ..Params::default()
    }
}

/// Genesis with `alice`, `bob`, `carol` (1,000 AGR each), validator `val` (1,000 AGR bonded),
/// the model `base`, and provider `prov` serving it.
pub(crate) fn genesis() -> Genesis {
    let base = model("base");
    Genesis {
        chain_id: chain_id(),
        timestamp_ms: 1_700_000_000_000,
        accounts: ["alice", "bob", "carol", "prov", "val"]
            .iter()
            .map(|name| (id(name), 1_000 * UNITS_PER_AGR))
            .collect(),
        validators: vec![GenesisValidator {
            account: id("val"),
            stake: 1_000 * UNITS_PER_AGR,
        }],
        params: test_params(),
        models: vec![base.clone()],
        providers: vec![GenesisProvider {
            operator: id("prov"),
            stake: 100 * UNITS_PER_AGR,
            info: provider_info(&[base.cid]),
        }],
    }
}

pub(crate) struct Net {
    pub(crate) storage: MemStorage,
    pub(crate) chain_id: ChainId,
    pub(crate) height: u64,
    pub(crate) parent: Hash,
    pub(crate) root: Hash,
    pub(crate) time: u64,
    nonces: BTreeMap<AccountId, u64>,
}

impl Net {
    pub(crate) fn new() -> Self {
        Self::from_genesis(&genesis())
    }

    pub(crate) fn from_genesis(genesis: &Genesis) -> Self {
        let mut storage = MemStorage::new();
        let root = init_genesis(&mut storage, genesis).unwrap();
        Net {
            storage,
            chain_id: genesis.chain_id.clone(),
            height: 0,
            parent: genesis.hash(),
            root,
            time: genesis.timestamp_ms,
            nonces: BTreeMap::new(),
        }
    }

    /// Signs `body` from `who` with its next nonce.
    pub(crate) fn tx(&mut self, who: &str, body: TxBody) -> SignedTx {
        let keypair = key(who);
        let nonce = self.nonces.entry(keypair.account_id()).or_insert(0);
        let tx = SignedTx::sign(&keypair, &self.chain_id, *nonce, FEE, body);
        *nonce += 1;
        tx
    }

    /// The next block's header for `txs`.
    pub(crate) fn header(&self, txs: &[SignedTx]) -> Header {
        Header {
            height: self.height + 1,
            parent: self.parent,
            timestamp_ms: self.time + 1_000,
            proposer: id("val"),
            tx_root: tx_root(txs),
            state_root: self.root,
        }
    }

    /// Applies a block of `txs`, which must be valid as a block.
    pub(crate) fn block(&mut self, txs: Vec<SignedTx>) -> BlockOutcome {
        let header = self.header(&txs);
        let block = Block { header, txs };
        let outcome = apply_block(&mut self.storage, &block).unwrap();
        self.height = block.header.height;
        self.parent = block.hash();
        self.root = outcome.state_root;
        self.time = block.header.timestamp_ms;
        outcome
    }

    /// Applies one transaction in its own block and returns its result.
    pub(crate) fn run(&mut self, who: &str, body: TxBody) -> Result<(), agora_ledger::TxError> {
        let tx = self.tx(who, body);
        let outcome = self.block(vec![tx]);
        outcome.txs[0].result.clone()
    }

    pub(crate) fn empty_blocks(&mut self, n: u64) {
        for _ in 0..n {
            self.block(Vec::new());
        }
    }

    pub(crate) fn balance(&self, name: &str) -> Amount {
        agora_ledger::query::account(&self.storage, &id(name))
            .unwrap()
            .balance
    }

    pub(crate) fn account(&self, name: &str) -> agora_ledger::query::AccountState {
        agora_ledger::query::account(&self.storage, &id(name)).unwrap()
    }

    /// Asserts the supply audit passes.
    pub(crate) fn audit(&self) {
        agora_ledger::proof::audit_supply(&self.storage).unwrap();
    }
}

/// `RegisterVerifier` with `endpoint`.
pub(crate) fn register_verifier(endpoint: &str) -> TxBody {
    TxBody::RegisterVerifier {
        endpoint: endpoint.try_into().unwrap(),
    }
}
