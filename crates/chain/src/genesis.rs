//! Genesis files (JSON) and the dev genesis.
//!
//! A genesis file is the JSON form of [`agora_types::Genesis`]: amounts are
//! decimal strings of base units, accounts bech32m, CIDs base32, and `params`
//! lists only the parameters that differ from the defaults.
//!
//! ```json
//! {
//!   "chain_id": "agora-devnet",
//!   "timestamp_ms": 1767225600000,
//!   "accounts": [{"address": "agora1…", "balance": "1000000000000000"}],
//!   "validators": [{"account": "agora1…", "stake": "1000000000000"}],
//!   "params": {"min_fee": "1000"},
//!   "models": [{"cid": "bafkr4…", "name": "SmolLM2-135M-Instruct", "architecture": "llama",
//!               "quantization": "Q4_1", "context_length": 8192, "license": "apache-2.0",
//!               "size": 98362432}],
//!   "providers": []
//! }
//! ```

use std::{collections::BTreeMap, path::Path};

use agora_types::{
    params::PARAM_NAMES, registry, AccountId, Amount, BoundedString, BoundedVec, ChainId, Cid,
    Genesis, GenesisProvider, GenesisValidator, ModelInfo, Params, ProviderInfo, UNITS_PER_AGR,
};
use serde::{Deserialize, Serialize};

/// CID of the default model, SmolLM2-135M-Instruct Q4_1 (DESIGN §8).
pub const DEFAULT_MODEL_CID: &str = "bafkr4ic7j6qtx7dn2sur7uaoekluvhcot3lcr7l5p4yhhgg56mbgbvvsym";
/// Balance of each funded dev account.
pub const DEV_BALANCE: Amount = 1_000_000 * UNITS_PER_AGR;
/// Stake of the dev validator.
pub const DEV_VALIDATOR_STAKE: Amount = 10_000 * UNITS_PER_AGR;

/// Why a genesis file was refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read or written.
    #[error("genesis file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The JSON is malformed.
    #[error("genesis json: {0}")]
    Json(#[from] serde_json::Error),
    /// A field has an invalid value.
    #[error("genesis field {field}: {reason}")]
    Field {
        /// Which field.
        field: String,
        /// Why.
        reason: String,
    },
}

fn field(name: impl Into<String>, reason: impl std::fmt::Display) -> Error {
    Error::Field {
        field: name.into(),
        reason: reason.to_string(),
    }
}

/// A funded account in a genesis file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountEntry {
    /// bech32m account id.
    pub address: String,
    /// Balance (base units, decimal).
    pub balance: String,
}

/// A validator in a genesis file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ValidatorEntry {
    /// bech32m account id; its key is also the validator's consensus key.
    pub account: String,
    /// Bonded stake (base units, decimal).
    pub stake: String,
}

/// A model in a genesis file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelEntry {
    /// CID (base32).
    pub cid: String,
    /// Name.
    pub name: String,
    /// Architecture.
    pub architecture: String,
    /// Quantization.
    pub quantization: String,
    /// Context length in tokens.
    pub context_length: u32,
    /// Licence.
    pub license: String,
    /// File size in bytes.
    pub size: u64,
}

/// A model offer of a genesis provider.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OfferEntry {
    /// Model CID.
    pub cid: String,
    /// Price per million prompt tokens (base units, decimal).
    pub price_in: String,
    /// Price per million completion tokens (base units, decimal).
    pub price_out: String,
}

/// A provider in a genesis file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProviderEntry {
    /// Operator account.
    pub operator: String,
    /// Bonded stake (base units, decimal).
    pub stake: String,
    /// Endpoint base URL.
    pub endpoint: String,
    /// Offers.
    pub models: Vec<OfferEntry>,
    /// Region label.
    pub region: String,
    /// Hardware description.
    pub hardware: String,
}

