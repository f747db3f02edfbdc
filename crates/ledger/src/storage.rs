//! The storage seam: an ordered key-value store the ledger reads and writes.
//!
//! The ledger owns the key layout (see [`crate::state`]); a backend only stores bytes.
//! [`MemStorage`] is the in-memory implementation for tests; the node implements
//! [`Storage`] on redb.
//! [`Overlay`] buffers writes over another storage so a failing transaction's writes can be
//! dropped, and a block's writes can be committed at once.

use std::collections::BTreeMap;

/// Entries returned by a prefix scan: `(key, value)` in ascending key order.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// A backend failure (I/O, corruption). Fatal to the handle that saw it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("storage failure: {0}")]
pub struct StorageError(pub String);

/// An ordered key-value store.
///
/// # Promises an implementation must keep
///
/// - `get` returns the last value `put` under the key, or `None` after `delete` or if never
///   written.
/// - `scan_prefix` returns every live entry whose key starts with `prefix`, in ascending
///   byte order of keys, and nothing else.
/// - An error means the handle can no longer be trusted; the ledger stops and returns it.
pub trait Storage {
    /// The value under `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError>;
    /// Stores `value` under `key`, replacing any previous value.
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StorageError>;
    /// Removes `key`; removing a missing key is not an error.
    fn delete(&mut self, key: &[u8]) -> Result<(), StorageError>;
    /// Every entry whose key starts with `prefix`, in ascending key order.
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Entries, StorageError>;
}

/// In-memory storage over a `BTreeMap`, for tests and tools.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemStorage {
    entries: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl MemStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every entry, in key order.
    pub fn entries(&self) -> &BTreeMap<Vec<u8>, Vec<u8>> {
        &self.entries
    }
}

impl Storage for MemStorage {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.entries.get(key).cloned())
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        self.entries.insert(key.to_vec(), value.to_vec());
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> Result<(), StorageError> {
        self.entries.remove(key);
        Ok(())
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<Entries, StorageError> {
        Ok(self
            .entries
            .range(prefix.to_vec()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect())
    }
}

/// Buffered writes over a read-only base; reads see the buffered writes first.
pub struct Overlay<'a> {
    base: &'a dyn Storage,
    changes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl<'a> Overlay<'a> {
    /// An empty overlay over `base`.
    pub fn new(base: &'a dyn Storage) -> Self {
        Overlay {
            base,
            changes: BTreeMap::new(),
        }
    }

    /// The buffered writes, in key order: `Some(value)` for a put, `None` for a delete.
    pub fn into_changes(self) -> BTreeMap<Vec<u8>, Option<Vec<u8>>> {
        self.changes
    }
}

/// Writes `changes` (from [`Overlay::into_changes`]) into `target`, in key order.
pub fn write_changes(
    target: &mut dyn Storage,
    changes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
) -> Result<(), StorageError> {
    for (key, value) in changes {
        match value {
            Some(value) => target.put(&key, &value)?,
            None => target.delete(&key)?,
        }
    }
    Ok(())
}

impl Storage for Overlay<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        match self.changes.get(key) {
            Some(change) => Ok(change.clone()),
            None => self.base.get(key),
        }
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        self.changes.insert(key.to_vec(), Some(value.to_vec()));
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> Result<(), StorageError> {
        self.changes.insert(key.to_vec(), None);
        Ok(())
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<Entries, StorageError> {
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> =
            self.base.scan_prefix(prefix)?.into_iter().collect();
        let buffered = self
            .changes
            .range(prefix.to_vec()..)
            .take_while(|(key, _)| key.starts_with(prefix));
        for (key, change) in buffered {
            match change {
                Some(value) => merged.insert(key.clone(), value.clone()),
                None => merged.remove(key),
            };
        }
        Ok(merged.into_iter().collect())
    }
}
