//! Fetching a blob from peers: verified 1 MiB ranges in parallel, resumable, liars dropped.
//!
//! # How a fetch goes
//! 1. If the blob is present it is rehashed; a blob that rotted on disk is removed and fetched
//!    again.
//! 2. The first peer that has the blob sends its [`Tree`]; a tree that does not combine to the
//!    CID marks that peer a liar.
//! 3. Each peer gets up to [`WORKERS_PER_PEER`] workers ([`MAX_IN_FLIGHT`] in all) that take
//!    groups from one queue and fetch
//!    them with `Range` requests. Each group is checked against the tree before it is written
//!    at its offset in `.partial-<cid>`, so a bad peer is caught at its first bad group. A
//!    group that fails goes back on the queue for the other peers.
//! 4. A peer that sends a wrong group is a liar: it is logged, counted, and not asked again by
//!    this fetcher. A peer that fails [`MAX_PEER_FAILURES`] times in a row (refused, dropped
//!    the connection, short body) is not asked again during this fetch.
//! 5. When every group is in, the partial file is fsynced and renamed to `<cid>`.
//!
//! A fetch that is interrupted (the process killed) leaves `.partial-<cid>` and its tree; the
//! next fetch of the same CID rechecks the groups already there against the tree and fetches
//! only the rest.

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    fs::{File, OpenOptions},
    os::unix::fs::FileExt,
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use agora_types::Cid;

use crate::{
    io_error,
    tree::{Tree, GROUP, MAX_BLOB},
    BlobStore, Error,
};

/// Concurrent range requests per peer.
pub const WORKERS_PER_PEER: usize = 4;

/// Range requests in flight across all peers: more only adds contention for the CPU that
/// verifies and the disk that writes.
pub const MAX_IN_FLIGHT: usize = 12;

/// Consecutive failures after which a peer is dropped from a fetch.
pub const MAX_PEER_FAILURES: u32 = 3;

/// Largest tree accepted from a peer.
const MAX_TREE_BYTES: usize = 8 + 32 * (MAX_BLOB / GROUP) as usize;

/// Counters for `/metrics`, shared by every fetch of one [`Fetcher`].
#[derive(Debug, Default)]
pub struct FetchStats {
    /// Bytes fetched and verified.
    pub verified_bytes: AtomicU64,
    /// Groups that did not match the tree.
    pub rejected_groups: AtomicU64,
    /// Requests that failed (refused, dropped, short).
    pub peer_failures: AtomicU64,
    /// Blobs fetched completely.
    pub completed: AtomicU64,
    liars: Mutex<BTreeSet<String>>,
}

impl FetchStats {
    /// The peers caught sending bytes that do not match the CID.
    pub fn liars(&self) -> BTreeSet<String> {
        self.liars.lock().expect("liars").clone()
    }

    /// The counters in Prometheus text format.
    pub fn render(&self) -> String {
        format!(
            "# TYPE agora_blob_fetch_verified_bytes_total counter\n\
             agora_blob_fetch_verified_bytes_total {}\n\
             # TYPE agora_blob_fetch_rejected_groups_total counter\n\
             agora_blob_fetch_rejected_groups_total {}\n\
             # TYPE agora_blob_fetch_peer_failures_total counter\n\
             agora_blob_fetch_peer_failures_total {}\n\
             # TYPE agora_blob_fetch_completed_total counter\n\
             agora_blob_fetch_completed_total {}\n\
             # TYPE agora_blob_fetch_liars gauge\n\
             agora_blob_fetch_liars {}\n",
            self.verified_bytes.load(Ordering::Relaxed),
            self.rejected_groups.load(Ordering::Relaxed),
            self.peer_failures.load(Ordering::Relaxed),
            self.completed.load(Ordering::Relaxed),
            self.liars.lock().expect("liars").len(),
        )
    }
}

/// What one fetch did.
#[derive(Debug, Clone)]
pub struct Report {
    /// The blob.
    pub cid: Cid,
    /// Where it now lives.
    pub path: PathBuf,
    /// Its length in bytes.
    pub len: u64,
    /// Whether it was already present and intact (nothing fetched).
    pub present: bool,
    /// Bytes taken from an interrupted earlier fetch, rechecked.
    pub resumed_bytes: u64,
    /// Verified bytes fetched from each peer.
    pub from_peers: BTreeMap<String, u64>,
    /// Peers caught lying during this fetch.
    pub liars: Vec<String>,
    /// Peers dropped after repeated failures during this fetch.
    pub failed: Vec<String>,
}

