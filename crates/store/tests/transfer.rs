//! Fetching from real HTTP peers on loopback: verified, parallel, resumable, liars caught.

use std::{collections::BTreeSet, time::Duration};

use agora_store::{fetch::Fetcher, tree::GROUP, BlobStore, Error};
use agora_types::Cid;

use crate::peers::{self, Behaviour};

/// A store in a fresh folder holding `bytes`; returns it, its CID and the folder.
fn seeded(bytes: &[u8]) -> (BlobStore, Cid, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    let cid = store
        .import_reader(&mut &bytes[..], None, bytes.len() as u64, &mut |_, _| {})
        .unwrap();
    (store, cid, dir)
}

fn empty_store() -> (BlobStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (BlobStore::open(dir.path()).unwrap(), dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_arrives_whole_from_an_honest_a_lying_and_a_dying_peer() {
    let bytes = peers::random_blob(12 * GROUP as usize + 4321, 1);
    let (source, cid, _dir) = seeded(&bytes);
    let honest = peers::spawn(
        source.clone(),
        Behaviour::Honest {
            delay: Duration::from_millis(20),
        },
    )
    .await;
    let liar = peers::spawn(source.clone(), Behaviour::CorruptRanges).await;
    let dying = peers::spawn(source.clone(), Behaviour::DiesAfter(2)).await;

    let (store, _target) = empty_store();
    let fetcher = Fetcher::new(store.clone());
    let mut seen = Vec::new();
    let report = fetcher
        .fetch(
            cid,
            &[liar.clone(), dying.clone(), honest.clone()],
            &mut |done, total| seen.push((done, total)),
        )
        .await
        .unwrap();

    assert_eq!(std::fs::read(store.path(&cid)).unwrap(), bytes);
    assert_eq!(report.liars, vec![liar.clone()]);
    assert_eq!(report.failed, vec![dying.clone()]);
    assert_eq!(
        report.from_peers[&liar], 0,
        "nothing the liar sent was kept"
    );
    assert_eq!(
        report.from_peers[&dying],
        2 * GROUP,
        "the dying peer's first two groups count"
    );
    assert_eq!(
        report.from_peers.values().sum::<u64>(),
        bytes.len() as u64,
        "every byte came verified from someone"
    );
    assert_eq!(seen.last(), Some(&(bytes.len() as u64, bytes.len() as u64)));
    let stats = fetcher.stats();
    assert_eq!(stats.liars(), BTreeSet::from([liar.clone()]));
    assert!(
        stats.render().contains("agora_blob_fetch_liars 1"),
        "{}",
        stats.render()
    );

    // The liar is not asked again: a second fetch with only the liar has no peer left.
    store.remove(&cid).unwrap();
    let err = fetcher
        .fetch(cid, &[liar], &mut |_, _| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no peer"), "{err}");
    assert!(!store.has(&cid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tree_that_is_not_the_cids_marks_the_peer_a_liar() {
    let bytes = peers::random_blob(3 * GROUP as usize + 10, 2);
    let (source, cid, _dir) = seeded(&bytes);
    let liar = peers::spawn(source.clone(), Behaviour::WrongTree).await;
    let honest = peers::spawn_honest(source).await;
    let (store, _target) = empty_store();
    let fetcher = Fetcher::new(store.clone());
    let report = fetcher
        .fetch(cid, &[liar.clone(), honest], &mut |_, _| {})
        .await
        .unwrap();
    assert_eq!(report.liars, vec![liar]);
    assert_eq!(std::fs::read(store.path(&cid)).unwrap(), bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_fetch_resumes_with_what_it_had() {
    let bytes = peers::random_blob(6 * GROUP as usize + 1, 3);
    let (source, cid, _dir) = seeded(&bytes);
    // The first fetch gets three groups from a peer that then dies, and fails.
    let dying = peers::spawn(source.clone(), Behaviour::DiesAfter(3)).await;
    let (store, _target) = empty_store();
    let err = Fetcher::new(store.clone())
        .fetch(cid, &[dying], &mut |_, _| {})
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Fetch(_)), "{err}");
    assert!(!store.has(&cid), "nothing unverified is in place");
    // A new fetcher (as after a restart) keeps those three groups and fetches the rest.
    let honest = peers::spawn_honest(source).await;
    let report = Fetcher::new(store.clone())
        .fetch(cid, std::slice::from_ref(&honest), &mut |_, _| {})
        .await
        .unwrap();
    assert_eq!(report.resumed_bytes, 3 * GROUP);
    assert_eq!(report.from_peers[&honest], bytes.len() as u64 - 3 * GROUP);
    assert_eq!(std::fs::read(store.path(&cid)).unwrap(), bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_that_rotted_on_disk_is_fetched_again() {
    let bytes = peers::random_blob(2 * GROUP as usize + 7, 4);
    let (source, cid, _dir) = seeded(&bytes);
    let honest = peers::spawn_honest(source).await;
    let (store, _target) = empty_store();
    let fetcher = Fetcher::new(store.clone());
    assert!(
        !fetcher
            .fetch(cid, std::slice::from_ref(&honest), &mut |_, _| {})
            .await
            .unwrap()
            .present
    );
    let again = fetcher
        .fetch(cid, std::slice::from_ref(&honest), &mut |_, _| {})
        .await
        .unwrap();
    assert!(again.present, "an intact blob is not fetched twice");

    let mut rotten = bytes.clone();
    rotten[GROUP as usize + 3] ^= 0x10;
    std::fs::write(store.path(&cid), &rotten).unwrap();
    let report = fetcher.fetch(cid, &[honest], &mut |_, _| {}).await.unwrap();
    assert!(!report.present);
    assert_eq!(std::fs::read(store.path(&cid)).unwrap(), bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_serves_a_rotten_blob_as_missing_and_bad_ids_get_400() {
    let bytes = peers::random_blob(GROUP as usize + 1, 5);
    let (source, cid, _dir) = seeded(&bytes);
    let url = peers::spawn_honest(source.clone()).await;
    let client = reqwest::Client::new();
    let status = |path: String| {
        let client = client.clone();
        async move { client.get(path).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status(format!("{url}/blobs/not-a-cid")).await, 400);
    assert_eq!(
        status(format!("{url}/blobs/{}", Cid::of(b"unknown"))).await,
        404
    );
    assert_eq!(
        status(format!("{url}/blobs/{}/tree", Cid::of(b"unknown"))).await,
        404
    );
    let range = client
        .get(format!("{url}/blobs/{cid}"))
        .header("range", format!("bytes={}-", bytes.len()))
        .send()
        .await
        .unwrap();
    assert_eq!(range.status().as_u16(), 416);

    let mut rotten = bytes.clone();
    rotten[0] ^= 1;
    std::fs::write(source.path(&cid), &rotten).unwrap();
    assert_eq!(status(format!("{url}/blobs/{cid}/tree")).await, 404);
    assert!(!source.has(&cid), "the rotten blob was removed");

    let (store, _target) = empty_store();
    let err = Fetcher::new(store)
        .fetch(cid, &[url], &mut |_, _| {})
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("no peer sent a valid tree"),
        "{err}"
    );
}

#[test]
fn gc_keeps_only_what_is_referenced() {
    let (store, _dir) = empty_store();
    let import = |bytes: &[u8]| {
        store
            .import_reader(&mut &bytes[..], None, bytes.len() as u64, &mut |_, _| {})
            .unwrap()
    };
    let model = import(b"an active model");
    let transcript = import(b"a pinned transcript");
    let old = import(b"a retired model");
    let removed = store.gc(&BTreeSet::from([model, transcript])).unwrap();
    assert_eq!(removed, vec![old]);
    assert_eq!(store.list().unwrap(), {
        let mut kept = vec![model, transcript];
        kept.sort();
        kept
    });
}
