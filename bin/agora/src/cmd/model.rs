//! `agora model`: the local blob store's models.

use std::path::PathBuf;

use clap::Subcommand;

use super::{progress_bar, DataDirArgs};

/// Model commands.
#[derive(Subcommand)]
pub enum Command {
    /// Fetch the default model (SmolLM2-135M-Instruct Q4_1) and check its pinned CID.
    FetchDefault {
        #[command(flatten)]
        data: DataDirArgs,
    },
    /// Hash a GGUF file and store it by its CID.
    Import {
        /// The file to import.
        file: PathBuf,
        #[command(flatten)]
        data: DataDirArgs,
    },
    /// List the blobs in the local store.
    List {
        #[command(flatten)]
        data: DataDirArgs,
    },
}

/// Runs a model command.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::FetchDefault { data } => {
            let store = data.blobs()?;
            let path = agora_store::default_model::ensure(&store, &mut progress_bar("fetch"))?;
            println!("{} {}", agora_store::default_model::CID, path.display());
        }
        Command::Import { file, data } => {
            let store = data.blobs()?;
            let cid = store.import_file(&file, None, &mut progress_bar("import"))?;
            println!("{cid} {}", store.path(&cid).display());
        }
        Command::List { data } => {
            let store = data.blobs()?;
            let mut entries: Vec<_> = std::fs::read_dir(store.root())?
                .flatten()
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .collect();
            entries.sort_by_key(|e| e.file_name());
            for entry in entries {
                let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                println!("{} {size}", entry.file_name().to_string_lossy());
            }
        }
    }
    Ok(())
}
