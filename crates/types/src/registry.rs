//! Registry records carried in transactions and genesis: models and providers' offers.

use borsh::{BorshDeserialize, BorshSerialize};

use crate::{
    bounded::{BoundedString, BoundedVec},
    Amount, Cid,
};

/// Most models one provider may list.
pub const MAX_PROVIDER_MODELS: usize = 32;
/// Longest provider endpoint URL, in bytes.
pub const MAX_ENDPOINT_LEN: usize = 256;
/// Longest short label (name, region, architecture, quantization, licence), in bytes.
pub const MAX_LABEL_LEN: usize = 64;
/// Longest hardware description, in bytes.
pub const MAX_HARDWARE_LEN: usize = 128;

/// A model as governance describes it.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ModelInfo {
    /// Content id of the model file.
    pub cid: Cid,
    /// Human name, e.g. `SmolLM2-135M-Instruct`.
    pub name: BoundedString<MAX_LABEL_LEN>,
    /// Architecture, e.g. `llama`.
    pub architecture: BoundedString<MAX_LABEL_LEN>,
    /// Quantization, e.g. `Q4_1`.
    pub quantization: BoundedString<MAX_LABEL_LEN>,
    /// Context length in tokens.
    pub context_length: u32,
    /// Licence, e.g. `Apache-2.0`.
    pub license: BoundedString<MAX_LABEL_LEN>,
    /// File size in bytes.
    pub size: u64,
}

/// One model a provider serves, with its prices.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ModelOffer {
    /// Content id of the model; must be active in the registry.
    pub cid: Cid,
    /// Price per million prompt tokens, in base units.
    pub price_in: Amount,
    /// Price per million completion tokens, in base units.
    pub price_out: Amount,
}

/// What a provider announces about itself.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ProviderInfo {
    /// Base URL of its OpenAI-compatible endpoint.
    pub endpoint: BoundedString<MAX_ENDPOINT_LEN>,
    /// Models served, with prices; at least one, no CID twice.
    pub models: BoundedVec<ModelOffer, MAX_PROVIDER_MODELS>,
    /// Region label, e.g. `eu-west`.
    pub region: BoundedString<MAX_LABEL_LEN>,
    /// Hardware description, e.g. `1x H100`.
    pub hardware: BoundedString<MAX_HARDWARE_LEN>,
}
