//! Integration tests of the blob store on a real folder.

mod peers;
mod transfer;

use std::io::Cursor;

use agora_store::{BlobStore, Error};
use agora_types::Cid;

fn no_progress() -> impl FnMut(u64, u64) {
    |_, _| {}
}

#[test]
fn import_stores_blob_under_its_cid() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path().join("blobs")).unwrap();
    let data = vec![7u8; 3 << 20];
    let cid = store
        .import_reader(
            &mut Cursor::new(&data),
            None,
            data.len() as u64,
            &mut no_progress(),
        )
        .unwrap();
    assert_eq!(cid, Cid::of(&data));
    assert!(store.has(&cid));
    assert_eq!(std::fs::read(store.path(&cid)).unwrap(), data);
    store.verify(&cid, &mut no_progress()).unwrap();
}

#[test]
fn import_with_wrong_expected_cid_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    let expected = Cid::of(b"what we asked for");
    let err = store
        .import_reader(
            &mut Cursor::new(b"something else"),
            Some(expected),
            0,
            &mut no_progress(),
        )
        .unwrap_err();
    assert!(matches!(err, Error::Mismatch { .. }), "{err}");
    assert!(!store.has(&expected));
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no temp file left"
    );
}

#[test]
fn verify_detects_and_removes_a_corrupted_blob() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    let cid = store
        .import_reader(
            &mut Cursor::new(b"precious bytes"),
            None,
            0,
            &mut no_progress(),
        )
        .unwrap();
    std::fs::write(store.path(&cid), b"precious bytez").unwrap();
    let err = store.verify(&cid, &mut no_progress()).unwrap_err();
    assert!(matches!(err, Error::Mismatch { .. }), "{err}");
    assert!(!store.has(&cid));
    assert!(matches!(store.open_blob(&cid), Err(Error::Missing(_))));
}

#[test]
fn open_removes_abandoned_temporary_files() {
    let dir = tempfile::tempdir().unwrap();
    // No process has this pid (it is above Linux's pid_max).
    std::fs::write(dir.path().join(".tmp-4000000000-0"), b"half a blob").unwrap();
    BlobStore::open(dir.path()).unwrap();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