/// Fetches blobs into a store from peers; see the module docs.
pub struct Fetcher {
    store: BlobStore,
    client: reqwest::Client,
    stats: Arc<FetchStats>,
}

struct Peer {
    url: String,
    failures: AtomicU32,
    dropped: AtomicBool,
    liar: AtomicBool,
    verified: AtomicU64,
}

impl Peer {
    fn usable(&self) -> bool {
        !self.dropped.load(Ordering::Relaxed) && !self.liar.load(Ordering::Relaxed)
    }
}

/// Shared by the workers of one fetch.
struct Job {
    cid: Cid,
    tree: Tree,
    file: Arc<File>,
    queue: Mutex<VecDeque<u64>>,
    done_bytes: AtomicU64,
    done_groups: AtomicU64,
}

impl Fetcher {
    /// A fetcher writing into `store`.
    pub fn new(store: BlobStore) -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .read_timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        Fetcher {
            store,
            client,
            stats: Arc::new(FetchStats::default()),
        }
    }

    /// The store blobs are fetched into.
    pub fn store(&self) -> &BlobStore {
        &self.store
    }

    /// This fetcher's counters.
    pub fn stats(&self) -> Arc<FetchStats> {
        Arc::clone(&self.stats)
    }

    /// Makes `cid` present and intact in the store, fetching from `peers` (base URLs that serve
    /// `/blobs/{cid}`) what is missing. `progress` gets (verified bytes, total) as it goes.
    pub async fn fetch(
        &self,
        cid: Cid,
        peers: &[String],
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<Report, Error> {
        if self.store.has(&cid) {
            let store = self.store.clone();
            let checked = tokio::task::spawn_blocking(move || store.tree(&cid))
                .await
                .map_err(|err| Error::Fetch(err.to_string()))?;
            match checked {
                Ok(tree) => {
                    progress(tree.len(), tree.len());
                    return Ok(self.report(cid, tree.len(), true, 0, &[]));
                }
                // Rotted on disk and removed: fetch it again.
                Err(Error::Mismatch { .. }) => {}
                Err(err) => return Err(err),
            }
        }
        let peers: Vec<Arc<Peer>> = self
            .usable_peers(peers)
            .into_iter()
            .map(|url| {
                Arc::new(Peer {
                    url,
                    failures: AtomicU32::new(0),
                    dropped: AtomicBool::new(false),
                    liar: AtomicBool::new(false),
                    verified: AtomicU64::new(0),
                })
            })
            .collect();
        if peers.is_empty() {
            return Err(Error::Fetch(format!("no peer to fetch {cid} from")));
        }
        let tree = self.tree(&cid, &peers).await?;
        let (file, resumed) = self.open_partial(&cid, &tree).await?;
        let job = Arc::new(Job {
            cid,
            queue: Mutex::new(
                (0..tree.groups())
                    .filter(|g| !resumed.contains(g))
                    .collect(),
            ),
            done_bytes: AtomicU64::new(resumed.iter().map(|&g| tree.range(g).1).sum()),
            done_groups: AtomicU64::new(resumed.len() as u64),
            tree,
            file,
        });
        let resumed_bytes = job.done_bytes.load(Ordering::Relaxed);
        if resumed_bytes > 0 {
            tracing::info!(target: "agora::store", %cid, resumed_bytes, "resuming an interrupted fetch");
        }
        let total = job.tree.len();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        while job.done_groups.load(Ordering::Relaxed) < job.tree.groups() {
            let live: Vec<_> = peers.iter().filter(|p| p.usable()).cloned().collect();
            if live.is_empty() {
                return Err(Error::Fetch(format!(
                    "{cid}: every peer failed or lied with {} of {} groups still missing",
                    job.tree.groups() - job.done_groups.load(Ordering::Relaxed),
                    job.tree.groups()
                )));
            }
            let mut workers = tokio::task::JoinSet::new();
            for peer in &live {
                let share = (MAX_IN_FLIGHT / live.len()).clamp(1, WORKERS_PER_PEER);
                for _ in 0..share {
                    workers.spawn(work(
                        self.client.clone(),
                        Arc::clone(&job),
                        Arc::clone(peer),
                        Arc::clone(&self.stats),
                    ));
                }
            }
            loop {
                tokio::select! {
                    joined = workers.join_next() => if joined.is_none() { break },
                    _ = tick.tick() => progress(job.done_bytes.load(Ordering::Relaxed), total),
                }
            }
        }
        progress(total, total);
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.commit_partial(&cid))
            .await
            .map_err(|err| Error::Fetch(err.to_string()))??;
        self.stats.completed.fetch_add(1, Ordering::Relaxed);
        Ok(self.report(cid, total, false, resumed_bytes, &peers))
    }

    fn report(
        &self,
        cid: Cid,
        len: u64,
        present: bool,
        resumed_bytes: u64,
        peers: &[Arc<Peer>],
    ) -> Report {
        Report {
            cid,
            path: self.store.path(&cid),
            len,
            present,
            resumed_bytes,
            from_peers: peers
                .iter()
                .map(|p| (p.url.clone(), p.verified.load(Ordering::Relaxed)))
                .collect(),
            liars: peers
                .iter()
                .filter(|p| p.liar.load(Ordering::Relaxed))
                .map(|p| p.url.clone())
                .collect(),
            failed: peers
                .iter()
                .filter(|p| p.dropped.load(Ordering::Relaxed))
                .map(|p| p.url.clone())
                .collect(),
        }
    }

    /// `peers` without duplicates, trailing slashes, or known liars.
    fn usable_peers(&self, peers: &[String]) -> Vec<String> {
        let liars = self.stats.liars();
        let mut seen = BTreeSet::new();
        peers
            .iter()
            .map(|p| p.trim().trim_end_matches('/').to_owned())
            .filter(|p| !p.is_empty() && !liars.contains(p) && seen.insert(p.clone()))
            .collect()
    }

    /// The tree of `cid`: the one saved by an interrupted fetch, or the first valid one a peer
    /// sends.
    async fn tree(&self, cid: &Cid, peers: &[Arc<Peer>]) -> Result<Tree, Error> {
        let saved = self.store.partial_tree_path(cid);
        if let Ok(bytes) = tokio::fs::read(&saved).await {
            if let Ok(tree) = Tree::decode(&bytes, cid) {
                return Ok(tree);
            }
        }
        let mut reasons = Vec::new();
        for peer in peers {
            let url = format!("{}/blobs/{cid}/tree", peer.url);
            let bytes = match get_bounded(&self.client, &url, None, MAX_TREE_BYTES).await {
                Ok(bytes) => bytes,
                Err(reason) => {
                    reasons.push(format!("{}: {reason}", peer.url));
                    continue;
                }
            };
            match Tree::decode(&bytes, cid) {
                Ok(tree) => {
                    tokio::fs::write(&saved, tree.encode())
                        .await
                        .map_err(|source| io_error(&saved, source))?;
                    return Ok(tree);
                }
                Err(err) => {
                    caught_lying(&self.stats, peer, cid, &format!("tree: {err}"));
                    reasons.push(format!("{}: {err}", peer.url));
                }
            }
        }
        Err(Error::Fetch(format!(
            "no peer sent a valid tree for {cid} ({})",
            reasons.join("; ")
        )))
    }

    /// Opens `.partial-<cid>` at the blob's length and finds the groups already in it.
    async fn open_partial(
        &self,
        cid: &Cid,
        tree: &Tree,
    ) -> Result<(Arc<File>, BTreeSet<u64>), Error> {
        let path = self.store.partial_path(cid);
        let tree = tree.clone();
        tokio::task::spawn_blocking(move || {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|source| io_error(&path, source))?;
            let on_disk = file
                .metadata()
                .map_err(|source| io_error(&path, source))?
                .len();
            let mut present = BTreeSet::new();
            if on_disk == tree.len() {
                let mut buffer = vec![0u8; GROUP as usize];
                for group in 0..tree.groups() {
                    let (offset, size) = tree.range(group);
                    let part = &mut buffer[..size as usize];
                    if file.read_exact_at(part, offset).is_ok() && tree.verify(group, part) {
                        present.insert(group);
                    }
                }
            } else {
                file.set_len(tree.len())
                    .map_err(|source| io_error(&path, source))?;
            }
            Ok((Arc::new(file), present))
        })
        .await
        .map_err(|err| Error::Fetch(err.to_string()))?
    }
}

