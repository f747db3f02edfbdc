//! Receipts the gateway received, with their transcripts, kept for clients and verifiers.
//!
//! Kept in memory and appended to `receipts.jsonl` in the gateway's data folder, which is read
//! back at start.

use std::{collections::HashMap, io::Write, path::PathBuf, sync::Mutex};

use agora_api::ReceiptJson;
use serde::{Deserialize, Serialize};

/// A receipt and what it attests.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoredReceipt {
    /// The provider's signed receipt.
    pub receipt: ReceiptJson,
    /// Where the provider was reached.
    pub endpoint: String,
    /// The request body the provider served (its BLAKE3 is the receipt's `request_hash`).
    pub request: String,
    /// Output token ids.
    pub output_tokens: Vec<u32>,
    /// Output text.
    pub output_text: String,
}

/// The gateway's receipts by id.
pub struct ReceiptStore {
    map: Mutex<HashMap<String, StoredReceipt>>,
    path: Option<PathBuf>,
}

impl ReceiptStore {
    /// A store backed by `path` (read now if it exists), or in memory only.
    pub fn open(path: Option<PathBuf>) -> std::io::Result<Self> {
        let mut map = HashMap::new();
        if let Some(path) = &path {
            match std::fs::read_to_string(path) {
                Ok(text) => {
                    for line in text.lines() {
                        // A torn last line (crash mid-write) is skipped.
                        if let Ok(entry) = serde_json::from_str::<StoredReceipt>(line) {
                            map.insert(entry.receipt.id.clone(), entry);
                        }
                    }
                }
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err(err),
            }
        }
        Ok(ReceiptStore {
            map: Mutex::new(map),
            path,
        })
    }

    /// Keeps a receipt.
    pub fn insert(&self, entry: StoredReceipt) {
        if let Some(path) = &self.path {
            let line = serde_json::to_string(&entry).unwrap_or_default();
            let written = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut f| writeln!(f, "{line}"));
            if let Err(err) = written {
                tracing::error!(target: "agora::gateway", %err, "cannot append the receipt log");
            }
        }
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(entry.receipt.id.clone(), entry);
    }

    /// A receipt by id.
    pub fn get(&self, id: &str) -> Option<StoredReceipt> {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }
}
