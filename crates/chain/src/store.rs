//! Node storage on redb: blocks, candidate blocks, ledger state and the tx index.
//!
//! Everything a finalized block changes (the block, its results, the ledger
//! state it produced, the tx index and the head) is written in one redb write
//! transaction, so after a crash the database holds exactly the blocks it held
//! at its last commit, never half of one. Candidate blocks (proposed, not yet
//! finalized) are written durably before their digest goes to consensus.

use std::{collections::BTreeMap, path::Path};

use agora_types::{encoding, Block, Hash};
use borsh::{BorshDeserialize, BorshSerialize};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

/// Height → stored block.
const BLOCKS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("blocks");
/// Block hash → height.
const BLOCK_HASHES: TableDefinition<'_, &[u8; 32], u64> = TableDefinition::new("block_hashes");
/// Digest → candidate block, until it is finalized or abandoned.
const CANDIDATES: TableDefinition<'_, &[u8; 32], &[u8]> = TableDefinition::new("candidates");
/// Ledger state key → value.
const STATE: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("state");
/// Tx hash → (height, index).
const TXS: TableDefinition<'_, &[u8; 32], (u64, u32)> = TableDefinition::new("txs");
/// Node metadata.
const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");
/// Validator-set epoch → the encoded finalization certificate of the block that ended it.
const EPOCH_ENDS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("epoch_ends");

const META_HEAD: &str = "head";
const META_GENESIS: &str = "genesis";

/// A storage failure; fatal to the node.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// redb failed.
    #[error("redb: {0}")]
    Redb(#[from] redb::Error),
    /// A stored record did not decode.
    #[error("corrupt record in {table}: {reason}")]
    Corrupt {
        /// Which table.
        table: &'static str,
        /// Why.
        reason: String,
    },
    /// The database belongs to another chain.
    #[error("data dir holds genesis {found}, config has {expected}")]
    GenesisMismatch {
        /// Genesis hash in the config.
        expected: Hash,
        /// Genesis hash in the database.
        found: Hash,
    },
}

macro_rules! redb_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(err: $t) -> Self {
                Error::Redb(err.into())
            }
        }
    )*};
}
redb_from!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// The executed head of the chain.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct HeadRecord {
    /// Height of the last executed block (0: genesis).
    pub height: u64,
    /// Its hash (the genesis hash at height 0).
    pub hash: Hash,
    /// State root after it.
    pub state_root: Hash,
    /// Its timestamp.
    pub timestamp_ms: u64,
}

/// One transaction's result as stored.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct TxOutcome {
    /// Whether the body succeeded.
    pub success: bool,
    /// Why it failed.
    pub error: Option<String>,
}

/// A finalized, executed block as stored.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct StoredBlock {
    /// The block.
    pub block: Block,
    /// State root after it.
    pub result_root: Hash,
    /// One outcome per transaction.
    pub outcomes: Vec<TxOutcome>,
}

/// Key-value entries in key order.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Ledger state writes of one block: `None` deletes.
pub type StateWrites = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// The node's database.
pub struct Store {
    db: Database,
}

fn corrupt(table: &'static str, err: impl std::fmt::Display) -> Error {
    Error::Corrupt {
        table,
        reason: err.to_string(),
    }
}

fn decode<T: BorshDeserialize>(table: &'static str, bytes: &[u8]) -> Result<T, Error> {
    encoding::decode_bounded(bytes, usize::MAX).map_err(|err| corrupt(table, err))
}

