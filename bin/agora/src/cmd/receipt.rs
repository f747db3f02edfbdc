//! `agora receipt verify FILE`: check a receipt's signature, inclusion proof and on-chain root.

use std::path::PathBuf;

use agora_types::{encoding, merkle, Hash, MerkleProof};
use clap::Subcommand;
use serde_json::Value;

/// Receipt commands.
#[derive(Subcommand, Clone, Debug)]
pub enum Command {
    /// Verify a receipt as served by a gateway's `GET /v1/receipts/{id}` (or a bare receipt).
    Verify {
        /// The JSON file.
        file: PathBuf,
        /// JSON-RPC URL of a ledger node, for the on-chain root.
        #[arg(long, env = "AGORA_RPC", default_value = "http://127.0.0.1:26657")]
        rpc: String,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a receipt command.
pub fn run(command: Command) -> anyhow::Result<()> {
    let Command::Verify { file, rpc, json } = command;
    let document: Value = serde_json::from_slice(&std::fs::read(&file)?)?;
    let receipt_value = document.get("receipt").cloned().unwrap_or(document.clone());
    let receipt: agora_api::ReceiptJson = serde_json::from_value(receipt_value)?;
    let signed = receipt
        .to_verified()
        .map_err(|err| anyhow::anyhow!("receipt {}: {err}", receipt.id))?;
    let id = signed.receipt.id();
    // The transcript, when present, must hash to the receipt.
    if let Some(transcript) = document.get("transcript") {
        let request = transcript["request"].as_str().unwrap_or_default();
        anyhow::ensure!(
            Hash::of(request.as_bytes()) == signed.receipt.request_hash,
            "the transcript's request does not hash to the receipt's request_hash"
        );
        let tokens: Vec<u32> = serde_json::from_value(transcript["output_tokens"].clone())?;
        let logits: Vec<i32> = match transcript.get("output_logits") {
            Some(logits) => serde_json::from_value(logits.clone())?,
            None => Vec::new(),
        };
        let text = transcript["output_text"].as_str().unwrap_or_default();
        anyhow::ensure!(
            agora_types::receipt::response_hash(&tokens, &logits, text)
                == signed.receipt.response_hash,
            "the transcript's output does not hash to the receipt's response_hash"
        );
    }
    let inclusion = document
        .get("inclusion")
        .filter(|v| !v.is_null())
        .ok_or_else(|| anyhow::anyhow!("signature valid, but the file has no inclusion proof yet (the provider commits its receipts at the end of each epoch)"))?;
    let epoch = inclusion["epoch"]
        .as_u64()
        .ok_or_else(|| anyhow::anyhow!("inclusion.epoch missing"))?;
    let root = Hash::from_hex(inclusion["root"].as_str().unwrap_or_default())
        .ok_or_else(|| anyhow::anyhow!("inclusion.root is not hex"))?;
    let proof: MerkleProof = encoding::decode_bounded(
        &hex::decode(inclusion["proof"].as_str().unwrap_or_default())?,
        4096,
    )?;
    anyhow::ensure!(
        merkle::verify(&root, &merkle::leaf_hash(&id.0), &proof),
        "the inclusion proof does not lead to the stated root"
    );
    let runtime = tokio::runtime::Runtime::new()?;
    let commitment = runtime.block_on(async {
        let client = agora_rpc::Client::new(&rpc)?;
        client
            .receipt_commitment(&signed.receipt.provider, epoch)
            .await
    })?;
    let commitment = commitment.ok_or_else(|| {
        anyhow::anyhow!(
            "provider {} has committed no receipts for epoch {epoch} on the ledger",
            signed.receipt.provider
        )
    })?;
    anyhow::ensure!(
        commitment.root == root.to_hex(),
        "the on-chain root for epoch {epoch} ({}) differs from the proof's ({})",
        commitment.root,
        root.to_hex()
    );
    if json {
        println!(
            "{}",
            serde_json::json!({"valid": true, "id": id.to_hex(), "provider": signed.receipt.provider.to_string(), "epoch": epoch, "root": root.to_hex(), "height": commitment.height})
        );
    } else {
        println!("receipt {} is valid", id.to_hex());
        println!("  signed by provider {}", signed.receipt.provider);
        println!("  model {}", signed.receipt.model);
        println!(
            "  included in epoch {epoch} root {} committed on the ledger at height {}",
            root.to_hex(),
            commitment.height
        );
    }
    Ok(())
}
