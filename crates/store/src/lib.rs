//! Agora's content-addressed blob store: blobs by CID on disk, verified on write and on demand.
//!
//! # Layout
//! `<root>/<cid>` holds a blob; `<root>/.tmp-<pid>-*` are writes in progress, removed by the
//! next open once their process has gone.
//! A blob is only ever renamed into place after its BLAKE3 hash matched, so a present blob was
//! whole when written; [`BlobStore::verify`] rehashes it to catch later corruption on disk.
//!
//! # Costs
//! Import and verify read the whole blob once (BLAKE3 runs at several GB/s, so a 100 MB model
//! takes tens of milliseconds plus the disk). Callers on an async executor should run them on a
//! blocking thread.

pub mod default_model;
pub mod fetch;
pub mod gguf;
pub mod serve;
pub mod tree;

use std::{
    fs::{self, File},
    io::{self, Read, Write},
    path::{Path, PathBuf},
};

use agora_types::Cid;

/// Bytes copied per read while importing or verifying.
const CHUNK: usize = 1 << 20;

/// Name prefix of a download in progress (`.partial-<cid>`), kept across restarts to resume.
const PARTIAL_PREFIX: &str = ".partial-";
/// Name suffix of a download's tree (`.partial-<cid>.tree`).
const PARTIAL_TREE_SUFFIX: &str = ".tree";

/// What can go wrong in the blob store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The bytes do not hash to the expected CID.
    #[error("content mismatch: expected {expected}, got {actual}")]
    Mismatch {
        /// The CID that was asked for.
        expected: Cid,
        /// The CID of the bytes that arrived.
        actual: Cid,
    },
    /// The store has no blob with this CID.
    #[error("blob {0} is not in the store")]
    Missing(Cid),
    /// Fetching from outside failed.
    #[error("fetch failed: {0}")]
    Fetch(String),
}

/// A progress callback: bytes done, bytes in total (0 when unknown).
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64);

/// Blobs by CID in one folder.
#[derive(Clone, Debug)]
pub struct BlobStore {
    root: PathBuf,
}

