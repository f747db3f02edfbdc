//! The provider's payment journal: what it is owed and which receipts it signed, on disk.
//!
//! Without it, a provider killed between signing receipts and redeeming them would restart
//! from the ledger's `redeemed` totals and lose what it earned since, and its uncommitted
//! receipts would never reach the chain. Each settled request appends one line before its
//! receipt leaves the provider; each committed epoch appends one more. Lines are JSON, so a
//! torn last line (a crash mid-write) is recognised and skipped. Writes are not fsynced: the
//! journal survives the process being killed, not the machine losing power.

use std::{
    collections::{BTreeMap, HashMap},
    fs::{File, OpenOptions},
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    sync::Mutex,
};

use agora_types::{encoding, Amount, Cid, Hash, SignedVoucher};
use serde::{Deserialize, Serialize};

/// One journal line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Entry {
    /// A request was settled: its receipt, and the channel's books after it.
    Settled {
        receipt: String,
        epoch: u64,
        tokens_in: u64,
        tokens_out: u64,
        charge: String,
        /// The model served (CID); absent in journals written before totals by model.
        #[serde(default)]
        model: Option<String>,
        channel: String,
        /// Everything the channel owes the provider so far (cumulative).
        owed: String,
        /// The highest voucher on the channel, hex of its canonical bytes.
        voucher: String,
    },
    /// An epoch's receipt root was committed on the ledger.
    Committed { epoch: u64, root: String },
}

/// A settled request, as the journal gives it back.
#[derive(Clone, Debug, PartialEq)]
pub struct SettledReceipt {
    /// The receipt's id.
    pub id: Hash,
    /// The epoch it was booked in.
    pub epoch: u64,
    /// Tokens in, tokens out and the charge.
    pub tokens: (u64, u64),
    /// What the receipt charged.
    pub charge: Amount,
    /// The model served.
    pub model: Cid,
}

/// What a channel owed when the journal was last written.
#[derive(Clone, Debug)]
pub struct ChannelState {
    /// Cumulative amount owed.
    pub owed: Amount,
    /// The highest voucher seen.
    pub voucher: SignedVoucher,
}

/// The journal read back at start.
#[derive(Debug, Default)]
pub struct Replay {
    /// Settled receipts in signing order.
    pub receipts: Vec<SettledReceipt>,
    /// Committed epochs and their roots.
    pub committed: BTreeMap<u64, Hash>,
    /// The last state of each channel.
    pub channels: HashMap<Hash, ChannelState>,
}

/// An append-only journal file.
pub struct Journal {
    file: Mutex<File>,
    path: PathBuf,
}

/// A journal that cannot be opened or written.
#[derive(Debug, thiserror::Error)]
#[error("payment journal {path}: {source}")]
pub struct JournalError {
    path: PathBuf,
    source: std::io::Error,
}

impl Journal {
    /// Opens (creating) the journal at `path` and reads back what it holds.
    pub fn open(path: &Path) -> Result<(Journal, Replay), JournalError> {
        let error = |source| JournalError {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(error)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)
            .map_err(error)?;
        let mut replay = Replay::default();
        for line in BufReader::new(&file).lines() {
            let line = line.map_err(error)?;
            match serde_json::from_str::<Entry>(&line) {
                Ok(entry) => replay.apply(entry),
                Err(err) => {
                    tracing::warn!(target: "agora::provider", path = %path.display(), %err, "skipping a torn journal line")
                }
            }
        }
        let journal = Journal {
            file: Mutex::new(file),
            path: path.to_owned(),
        };
        Ok((journal, replay))
    }

    /// Records a settled request and its channel's books after it.
    pub fn settled(
        &self,
        receipt: &SettledReceipt,
        channel: &Hash,
        owed: Amount,
        voucher: &SignedVoucher,
    ) {
        self.append(&Entry::Settled {
            receipt: receipt.id.to_hex(),
            epoch: receipt.epoch,
            tokens_in: receipt.tokens.0,
            tokens_out: receipt.tokens.1,
            charge: receipt.charge.to_string(),
            model: Some(receipt.model.to_string()),
            channel: channel.to_hex(),
            owed: owed.to_string(),
            voucher: hex::encode(encoding::encode(voucher)),
        });
    }

