//! Models as blobs between processes: `agora model fetch` from three real peers (one honest,
//! one lying, one dying) killed and restarted; and the governed model lifecycle.

use std::{
    process::Stdio,
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use agora_store::{tree::GROUP, BlobStore};
use serde_json::Value;

use crate::{
    network::{agora, signal, wait_exit},
    peers::{self, Behaviour},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_fetch_resumes_and_arrives_verified_despite_a_liar_and_a_dying_peer() {
    let bytes = peers::random_blob(48 * GROUP as usize + 999, 7);
    let source_dir = tempfile::tempdir().unwrap();
    let source = BlobStore::open(source_dir.path()).unwrap();
    let cid = source
        .import_reader(&mut &bytes[..], None, bytes.len() as u64, &mut |_, _| {})
        .unwrap();
    // Slow enough (50 ms a range) that the fetch is still running when it is killed.
    let (honest, served) = peers::spawn_counted(
        source.clone(),
        Behaviour::Honest {
            delay: Duration::from_millis(50),
        },
    )
    .await;
    let liar = peers::spawn(source.clone(), Behaviour::CorruptRanges).await;
    let dying = peers::spawn(source.clone(), Behaviour::DiesAfter(3)).await;

    let data = tempfile::tempdir().unwrap();
    let fetch = || {
        let mut command = agora();
        command
            .args([
                "model",
                "fetch",
                &cid.to_string(),
                "--no-discovery",
                "--json",
            ])
            .args(["--peer", &liar, "--peer", &dying, "--peer", &honest])
            .arg("--data-dir")
            .arg(data.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        command
    };

    // First run: SIGKILLed once the honest peer has answered some ranges.
    let mut first = fetch().spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while served.load(Ordering::Relaxed) < 8 {
        assert!(Instant::now() < deadline, "the fetch made no progress");
        assert!(
            first.try_wait().unwrap().is_none(),
            "the fetch ended before it was killed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    signal(&first, "-KILL");
    wait_exit(&mut first, Duration::from_secs(10));
    let store = BlobStore::open(data.path().join("blobs")).unwrap();
    assert!(
        !store.has(&cid),
        "nothing unverified is in place after a kill"
    );

    // Second run: resumes, and arrives whole.
    let mut second = fetch();
    let output = tokio::task::spawn_blocking(move || second.output().unwrap())
        .await
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(std::fs::read(store.path(&cid)).unwrap(), bytes);
    let resumed = report["resumed_bytes"].as_u64().unwrap();
    assert!(
        resumed >= GROUP,
        "the restart kept what the first run verified: {report}"
    );
    let fetched: u64 = report["from_peers"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(resumed + fetched, bytes.len() as u64, "{report}");
    assert_eq!(report["liars"], serde_json::json!([liar]), "{report}");
    assert_eq!(report["from_peers"][&liar], 0, "{report}");
    assert_eq!(report["failed"], serde_json::json!([dying]), "{report}");
}