impl BlobStore {
    /// Opens (creating if needed) the store at `root`, removing abandoned temporary files.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, Error> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(|source| io_error(&root, source))?;
        let entries = fs::read_dir(&root).map_err(|source| io_error(&root, source))?;
        for entry in entries.flatten() {
            if is_abandoned(&entry.file_name().to_string_lossy()) {
                let path = entry.path();
                let _ = fs::remove_file(&path).or_else(|_| fs::remove_dir_all(&path));
            }
        }
        Ok(BlobStore { root })
    }

    /// The folder holding the blobs.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob `cid` lives (whether or not it is present).
    pub fn path(&self, cid: &Cid) -> PathBuf {
        self.root.join(cid.to_string())
    }

    /// Whether the blob is present.
    pub fn has(&self, cid: &Cid) -> bool {
        self.path(cid).is_file()
    }

    /// Opens a present blob for reading.
    pub fn open_blob(&self, cid: &Cid) -> Result<File, Error> {
        let path = self.path(cid);
        File::open(&path).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => Error::Missing(*cid),
            _ => io_error(&path, source),
        })
    }

    /// Copies `reader` into the store, hashing as it goes, and returns the blob's CID.
    ///
    /// With `expected` set, bytes that hash to anything else are discarded and
    /// [`Error::Mismatch`] is returned; nothing is left in the store.
    pub fn import_reader(
        &self,
        reader: &mut dyn Read,
        expected: Option<Cid>,
        total: u64,
        progress: Progress<'_>,
    ) -> Result<Cid, Error> {
        let temp_path = self.root.join(format!(".tmp-{}", unique_suffix()));
        let result = self.write_temp(reader, &temp_path, total, progress);
        let cid = match result {
            Ok(cid) => cid,
            Err(err) => {
                let _ = fs::remove_file(&temp_path);
                return Err(err);
            }
        };
        if let Some(expected) = expected {
            if expected != cid {
                let _ = fs::remove_file(&temp_path);
                return Err(Error::Mismatch {
                    expected,
                    actual: cid,
                });
            }
        }
        let final_path = self.path(&cid);
        fs::rename(&temp_path, &final_path).map_err(|source| io_error(&final_path, source))?;
        sync_dir(&self.root)?;
        tracing::info!(target: "agora::store", %cid, "stored blob");
        Ok(cid)
    }

    /// Imports the file at `path`; see [`BlobStore::import_reader`].
    pub fn import_file(
        &self,
        path: &Path,
        expected: Option<Cid>,
        progress: Progress<'_>,
    ) -> Result<Cid, Error> {
        let mut file = File::open(path).map_err(|source| io_error(path, source))?;
        let total = file.metadata().map(|m| m.len()).unwrap_or(0);
        self.import_reader(&mut file, expected, total, progress)
    }

    /// Rehashes a present blob; a blob whose bytes no longer match is removed and reported.
    pub fn verify(&self, cid: &Cid, progress: Progress<'_>) -> Result<(), Error> {
        let mut file = self.open_blob(cid)?;
        let total = file.metadata().map(|m| m.len()).unwrap_or(0);
        let actual = hash_reader(&mut file, total, progress)
            .map_err(|source| io_error(&self.path(cid), source))?;
        if actual != *cid {
            return Err(self.rotten(cid, actual));
        }
        Ok(())
    }

    /// The verified-streaming tree of a present blob, rehashing it; a blob whose bytes no
    /// longer match its CID is removed and reported as [`Error::Mismatch`].
    pub fn tree(&self, cid: &Cid) -> Result<tree::Tree, Error> {
        let path = self.path(cid);
        let mut file = std::io::BufReader::with_capacity(CHUNK, self.open_blob(cid)?);
        let len = file
            .get_ref()
            .metadata()
            .map_err(|source| io_error(&path, source))?
            .len();
        let tree = tree::Tree::compute(&mut file, len).map_err(|source| io_error(&path, source))?;
        let actual = Cid::from_hash(tree.root());
        if actual != *cid {
            return Err(self.rotten(cid, actual));
        }
        Ok(tree)
    }

    /// Removes the blob `cid`, whose bytes on disk now hash to `actual`, and says so.
    fn rotten(&self, cid: &Cid, actual: Cid) -> Error {
        tracing::warn!(target: "agora::store", %cid, %actual, "blob corrupted on disk; removed");
        let _ = fs::remove_file(self.path(cid));
        Error::Mismatch {
            expected: *cid,
            actual,
        }
    }

    /// The CIDs of the blobs present, in order.
    pub fn list(&self) -> Result<Vec<Cid>, Error> {
        let entries = fs::read_dir(&self.root).map_err(|source| io_error(&self.root, source))?;
        let mut cids: Vec<Cid> = entries
            .flatten()
            .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
            .collect();
        cids.sort();
        Ok(cids)
    }

    /// Removes a blob (and any partial download of it); removing an absent blob is not an
    /// error.
    pub fn remove(&self, cid: &Cid) -> Result<(), Error> {
        for path in [
            self.path(cid),
            self.partial_path(cid),
            self.partial_tree_path(cid),
        ] {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(io_error(&path, source)),
            }
        }
        Ok(())
    }

    /// Removes every blob and partial download whose CID is not in `keep` (the active models
    /// and pinned transcripts); returns what it removed.
    pub fn gc(&self, keep: &std::collections::BTreeSet<Cid>) -> Result<Vec<Cid>, Error> {
        let entries = fs::read_dir(&self.root).map_err(|source| io_error(&self.root, source))?;
        let mut found = std::collections::BTreeSet::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let name = name.strip_prefix(PARTIAL_PREFIX).unwrap_or(name);
            let name = name.strip_suffix(PARTIAL_TREE_SUFFIX).unwrap_or(name);
            if let Ok(cid) = name.parse::<Cid>() {
                found.insert(cid);
            }
        }
        let mut removed = Vec::new();
        for cid in found.difference(keep) {
            self.remove(cid)?;
            tracing::info!(target: "agora::store", %cid, "collected unreferenced blob");
            removed.push(*cid);
        }
        Ok(removed)
    }

    /// Where a download of `cid` in progress keeps its bytes, across restarts.
    pub(crate) fn partial_path(&self, cid: &Cid) -> PathBuf {
        self.root.join(format!("{PARTIAL_PREFIX}{cid}"))
    }

    /// Where a download of `cid` in progress keeps its verified tree.
    pub(crate) fn partial_tree_path(&self, cid: &Cid) -> PathBuf {
        self.root
            .join(format!("{PARTIAL_PREFIX}{cid}{PARTIAL_TREE_SUFFIX}"))
    }

    /// Moves a finished, verified download into place.
    pub(crate) fn commit_partial(&self, cid: &Cid) -> Result<PathBuf, Error> {
        let partial = self.partial_path(cid);
        let final_path = self.path(cid);
        if let Err(source) = File::open(&partial).and_then(|f| f.sync_all()) {
            // Another fetcher sharing this store finished the same blob first.
            if source.kind() == io::ErrorKind::NotFound && final_path.is_file() {
                return Ok(final_path);
            }
            return Err(io_error(&partial, source));
        }
        match fs::rename(&partial, &final_path) {
            Ok(()) => {}
            // Another fetcher sharing this store finished the same blob first.
            Err(err) if err.kind() == io::ErrorKind::NotFound && final_path.is_file() => {}
            Err(source) => return Err(io_error(&final_path, source)),
        }
        let _ = fs::remove_file(self.partial_tree_path(cid));
        sync_dir(&self.root)?;
        tracing::info!(target: "agora::store", %cid, "stored fetched blob");
        Ok(final_path)
    }

    fn write_temp(
        &self,
        reader: &mut dyn Read,
        temp_path: &Path,
        total: u64,
        progress: Progress<'_>,
    ) -> Result<Cid, Error> {
        let mut temp = File::create(temp_path).map_err(|source| io_error(temp_path, source))?;
        let cid = hash_copy(reader, &mut temp, total, progress)
            .map_err(|source| io_error(temp_path, source))?;
        temp.sync_all()
            .map_err(|source| io_error(temp_path, source))?;
        Ok(cid)
    }
}

