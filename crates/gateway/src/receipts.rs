//! Receipts the gateway received, with their transcripts, kept for clients and verifiers.
//!
//! Kept in memory and appended to `receipts.jsonl` in the gateway's data folder, which is read
//! back at start. The store also keeps the order receipts arrived in and running totals (by
//! model and by provider), which the explorer ([`crate::explorer`]) reports.

use std::{
    collections::{BTreeMap, HashMap},
    io::Write,
    path::PathBuf,
    sync::Mutex,
};

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
    /// The raw logit of each output token, in thousandths, as the provider committed to them
    /// (absent from receipts kept before logits were committed).
    #[serde(default)]
    pub output_logits: Vec<i32>,
    /// Output text.
    pub output_text: String,
}

/// Requests and tokens served, summed over receipts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Receipts counted.
    pub requests: u64,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Sum of the receipts' charges (base units).
    pub charge: u128,
}

impl Usage {
    fn add(&mut self, receipt: &ReceiptJson) {
        self.requests += 1;
        self.prompt_tokens += u64::from(receipt.prompt_tokens);
        self.completion_tokens += u64::from(receipt.completion_tokens);
        self.charge = self
            .charge
            .saturating_add(receipt.charge.parse().unwrap_or(0));
    }

    /// Prompt plus completion tokens.
    pub fn tokens(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }
}

/// Totals over every receipt kept.
#[derive(Clone, Debug, Default)]
pub struct Totals {
    /// All receipts.
    pub all: Usage,
    /// By model CID.
    pub by_model: BTreeMap<String, Usage>,
    /// By provider account.
    pub by_provider: BTreeMap<String, Usage>,
}

impl Totals {
    fn add(&mut self, receipt: &ReceiptJson) {
        self.all.add(receipt);
        self.by_model
            .entry(receipt.model.clone())
            .or_default()
            .add(receipt);
        self.by_provider
            .entry(receipt.provider.clone())
            .or_default()
            .add(receipt);
    }
}

/// The gateway's receipts by id.
pub struct ReceiptStore {
    inner: Mutex<Inner>,
    /// Lines for the log's writer thread, which appends them off the request path.
    log: Option<std::sync::mpsc::Sender<String>>,
    /// The writer thread, joined on drop so that no line sent is lost at shutdown.
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for ReceiptStore {
    fn drop(&mut self) {
        self.log.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

#[derive(Default)]
struct Inner {
    map: HashMap<String, StoredReceipt>,
    /// Ids in the order they arrived.
    order: Vec<String>,
    totals: Totals,
}

impl Inner {
    fn insert(&mut self, entry: StoredReceipt) {
        let id = entry.receipt.id.clone();
        if self.map.contains_key(&id) {
            return;
        }
        self.totals.add(&entry.receipt);
        self.order.push(id.clone());
        self.map.insert(id, entry);
    }
}

/// Appends each line sent to `path`, flushing whenever no more lines are waiting, until every
/// sender is gone.
fn spawn_log_writer(
    path: PathBuf,
) -> std::io::Result<(std::sync::mpsc::Sender<String>, std::thread::JoinHandle<()>)> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?;
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let writer = std::thread::Builder::new()
        .name("receipt-log".into())
        .spawn(move || {
            let mut out = std::io::BufWriter::new(file);
            while let Ok(line) = rx.recv() {
                let mut written = writeln!(out, "{line}");
                while let Ok(line) = rx.try_recv() {
                    written = written.and_then(|()| writeln!(out, "{line}"));
                }
                if let Err(err) = written.and_then(|()| out.flush()) {
                    tracing::error!(target: "agora::gateway", %err, path = %path.display(), "cannot append the receipt log");
                }
            }
        })?;
    Ok((tx, writer))
}

impl ReceiptStore {
    /// A store backed by `path` (read now if it exists), or in memory only.
    pub fn open(path: Option<PathBuf>) -> std::io::Result<Self> {
        let mut inner = Inner::default();
        if let Some(path) = &path {
            match std::fs::read_to_string(path) {
                Ok(text) => {
                    for line in text.lines() {
                        // A torn last line (crash mid-write) is skipped.
                        if let Ok(entry) = serde_json::from_str::<StoredReceipt>(line) {
                            inner.insert(entry);
                        }
                    }
                }
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err(err),
            }
        }
        let (log, writer) = match path {
            Some(path) => {
                let (log, writer) = spawn_log_writer(path)?;
                (Some(log), Some(writer))
            }
            None => (None, None),
        };
        Ok(ReceiptStore {
            inner: Mutex::new(inner),
            log,
            writer,
        })
    }

    /// Keeps a receipt.
    pub fn insert(&self, entry: StoredReceipt) {
        if let Some(log) = &self.log {
            let line = serde_json::to_string(&entry).unwrap_or_default();
            if log.send(line).is_err() {
                tracing::error!(target: "agora::gateway", "the receipt log writer stopped");
            }
        }
        self.lock().insert(entry);
    }

    /// A receipt by id.
    pub fn get(&self, id: &str) -> Option<StoredReceipt> {
        self.lock().map.get(id).cloned()
    }

    /// The last `limit` receipts that match `keep`, newest first.
    pub fn recent(&self, limit: usize, keep: impl Fn(&ReceiptJson) -> bool) -> Vec<StoredReceipt> {
        let inner = self.lock();
        inner
            .order
            .iter()
            .rev()
            .filter_map(|id| inner.map.get(id))
            .filter(|entry| keep(&entry.receipt))
            .take(limit)
            .cloned()
            .collect()
    }

    /// Usage per time bucket: `buckets` buckets of `width_ms` each, the last one ending at
    /// `now_ms`, by the receipts' timestamps (oldest bucket first).
    pub fn series(&self, now_ms: u64, width_ms: u64, buckets: usize) -> Vec<Usage> {
        let mut out = vec![Usage::default(); buckets];
        let width_ms = width_ms.max(1);
        let span = width_ms.saturating_mul(buckets as u64);
        let start = now_ms.saturating_sub(span);
        let inner = self.lock();
        // Receipts arrive roughly in time order: stop well past the window.
        for id in inner.order.iter().rev() {
            let Some(entry) = inner.map.get(id) else {
                continue;
            };
            let at = entry.receipt.timestamp_ms;
            if at.saturating_add(span) < start {
                break;
            }
            if at < start || at >= now_ms {
                continue;
            }
            let index = ((at - start) / width_ms) as usize;
            if let Some(bucket) = out.get_mut(index) {
                bucket.add(&entry.receipt);
            }
        }
        out
    }

    /// Totals over every receipt kept.
    pub fn totals(&self) -> Totals {
        self.lock().totals.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}