/// The JSON form of a genesis.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GenesisFile {
    /// Chain id.
    pub chain_id: String,
    /// Genesis time (ms since the Unix epoch).
    pub timestamp_ms: u64,
    /// Funded accounts.
    pub accounts: Vec<AccountEntry>,
    /// Validators.
    pub validators: Vec<ValidatorEntry>,
    /// Parameters that differ from the defaults.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Active models.
    #[serde(default)]
    pub models: Vec<ModelEntry>,
    /// Registered providers.
    #[serde(default)]
    pub providers: Vec<ProviderEntry>,
}

fn parse_account(name: &str, text: &str) -> Result<AccountId, Error> {
    text.parse().map_err(|err| field(name, err))
}

fn parse_amount(name: &str, text: &str) -> Result<Amount, Error> {
    text.parse().map_err(|err| field(name, err))
}

fn parse_cid(name: &str, text: &str) -> Result<Cid, Error> {
    text.parse().map_err(|err| field(name, format!("{err:?}")))
}

fn bounded<const MAX: usize>(name: &str, text: &str) -> Result<BoundedString<MAX>, Error> {
    BoundedString::new(text).map_err(|err| field(name, err))
}

impl GenesisFile {
    /// Reads a genesis file.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        Ok(serde_json::from_str(&text)?)
    }

    /// Writes this genesis as pretty JSON.
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })
    }

    /// Converts to the core genesis, checking every field.
    pub fn to_genesis(&self) -> Result<Genesis, Error> {
        let chain_id = ChainId::new(&self.chain_id).map_err(|err| field("chain_id", err))?;
        let mut accounts = Vec::new();
        for entry in &self.accounts {
            accounts.push((
                parse_account("accounts.address", &entry.address)?,
                parse_amount("accounts.balance", &entry.balance)?,
            ));
        }
        let mut validators = Vec::new();
        for entry in &self.validators {
            validators.push(GenesisValidator {
                account: parse_account("validators.account", &entry.account)?,
                stake: parse_amount("validators.stake", &entry.stake)?,
            });
        }
        let mut params = Params::default();
        for (name, value) in &self.params {
            let value: u128 = value
                .parse()
                .map_err(|err| field(format!("params.{name}"), err))?;
            params
                .set(name, value)
                .map_err(|err| field(format!("params.{name}"), err))?;
        }
        let mut models = Vec::new();
        for entry in &self.models {
            models.push(ModelInfo {
                cid: parse_cid("models.cid", &entry.cid)?,
                name: bounded("models.name", &entry.name)?,
                architecture: bounded("models.architecture", &entry.architecture)?,
                quantization: bounded("models.quantization", &entry.quantization)?,
                context_length: entry.context_length,
                license: bounded("models.license", &entry.license)?,
                size: entry.size,
            });
        }
        let mut providers = Vec::new();
        for entry in &self.providers {
            let mut offers = Vec::new();
            for offer in &entry.models {
                offers.push(registry::ModelOffer {
                    cid: parse_cid("providers.models.cid", &offer.cid)?,
                    price_in: parse_amount("providers.models.price_in", &offer.price_in)?,
                    price_out: parse_amount("providers.models.price_out", &offer.price_out)?,
                });
            }
            providers.push(GenesisProvider {
                operator: parse_account("providers.operator", &entry.operator)?,
                stake: parse_amount("providers.stake", &entry.stake)?,
                info: ProviderInfo {
                    endpoint: bounded("providers.endpoint", &entry.endpoint)?,
                    models: BoundedVec::new(offers)
                        .map_err(|err| field("providers.models", err))?,
                    region: bounded("providers.region", &entry.region)?,
                    hardware: bounded("providers.hardware", &entry.hardware)?,
                },
            });
        }
        Ok(Genesis {
            chain_id,
            timestamp_ms: self.timestamp_ms,
            accounts,
            validators,
            params,
            models,
            providers,
        })
    }

    /// The JSON form of a core genesis.
    pub fn from_genesis(genesis: &Genesis) -> Self {
        let defaults = Params::default();
        let params = PARAM_NAMES
            .iter()
            .filter_map(|name| {
                let value = genesis.params.get(name)?;
                (defaults.get(name) != Some(value)).then(|| ((*name).to_owned(), value.to_string()))
            })
            .collect();
        GenesisFile {
            chain_id: genesis.chain_id.to_string(),
            timestamp_ms: genesis.timestamp_ms,
            accounts: genesis
                .accounts
                .iter()
                .map(|(account, balance)| AccountEntry {
                    address: account.to_string(),
                    balance: balance.to_string(),
                })
                .collect(),
            validators: genesis
                .validators
                .iter()
                .map(|v| ValidatorEntry {
                    account: v.account.to_string(),
                    stake: v.stake.to_string(),
                })
                .collect(),
            params,
            models: genesis
                .models
                .iter()
                .map(|m| ModelEntry {
                    cid: m.cid.to_string(),
                    name: m.name.as_str().to_owned(),
                    architecture: m.architecture.as_str().to_owned(),
                    quantization: m.quantization.as_str().to_owned(),
                    context_length: m.context_length,
                    license: m.license.as_str().to_owned(),
                    size: m.size,
                })
                .collect(),
            providers: genesis
                .providers
                .iter()
                .map(|p| ProviderEntry {
                    operator: p.operator.to_string(),
                    stake: p.stake.to_string(),
                    endpoint: p.info.endpoint.as_str().to_owned(),
                    models: p
                        .info
                        .models
                        .iter()
                        .map(|o| OfferEntry {
                            cid: o.cid.to_string(),
                            price_in: o.price_in.to_string(),
                            price_out: o.price_out.to_string(),
                        })
                        .collect(),
                    region: p.info.region.as_str().to_owned(),
                    hardware: p.info.hardware.as_str().to_owned(),
                })
                .collect(),
        }
    }
}