/// The CID of everything `reader` yields.
pub fn hash_reader(reader: &mut dyn Read, total: u64, progress: Progress<'_>) -> io::Result<Cid> {
    hash_copy(reader, &mut io::sink(), total, progress)
}

/// Copies `reader` into `sink` and returns the CID of the bytes copied.
fn hash_copy(
    reader: &mut dyn Read,
    sink: &mut dyn Write,
    total: u64,
    progress: Progress<'_>,
) -> io::Result<Cid> {
    let mut hasher = blake3::Hasher::new();
    let mut buffer = vec![0u8; CHUNK];
    let mut done = 0u64;
    loop {
        let n = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        hasher.update(&buffer[..n]);
        sink.write_all(&buffer[..n])?;
        done += n as u64;
        progress(done, total);
    }
    Ok(Cid::from_hash(hasher.finalize().into()))
}

fn io_error(path: &Path, source: io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| io_error(dir, source))
}

/// Whether `name` is a temporary file left by a process that no longer runs.
///
/// Temporary names carry the writer's pid (`.tmp-<pid>-<n>`, `.tmp-wheel-<pid>-<n>`), so a store
/// opened by two processes at once never removes the other's write in progress.
fn is_abandoned(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(".tmp-") else {
        return false;
    };
    let rest = rest.strip_prefix("wheel-").unwrap_or(rest);
    let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
        return true;
    };
    pid != std::process::id() && !Path::new("/proc").join(pid.to_string()).exists()
}

/// A name part no other write in this process or any other running one uses.
pub(crate) fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}