    /// Records an epoch's committed root.
    pub fn committed(&self, epoch: u64, root: &Hash) {
        self.append(&Entry::Committed {
            epoch,
            root: root.to_hex(),
        });
    }

    fn append(&self, entry: &Entry) {
        let mut line = serde_json::to_string(entry).unwrap_or_default();
        line.push('\n');
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        // One write call per line, so a crash tears at most the last line.
        if let Err(err) = file.write_all(line.as_bytes()) {
            tracing::error!(target: "agora::provider", path = %self.path.display(), %err, "cannot write the payment journal");
        }
    }
}

impl Replay {
    fn apply(&mut self, entry: Entry) {
        match entry {
            Entry::Settled {
                receipt,
                epoch,
                tokens_in,
                tokens_out,
                charge,
                model,
                channel,
                owed,
                voucher,
            } => {
                let (Some(id), Some(channel), Ok(owed), Ok(charge)) = (
                    Hash::from_hex(&receipt),
                    Hash::from_hex(&channel),
                    owed.parse::<Amount>(),
                    charge.parse::<Amount>(),
                ) else {
                    return;
                };
                let Some(voucher) = hex::decode(&voucher)
                    .ok()
                    .and_then(|bytes| encoding::decode::<SignedVoucher>(&bytes).ok())
                else {
                    return;
                };
                // A line from before totals by model cannot be committed by model; its
                // channel's books below still count.
                if let Some(model) = model.and_then(|m| m.parse::<Cid>().ok()) {
                    self.receipts.push(SettledReceipt {
                        id,
                        epoch,
                        tokens: (tokens_in, tokens_out),
                        charge,
                        model,
                    });
                }
                let state = self.channels.entry(channel).or_insert(ChannelState {
                    owed,
                    voucher: voucher.clone(),
                });
                state.owed = state.owed.max(owed);
                if voucher.voucher.cumulative > state.voucher.voucher.cumulative {
                    state.voucher = voucher;
                }
            }
            Entry::Committed { epoch, root } => {
                if let Some(root) = Hash::from_hex(&root) {
                    self.committed.insert(epoch, root);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use agora_types::{ChainId, Keypair, Voucher};

    use super::*;

    fn voucher(keypair: &Keypair, cumulative: Amount) -> SignedVoucher {
        Voucher {
            chain_id: ChainId::new("test").unwrap(),
            channel_id: Hash::of(b"channel"),
            payer: keypair.account_id(),
            payee: keypair.account_id(),
            cumulative,
        }
        .sign(keypair)
    }

    #[test]
    fn a_journal_gives_back_what_was_written_and_skips_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let keypair = Keypair::from_seed(b"journal test");
        let channel = Hash::of(b"channel");
        let first = SettledReceipt {
            id: Hash::of(b"r1"),
            epoch: 3,
            tokens: (10, 5),
            charge: 7,
            model: Cid::of(b"m1"),
        };
        let second = SettledReceipt {
            id: Hash::of(b"r2"),
            epoch: 4,
            tokens: (12, 6),
            charge: 9,
            model: Cid::of(b"m2"),
        };
        {
            let (journal, replay) = Journal::open(&path).unwrap();
            assert!(replay.receipts.is_empty());
            journal.settled(&first, &channel, 7, &voucher(&keypair, 100));
            journal.committed(3, &Hash::of(b"root"));
            journal.settled(&second, &channel, 16, &voucher(&keypair, 200));
        }
        // A crash in the middle of a line.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"kind\":\"settled\",\"rece").unwrap();
        drop(file);

        let (_, replay) = Journal::open(&path).unwrap();
        assert_eq!(replay.receipts, vec![first, second]);
        assert_eq!(replay.committed.get(&3), Some(&Hash::of(b"root")));
        let state = &replay.channels[&channel];
        assert_eq!(state.owed, 16);
        assert_eq!(state.voucher.voucher.cumulative, 200);
    }
}