fn caught_lying(stats: &FetchStats, peer: &Peer, cid: &Cid, what: &str) {
    peer.liar.store(true, Ordering::Relaxed);
    stats.liars.lock().expect("liars").insert(peer.url.clone());
    tracing::warn!(
        target: "agora::store",
        peer = %peer.url,
        %cid,
        what,
        "peer sent bytes that do not match the CID; not asking it again"
    );
}

/// GETs `url`, optionally the byte range `(offset, len)`, reading at most `limit` bytes.
async fn get_bounded(
    client: &reqwest::Client,
    url: &str,
    range: Option<(u64, u64)>,
    limit: usize,
) -> Result<Vec<u8>, String> {
    let mut request = client.get(url);
    if let Some((offset, len)) = range {
        request = request.header(
            reqwest::header::RANGE,
            format!("bytes={offset}-{}", offset + len - 1),
        );
    }
    let mut response = request.send().await.map_err(|err| err.to_string())?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("HTTP {status}"));
    }
    if let Some((offset, _)) = range {
        // A server that ignores the range sends the whole blob: only right for offset 0.
        if status != reqwest::StatusCode::PARTIAL_CONTENT && offset != 0 {
            return Err(format!("HTTP {status} instead of 206 for a range"));
        }
    }
    let mut body = Vec::with_capacity(limit.min(GROUP as usize));
    while let Some(chunk) = response.chunk().await.map_err(|err| err.to_string())? {
        if body.len() + chunk.len() > limit {
            return Err(format!("body longer than {limit} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// One worker: takes groups off the queue and fetches them from `peer` until the queue is
/// empty or the peer is dropped.
async fn work(client: reqwest::Client, job: Arc<Job>, peer: Arc<Peer>, stats: Arc<FetchStats>) {
    let url = format!("{}/blobs/{}", peer.url, job.cid);
    while peer.usable() {
        let Some(group) = job.queue.lock().expect("queue").pop_front() else {
            return;
        };
        let (offset, len) = job.tree.range(group);
        let bytes = match get_bounded(&client, &url, Some((offset, len)), len as usize).await {
            Ok(bytes) if bytes.len() as u64 == len => bytes,
            Ok(bytes) => {
                failed(
                    &job,
                    &peer,
                    &stats,
                    group,
                    &format!("{} of {len} bytes", bytes.len()),
                );
                continue;
            }
            Err(reason) => {
                failed(&job, &peer, &stats, group, &reason);
                continue;
            }
        };
        let checked = {
            let job = Arc::clone(&job);
            tokio::task::spawn_blocking(move || {
                if !job.tree.verify(group, &bytes) {
                    return Ok::<bool, std::io::Error>(false);
                }
                job.file.write_all_at(&bytes, offset)?;
                start_writeback(&job.file, offset, bytes.len() as u64);
                Ok(true)
            })
            .await
        };
        match checked {
            Ok(Ok(true)) => {
                peer.failures.store(0, Ordering::Relaxed);
                peer.verified.fetch_add(len, Ordering::Relaxed);
                stats.verified_bytes.fetch_add(len, Ordering::Relaxed);
                job.done_bytes.fetch_add(len, Ordering::Relaxed);
                job.done_groups.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Ok(false)) => {
                stats.rejected_groups.fetch_add(1, Ordering::Relaxed);
                job.queue.lock().expect("queue").push_back(group);
                caught_lying(&stats, &peer, &job.cid, &format!("group {group}"));
                return;
            }
            Ok(Err(err)) => {
                tracing::warn!(target: "agora::store", cid = %job.cid, error = %err, "writing a fetched group failed");
                job.queue.lock().expect("queue").push_back(group);
                peer.dropped.store(true, Ordering::Relaxed);
                return;
            }
            Err(err) => {
                tracing::warn!(target: "agora::store", error = %err, "verify task failed");
                job.queue.lock().expect("queue").push_back(group);
                return;
            }
        }
    }
}

/// Starts writing a verified group back to disk now, without waiting, so the fsync before the
/// final rename has little left to do (it overlaps the rest of the download).
fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: `sync_file_range` only reads its integer arguments; the descriptor is open for
    // as long as `file` is borrowed. A failure only means the final fsync does all the work.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

/// A request to `peer` for `group` failed: the group goes back; the peer is dropped after
/// [`MAX_PEER_FAILURES`] in a row.
fn failed(job: &Job, peer: &Peer, stats: &FetchStats, group: u64, reason: &str) {
    stats.peer_failures.fetch_add(1, Ordering::Relaxed);
    job.queue.lock().expect("queue").push_back(group);
    let failures = peer.failures.fetch_add(1, Ordering::Relaxed) + 1;
    tracing::debug!(target: "agora::store", peer = %peer.url, cid = %job.cid, group, reason, failures, "range request failed");
    if failures >= MAX_PEER_FAILURES && !peer.dropped.swap(true, Ordering::Relaxed) {
        tracing::warn!(target: "agora::store", peer = %peer.url, cid = %job.cid, reason, "peer dropped from this fetch after repeated failures");
    }
}