/// The default model's registry record (SmolLM2-135M-Instruct, GGUF Q4_1).
pub fn default_model() -> ModelInfo {
    // The constants below are valid by inspection; a failure is a broken build.
    ModelInfo {
        cid: DEFAULT_MODEL_CID
            .parse()
            .expect("invariant: DEFAULT_MODEL_CID is a valid CID"),
        name: label("SmolLM2-135M-Instruct"),
        architecture: label("llama"),
        quantization: label("Q4_1"),
        context_length: 8192,
        license: label("apache-2.0"),
        size: 98_362_432,
    }
}

fn label<const MAX: usize>(text: &str) -> BoundedString<MAX> {
    BoundedString::new(text).expect("invariant: constant label fits its bound")
}

/// A dev genesis: `validator` bonded, each of `funded` holding [`DEV_BALANCE`],
/// and the default model active.
pub fn dev(
    chain_id: &ChainId,
    timestamp_ms: u64,
    validator: AccountId,
    funded: &[AccountId],
) -> Genesis {
    dev_validators(chain_id, timestamp_ms, &[validator], funded)
}

/// A dev genesis with several validators, each bonded with the same stake.
pub fn dev_validators(
    chain_id: &ChainId,
    timestamp_ms: u64,
    validators: &[AccountId],
    funded: &[AccountId],
) -> Genesis {
    let mut accounts: Vec<(AccountId, Amount)> = Vec::new();
    for account in validators.iter().chain(funded) {
        if !accounts.iter().any(|(existing, _)| existing == account) {
            accounts.push((*account, DEV_BALANCE));
        }
    }
    Genesis {
        chain_id: chain_id.clone(),
        timestamp_ms,
        accounts,
        validators: validators
            .iter()
            .map(|account| GenesisValidator {
                account: *account,
                stake: DEV_VALIDATOR_STAKE,
            })
            .collect(),
        // Short epochs, so receipt roots reach the chain within seconds on a devnet; disputes
        // get 40 blocks (8 s at the busiest block rate, 40 s idle), so a committee on a loaded
        // machine has time to fetch and re-check. Votes last 10 blocks (2–10 s), so a newcomer
        // sees a proposal pass while watching.
        params: Params {
            epoch_blocks: 20,
            dispute_period_blocks: 40,
            voting_period_blocks: 10,
            ..Params::default()
        },
        models: vec![default_model()],
        providers: Vec::new(),
    }
}
