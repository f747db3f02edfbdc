//! Serving blobs to peers: `GET /blobs/{cid}` (with HTTP ranges) and `GET /blobs/{cid}/tree`.
//!
//! Every role that keeps a store (provider, verifier, node, gateway) merges [`routes`] into its
//! own router, so any of them can be a peer for a fetch.
//!
//! The tree of a blob is computed on first request (one read of the blob) and kept in memory;
//! computing it also rehashes the blob, so a blob that rotted on disk is found then, removed,
//! and answered with 404 rather than served.

use std::{
    collections::HashMap,
    io::SeekFrom,
    sync::{Arc, Mutex},
};

use agora_types::Cid;
use axum::{
    body::Body,
    extract::{Path, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::{tree::Tree, BlobStore, Error};

/// Trees kept in memory at most (each is 32 bytes per MiB of blob).
const MAX_CACHED_TREES: usize = 256;

/// Bytes read from disk per body frame.
const FRAME: usize = 256 * 1024;

/// The state behind [`routes`].
pub struct BlobServer {
    store: BlobStore,
    trees: Mutex<HashMap<Cid, Arc<Tree>>>,
}

impl BlobServer {
    /// Serves the blobs in `store`.
    pub fn new(store: BlobStore) -> Arc<Self> {
        Arc::new(BlobServer {
            store,
            trees: Mutex::new(HashMap::new()),
        })
    }

    /// The tree of a present blob, computed once and checked against its CID.
    pub async fn tree(&self, cid: &Cid) -> Result<Arc<Tree>, Error> {
        if let Some(tree) = self.trees.lock().expect("tree cache").get(cid) {
            return Ok(Arc::clone(tree));
        }
        let store = self.store.clone();
        let id = *cid;
        let tree = tokio::task::spawn_blocking(move || store.tree(&id))
            .await
            .map_err(|err| Error::Fetch(err.to_string()))??;
        let tree = Arc::new(tree);
        let mut trees = self.trees.lock().expect("tree cache");
        if trees.len() >= MAX_CACHED_TREES {
            trees.clear();
        }
        trees.insert(*cid, Arc::clone(&tree));
        Ok(tree)
    }

    /// Forgets the cached tree of `cid` (after the blob was removed or replaced).
    pub fn forget(&self, cid: &Cid) {
        self.trees.lock().expect("tree cache").remove(cid);
    }
}

/// `GET /blobs/{cid}` and `GET /blobs/{cid}/tree` over `server`.
pub fn routes(server: Arc<BlobServer>) -> Router {
    Router::new()
        .route("/blobs/{cid}", get(blob))
        .route("/blobs/{cid}/tree", get(tree))
        .with_state(server)
}

fn plain(status: StatusCode, text: String) -> Response {
    (status, text).into_response()
}

fn parse_cid(text: &str) -> Result<Cid, String> {
    text.parse().map_err(|err| format!("not a CID: {err}"))
}

fn store_error(cid: &Cid, err: Error) -> Response {
    match err {
        Error::Missing(_) => plain(StatusCode::NOT_FOUND, format!("no blob {cid}")),
        Error::Mismatch { .. } => plain(
            StatusCode::NOT_FOUND,
            format!("blob {cid} was corrupted on disk and removed"),
        ),
        other => {
            tracing::warn!(target: "agora::store", %cid, error = %other, "serving blob failed");
            plain(StatusCode::INTERNAL_SERVER_ERROR, "store error".into())
        }
    }
}

async fn tree(State(server): State<Arc<BlobServer>>, Path(cid): Path<String>) -> Response {
    let cid = match parse_cid(&cid) {
        Ok(cid) => cid,
        Err(reason) => return plain(StatusCode::BAD_REQUEST, reason),
    };
    match server.tree(&cid).await {
        Ok(tree) => (
            [(header::CONTENT_TYPE, "application/octet-stream")],
            tree.encode(),
        )
            .into_response(),
        Err(err) => store_error(&cid, err),
    }
}

/// A single byte range `start..end` (end exclusive) of a blob of `len` bytes, from a `Range`
/// header; `Ok(None)` when there is no header, `Err` when it cannot be satisfied.
fn requested_range(headers: &HeaderMap, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(value) = headers.get(header::RANGE) else {
        return Ok(None);
    };
    let spec = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().strip_prefix("bytes="))
        .ok_or(())?;
    if spec.contains(',') {
        return Err(());
    }
    let (first, last) = spec.split_once('-').ok_or(())?;
    let (start, end) = match (first.trim(), last.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().map_err(|_| ())?;
            (len.saturating_sub(n), len)
        }
        (first, "") => (first.parse().map_err(|_| ())?, len),
        (first, last) => {
            let first: u64 = first.parse().map_err(|_| ())?;
            let last: u64 = last.parse().map_err(|_| ())?;
            if last < first {
                return Err(());
            }
            (first, last.saturating_add(1).min(len))
        }
    };
    if start >= end {
        return Err(());
    }
    Ok(Some((start, end)))
}

