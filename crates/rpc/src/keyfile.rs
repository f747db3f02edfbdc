//! Key files: one ed25519 secret key per JSON file, readable by its owner only (0600).
//!
//! ```json
//! {"address": "agora1…", "secret_key": "<64 hex chars>"}
//! ```

use std::{io::Write, path::Path};

use agora_types::Keypair;
use serde::{Deserialize, Serialize};

/// Why a key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a key file.
    #[error("key file {path}: {reason}")]
    Format {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    address: String,
    secret_key: String,
}

/// Reads the keypair in `path`.
pub fn load(path: &Path) -> Result<Keypair, Error> {
    let display = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: display.clone(),
        source,
    })?;
    let format = |reason: String| Error::Format {
        path: display.clone(),
        reason,
    };
    let file: KeyFile = serde_json::from_str(&text).map_err(|err| format(err.to_string()))?;
    let bytes = hex::decode(file.secret_key.trim()).map_err(|err| format(err.to_string()))?;
    let secret: [u8; 32] = bytes
        .try_into()
        .map_err(|_| format("secret_key is not 32 bytes".to_owned()))?;
    let keypair = Keypair::from_bytes(&secret);
    if keypair.account_id().to_string() != file.address {
        return Err(format("address does not match secret_key".to_owned()));
    }
    Ok(keypair)
}

/// Writes `keypair` to `path` with mode 0600, refusing to overwrite an existing file.
pub fn save(path: &Path, keypair: &Keypair) -> Result<(), Error> {
    let display = path.display().to_string();
    let io = |source| Error::Io {
        path: display.clone(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let file = KeyFile {
        address: keypair.account_id().to_string(),
        secret_key: hex::encode(keypair.to_bytes()),
    };
    let text = serde_json::to_string_pretty(&file).map_err(|err| Error::Format {
        path: display.clone(),
        reason: err.to_string(),
    })?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut handle = options.open(path).map_err(io)?;
    handle.write_all(text.as_bytes()).map_err(io)?;
    handle.sync_all().map_err(io)?;
    Ok(())
}