impl Store {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let db = Database::create(path)?;
        let txn = db.begin_write()?;
        {
            txn.open_table(BLOCKS)?;
            txn.open_table(BLOCK_HASHES)?;
            txn.open_table(CANDIDATES)?;
            txn.open_table(STATE)?;
            txn.open_table(TXS)?;
            txn.open_table(META)?;
            txn.open_table(EPOCH_ENDS)?;
        }
        txn.commit()?;
        Ok(Store { db })
    }

    /// The executed head, or `None` before genesis was written.
    pub fn head(&self) -> Result<Option<HeadRecord>, Error> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(META)?;
        match table.get(META_HEAD)? {
            Some(bytes) => Ok(Some(decode("meta", bytes.value())?)),
            None => Ok(None),
        }
    }

    /// The genesis hash recorded at initialisation.
    pub fn genesis_hash(&self) -> Result<Option<Hash>, Error> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(META)?;
        match table.get(META_GENESIS)? {
            Some(bytes) => Ok(Some(decode("meta", bytes.value())?)),
            None => Ok(None),
        }
    }

    /// Writes genesis state and head in one transaction.
    pub fn init(
        &self,
        genesis: Hash,
        head: &HeadRecord,
        writes: &StateWrites,
    ) -> Result<(), Error> {
        let txn = self.db.begin_write()?;
        {
            let mut state = txn.open_table(STATE)?;
            apply_writes(&mut state, writes)?;
            let mut meta = txn.open_table(META)?;
            meta.insert(META_GENESIS, encoding::encode(&genesis).as_slice())?;
            meta.insert(META_HEAD, encoding::encode(head).as_slice())?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Commits an executed block: block, results, state, tx index and head, atomically.
    pub fn commit_block(
        &self,
        stored: &StoredBlock,
        head: &HeadRecord,
        writes: &StateWrites,
    ) -> Result<(), Error> {
        let header = &stored.block.header;
        let hash = header.hash();
        let txn = self.db.begin_write()?;
        {
            let mut blocks = txn.open_table(BLOCKS)?;
            blocks.insert(header.height, encoding::encode(stored).as_slice())?;
            let mut hashes = txn.open_table(BLOCK_HASHES)?;
            hashes.insert(&hash.0, header.height)?;
            let mut txs = txn.open_table(TXS)?;
            for (idx, tx) in stored.block.txs.iter().enumerate() {
                let idx = u32::try_from(idx).unwrap_or(u32::MAX);
                txs.insert(&tx.hash().0, (header.height, idx))?;
            }
            let mut state = txn.open_table(STATE)?;
            apply_writes(&mut state, writes)?;
            let mut candidates = txn.open_table(CANDIDATES)?;
            // Candidates at or below this height can never be finalized now.
            let stale: Vec<[u8; 32]> = {
                let mut stale = Vec::new();
                for entry in candidates.iter()? {
                    let (key, value) = entry?;
                    let block: Block = decode("candidates", value.value())?;
                    if block.header.height <= header.height {
                        stale.push(*key.value());
                    }
                }
                stale
            };
            for key in &stale {
                candidates.remove(key)?;
            }
            let mut meta = txn.open_table(META)?;
            meta.insert(META_HEAD, encoding::encode(head).as_slice())?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Stores a candidate block durably under its hash.
    pub fn put_candidate(&self, block: &Block) -> Result<Hash, Error> {
        let hash = block.hash();
        let txn = self.db.begin_write()?;
        {
            let mut candidates = txn.open_table(CANDIDATES)?;
            candidates.insert(&hash.0, encoding::encode(block).as_slice())?;
        }
        txn.commit()?;
        Ok(hash)
    }

    /// A candidate block by hash.
    pub fn candidate(&self, hash: &Hash) -> Result<Option<Block>, Error> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(CANDIDATES)?;
        match table.get(&hash.0)? {
            Some(bytes) => Ok(Some(decode("candidates", bytes.value())?)),
            None => Ok(None),
        }
    }

    /// A finalized block by height.
    pub fn block(&self, height: u64) -> Result<Option<StoredBlock>, Error> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(BLOCKS)?;
        match table.get(height)? {
            Some(bytes) => Ok(Some(decode("blocks", bytes.value())?)),
            None => Ok(None),
        }
    }

    /// The height of a finalized block by hash.
    pub fn block_height(&self, hash: &Hash) -> Result<Option<u64>, Error> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(BLOCK_HASHES)?;
        Ok(table.get(&hash.0)?.map(|height| height.value()))
    }

    /// Keeps the finalization certificate that ended validator-set `epoch`.
    pub fn put_epoch_end(&self, epoch: u64, certificate: &[u8]) -> Result<(), Error> {
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(EPOCH_ENDS)?;
            table.insert(epoch, certificate)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// The finalization certificate that ended validator-set `epoch`, if this node kept it.
    pub fn epoch_end(&self, epoch: u64) -> Result<Option<Vec<u8>>, Error> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(EPOCH_ENDS)?;
        Ok(table.get(epoch)?.map(|bytes| bytes.value().to_vec()))
    }

    /// Where a committed transaction is.
    pub fn tx_location(&self, hash: &Hash) -> Result<Option<(u64, u32)>, Error> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(TXS)?;
        Ok(table.get(&hash.0)?.map(|loc| loc.value()))
    }

    /// The executed head and every state entry, read at one commit (what a state-sync
    /// peer sends).
    pub fn export(&self) -> Result<(HeadRecord, Entries), Error> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        let head: HeadRecord = match meta.get(META_HEAD)? {
            Some(bytes) => decode("meta", bytes.value())?,
            None => return Err(corrupt("meta", "no head")),
        };
        let state = txn.open_table(STATE)?;
        let mut entries = Vec::new();
        for entry in state.iter()? {
            let (key, value) = entry?;
            entries.push((key.value().to_vec(), value.value().to_vec()));
        }
        Ok((head, entries))
    }

    /// Starts an empty store from a verified state snapshot: state, head and genesis hash
    /// in one transaction. Blocks below the head stay absent.
    pub fn init_from_snapshot(
        &self,
        genesis: Hash,
        head: &HeadRecord,
        entries: &Entries,
    ) -> Result<(), Error> {
        let txn = self.db.begin_write()?;
        {
            let mut state = txn.open_table(STATE)?;
            for (key, value) in entries {
                state.insert(key.as_slice(), value.as_slice())?;
            }
            let mut meta = txn.open_table(META)?;
            meta.insert(META_GENESIS, encoding::encode(&genesis).as_slice())?;
            meta.insert(META_HEAD, encoding::encode(head).as_slice())?;
        }
        txn.commit()?;
        Ok(())
    }

    /// A consistent read-only view of the ledger state.
    pub fn snapshot(&self) -> Result<Snapshot, Error> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(STATE)?;
        Ok(Snapshot { table })
    }
}

