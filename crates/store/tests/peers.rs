//! Peers for transfer tests: real HTTP servers on loopback, honest or not.
//!
//! Shared by the store's tests and the `agora model fetch` process test (included there by
//! path), so both exercise the same misbehaviours.

#![allow(dead_code, unreachable_pub)]

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use agora_store::{serve, BlobStore};
use axum::{
    body::Body,
    extract::{Request, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    Router,
};

/// How a test peer behaves.
#[derive(Clone, Copy, Debug)]
pub enum Behaviour {
    /// The real blob routes, each range answered after `delay`.
    Honest {
        /// Wait before each range answer (to make a fetch slow enough to interrupt).
        delay: Duration,
    },
    /// The right tree, but every range has one byte flipped.
    CorruptRanges,
    /// A tree that does not belong to the CID.
    WrongTree,
    /// Answers `n` ranges, then every answer stops halfway and the connection drops.
    DiesAfter(usize),
}

struct Peer {
    behaviour: Behaviour,
    served: Arc<AtomicUsize>,
    honest: Router,
}

/// Starts a peer serving `store` on a free loopback port; returns its base URL.
pub async fn spawn(store: BlobStore, behaviour: Behaviour) -> String {
    spawn_counted(store, behaviour).await.0
}

/// An honest peer that answers at once.
pub async fn spawn_honest(store: BlobStore) -> String {
    spawn(
        store,
        Behaviour::Honest {
            delay: Duration::ZERO,
        },
    )
    .await
}

/// Like [`spawn`], also returning how many ranges the peer has answered so far.
pub async fn spawn_counted(store: BlobStore, behaviour: Behaviour) -> (String, Arc<AtomicUsize>) {
    let honest = serve::routes(serve::BlobServer::new(store));
    let served = Arc::new(AtomicUsize::new(0));
    let peer = Arc::new(Peer {
        behaviour,
        served: Arc::clone(&served),
        honest,
    });
    let app = Router::new().fallback(handle).with_state(peer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, served)
}

async fn handle(State(peer): State<Arc<Peer>>, request: Request) -> Response {
    use tower::ServiceExt as _;
    let is_range = request.headers().contains_key(header::RANGE);
    let is_tree = request.uri().path().ends_with("/tree");
    match peer.behaviour {
        Behaviour::Honest { delay } => {
            if is_range {
                tokio::time::sleep(delay).await;
                peer.served.fetch_add(1, Ordering::Relaxed);
            }
            peer.honest.clone().oneshot(request).await.unwrap()
        }
        Behaviour::WrongTree if is_tree => {
            let cid = request.uri().path().split('/').nth(2).unwrap().to_owned();
            let mut tree = body_of(&peer, &format!("/blobs/{cid}/tree")).await;
            let last = tree.len() - 1;
            tree[last] ^= 0x40;
            (StatusCode::OK, tree).into_response()
        }
        Behaviour::CorruptRanges if is_range => {
            let response = peer.honest.clone().oneshot(request).await.unwrap();
            let (parts, body) = response.into_parts();
            let mut bytes = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap()
                .to_vec();
            let middle = bytes.len() / 2;
            if let Some(byte) = bytes.get_mut(middle) {
                *byte ^= 1;
            }
            Response::from_parts(parts, Body::from(bytes))
        }
        Behaviour::DiesAfter(n) if is_range => {
            if peer.served.fetch_add(1, Ordering::Relaxed) < n {
                return peer.honest.clone().oneshot(request).await.unwrap();
            }
            let response = peer.honest.clone().oneshot(request).await.unwrap();
            let (parts, body) = response.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            let half = bytes.slice(..bytes.len() / 2);
            let stream = async_stream::stream! {
                yield Ok::<_, std::io::Error>(half);
                yield Err(std::io::Error::other("peer died"));
            };
            Response::from_parts(parts, Body::from_stream(stream))
        }
        _ => peer.honest.clone().oneshot(request).await.unwrap(),
    }
}

async fn body_of(peer: &Peer, path: &str) -> Vec<u8> {
    use tower::ServiceExt as _;
    let request = Request::get(path).body(Body::empty()).unwrap();
    let response = peer.honest.clone().oneshot(request).await.unwrap();
    axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec()
}

/// `len` bytes that do not compress or repeat.
pub fn random_blob(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}