async fn blob(
    State(server): State<Arc<BlobServer>>,
    Path(cid): Path<String>,
    headers: HeaderMap,
) -> Response {
    let cid = match parse_cid(&cid) {
        Ok(cid) => cid,
        Err(reason) => return plain(StatusCode::BAD_REQUEST, reason),
    };
    let path = server.store.path(&cid);
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return store_error(&cid, Error::Missing(cid))
        }
        Err(source) => return store_error(&cid, Error::Io { path, source }),
    };
    let len = match file.metadata().await {
        Ok(meta) => meta.len(),
        Err(source) => return store_error(&cid, Error::Io { path, source }),
    };
    let (status, start, end) = match requested_range(&headers, len) {
        Ok(None) => (StatusCode::OK, 0, len),
        Ok(Some((start, end))) => (StatusCode::PARTIAL_CONTENT, start, end),
        Err(()) => {
            return (
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{len}"))],
            )
                .into_response()
        }
    };
    if start > 0 {
        if let Err(source) = file.seek(SeekFrom::Start(start)).await {
            return store_error(&cid, Error::Io { path, source });
        }
    }
    let body = async_stream::stream! {
        let mut left = end - start;
        let mut buffer = vec![0u8; FRAME];
        while left > 0 {
            let want = (left as usize).min(FRAME);
            match file.read(&mut buffer[..want]).await {
                Ok(0) => {
                    yield Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
                    break;
                }
                Ok(n) => {
                    left -= n as u64;
                    yield Ok(axum::body::Bytes::copy_from_slice(&buffer[..n]));
                }
                Err(err) => {
                    yield Err(err);
                    break;
                }
            }
        }
    };
    let mut response = Response::new(Body::from_stream(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    if status == StatusCode::PARTIAL_CONTENT {
        if let Ok(value) = HeaderValue::from_str(&format!("bytes {start}-{}/{len}", end - 1)) {
            headers.insert(header::CONTENT_RANGE, value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(value: &str, len: u64) -> Result<Option<(u64, u64)>, ()> {
        let mut headers = HeaderMap::new();
        headers.insert(header::RANGE, HeaderValue::from_str(value).unwrap());
        requested_range(&headers, len)
    }

    #[test]
    fn ranges_parse_like_http_says() {
        assert_eq!(requested_range(&HeaderMap::new(), 10), Ok(None));
        assert_eq!(range("bytes=0-3", 10), Ok(Some((0, 4))));
        assert_eq!(range("bytes=4-", 10), Ok(Some((4, 10))));
        assert_eq!(range("bytes=-3", 10), Ok(Some((7, 10))));
        assert_eq!(range("bytes=5-100", 10), Ok(Some((5, 10))));
        assert_eq!(range("bytes=10-", 10), Err(()));
        assert_eq!(range("bytes=4-2", 10), Err(()));
        assert_eq!(range("bytes=0-1,3-4", 10), Err(()));
        assert_eq!(range("items=0-1", 10), Err(()));
        assert_eq!(range("bytes=a-b", 10), Err(()));
    }
}
