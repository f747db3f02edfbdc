//! One module per subcommand: flags in, a role's `Config` out.

pub mod devnet;
pub mod gateway;
pub mod genesis;
pub mod gov;
pub mod model;
pub mod node;
pub mod policy;
pub mod provider;
pub mod receipt;
pub mod verifier;
pub mod wallet;

use std::path::PathBuf;

use clap::Args;

/// Where a role keeps its data.
#[derive(Args, Clone, Debug)]
pub struct DataDirArgs {
    /// Data folder (default `~/.agora`).
    #[arg(long, env = "AGORA_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

impl DataDirArgs {
    /// The data folder, defaulting to `~/.agora`.
    pub fn path(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| {
            home::home_dir()
                .unwrap_or_else(|| PathBuf::from("."))
                .join(".agora")
        })
    }

    /// The blob store under the data folder.
    pub fn blobs(&self) -> anyhow::Result<agora_store::BlobStore> {
        Ok(agora_store::BlobStore::open(self.path().join("blobs"))?)
    }
}

/// A progress bar for long byte-counting work, drawn on stderr.
pub fn progress_bar(label: &'static str) -> impl FnMut(u64, u64) {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:>12} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(label);
    move |done, total| {
        if total > 0 && bar.length() != Some(total) {
            bar.set_length(total);
        }
        bar.set_position(done);
        if total > 0 && done >= total {
            bar.finish_and_clear();
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}