fn apply_writes(
    table: &mut redb::Table<'_, &[u8], &[u8]>,
    writes: &StateWrites,
) -> Result<(), Error> {
    for (key, value) in writes {
        match value {
            Some(value) => {
                table.insert(key.as_slice(), value.as_slice())?;
            }
            None => {
                table.remove(key.as_slice())?;
            }
        }
    }
    Ok(())
}

/// A read-only view of the ledger state at one commit.
pub struct Snapshot {
    table: redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
}

impl Snapshot {
    /// The value under `key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.table.get(key)?.map(|value| value.value().to_vec()))
    }

    /// Entries whose key starts with `prefix`, in key order.
    pub fn scan_prefix(&self, prefix: &[u8]) -> Result<Entries, Error> {
        let mut out = Vec::new();
        for entry in self.table.range(prefix..)? {
            let (key, value) = entry?;
            if !key.value().starts_with(prefix) {
                break;
            }
            out.push((key.value().to_vec(), value.value().to_vec()));
        }
        Ok(out)
    }

    /// Every entry, in key order.
    pub fn entries(&self) -> Result<Entries, Error> {
        self.scan_prefix(&[])
    }
}

fn storage_error(err: Error) -> agora_ledger::StorageError {
    agora_ledger::StorageError(err.to_string())
}

/// A snapshot is read-only: the ledger writes into an [`agora_ledger::Overlay`] over it,
/// and the node commits the overlay's changes with [`Store::commit_block`].
impl agora_ledger::Storage for Snapshot {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, agora_ledger::StorageError> {
        Snapshot::get(self, key).map_err(storage_error)
    }

    fn put(&mut self, _key: &[u8], _value: &[u8]) -> Result<(), agora_ledger::StorageError> {
        Err(agora_ledger::StorageError(
            "snapshot is read-only".to_owned(),
        ))
    }

    fn delete(&mut self, _key: &[u8]) -> Result<(), agora_ledger::StorageError> {
        Err(agora_ledger::StorageError(
            "snapshot is read-only".to_owned(),
        ))
    }

    fn scan_prefix(
        &self,
        prefix: &[u8],
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, agora_ledger::StorageError> {
        Snapshot::scan_prefix(self, prefix).map_err(storage_error)
    }
}

/// Why a replay failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] Error),
    /// The ledger refused genesis or a stored block.
    #[error("ledger at height {height}: {source}")]
    Ledger {
        /// The block height (0: genesis).
        height: u64,
        /// The ledger's error.
        source: agora_ledger::Error,
    },
    /// A block's outcome differs from what was stored.
    #[error("block {0} replays to a different state root")]
    Diverged(u64),
}

/// Replays every stored block from `genesis` into a fresh in-memory ledger and
/// returns the final height and state root; a check that storage is exact.
pub fn replay(path: &Path, genesis: &agora_types::Genesis) -> Result<(u64, Hash), ReplayError> {
    let store = Store::open(path)?;
    let mut memory = agora_ledger::MemStorage::new();
    let mut root = agora_ledger::init_genesis(&mut memory, genesis)
        .map_err(|source| ReplayError::Ledger { height: 0, source })?;
    let mut height = 0;
    while let Some(stored) = store.block(height + 1)? {
        height += 1;
        let outcome = agora_ledger::apply_block(&mut memory, &stored.block)
            .map_err(|source| ReplayError::Ledger { height, source })?;
        if outcome.state_root != stored.result_root {
            return Err(ReplayError::Diverged(height));
        }
        root = outcome.state_root;
    }
    Ok((height, root))
}
