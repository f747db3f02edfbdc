//! Receipts in JSON: every field readable, plus the signed canonical bytes.

use agora_types::{encoding, Receipt, SignedReceipt};
use serde::{Deserialize, Serialize};

/// Why a JSON receipt was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReceiptError {
    /// `encoded` is not hex of a borsh `SignedReceipt`.
    #[error("the receipt's encoded bytes do not decode: {0}")]
    Decode(String),
    /// The readable fields disagree with the signed bytes.
    #[error("the receipt's fields do not match its signed bytes")]
    Mismatch,
    /// The provider's signature does not verify.
    #[error("the receipt's signature does not verify")]
    BadSignature,
}

/// A signed receipt as JSON. `encoded` (hex of the borsh `SignedReceipt`) is authoritative;
/// the other fields repeat it for people and scripts.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct ReceiptJson {
    /// Receipt id (hex BLAKE3 of the unsigned receipt's encoding).
    pub id: String,
    /// Chain id.
    pub chain_id: String,
    /// Provider account (`agora1…`).
    pub provider: String,
    /// Hex BLAKE3 of the request body the provider served.
    pub request_hash: String,
    /// Hex BLAKE3 of the answer (see `agora_types::receipt::response_hash`).
    pub response_hash: String,
    /// Model CID.
    pub model: String,
    /// Prompt tokens.
    pub prompt_tokens: u32,
    /// Completion tokens.
    pub completion_tokens: u32,
    /// Temperature in thousandths.
    pub temperature_milli: u32,
    /// Top-p in thousandths.
    pub top_p_milli: u32,
    /// Top-k.
    pub top_k: u32,
    /// Sampler seed.
    pub seed: u64,
    /// Price per million prompt tokens (base units).
    pub price_in: String,
    /// Price per million completion tokens (base units).
    pub price_out: String,
    /// What the request cost (base units).
    pub charge: String,
    /// Payer account.
    pub payer: String,
    /// Cumulative voucher amount that covered the request (base units).
    pub voucher_amount: String,
    /// Milliseconds since the Unix epoch, provider's clock.
    pub timestamp_ms: u64,
    /// Hex of the provider's signature.
    pub signature: String,
    /// Hex of the borsh `SignedReceipt`.
    pub encoded: String,
}

impl ReceiptJson {
    /// The JSON form of `signed`.
    pub fn from_signed(signed: &SignedReceipt) -> Self {
        let r = &signed.receipt;
        ReceiptJson {
            id: r.id().to_hex(),
            chain_id: r.chain_id.as_str().to_owned(),
            provider: r.provider.to_string(),
            request_hash: r.request_hash.to_hex(),
            response_hash: r.response_hash.to_hex(),
            model: r.model.to_string(),
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
            temperature_milli: r.sampling.temperature_milli,
            top_p_milli: r.sampling.top_p_milli,
            top_k: r.sampling.top_k,
            seed: r.sampling.seed,
            price_in: r.price_in.to_string(),
            price_out: r.price_out.to_string(),
            charge: r.charge().map(|c| c.to_string()).unwrap_or_default(),
            payer: r.payer.to_string(),
            voucher_amount: r.voucher_amount.to_string(),
            timestamp_ms: r.timestamp_ms,
            signature: hex::encode(signed.signature.0),
            encoded: hex::encode(encoding::encode(signed)),
        }
    }

    /// Decodes `encoded`, checks that the readable fields match it and that the provider's
    /// signature verifies.
    pub fn to_verified(&self) -> Result<SignedReceipt, ReceiptError> {
        let bytes = hex::decode(&self.encoded).map_err(|e| ReceiptError::Decode(e.to_string()))?;
        let signed: SignedReceipt =
            encoding::decode(&bytes).map_err(|e| ReceiptError::Decode(e.to_string()))?;
        if ReceiptJson::from_signed(&signed) != *self {
            return Err(ReceiptError::Mismatch);
        }
        signed.verify().map_err(|_| ReceiptError::BadSignature)?;
        Ok(signed)
    }

    /// The unsigned receipt inside `encoded`, unchecked.
    pub fn receipt(&self) -> Option<Receipt> {
        let bytes = hex::decode(&self.encoded).ok()?;
        encoding::decode::<SignedReceipt>(&bytes)
            .ok()
            .map(|s| s.receipt)
    }
}
