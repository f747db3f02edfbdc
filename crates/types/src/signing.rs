//! Domain-separated, chain-bound signing bytes.
//!
//! Every signature in Agora is made over
//! `u32-le(len(domain tag)) || domain tag || borsh(chain id) || borsh(body)`.
//! Domain tags are the constants in [`domain`]; changing one is a breaking change.

use std::fmt;

use borsh::{BorshDeserialize, BorshSerialize};

use crate::{bounded::BoundedString, encoding::encode_into};

/// A signing domain: one per kind of signed message.
///
/// The only values are the constants in [`domain`], so a caller cannot invent a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Domain(&'static [u8]);

/// The domain tags, one per signed message kind.
pub mod domain {
    use super::Domain;

    /// Transactions ([`crate::tx::SignedTx`]).
    pub const TX: Domain = Domain(b"agora/tx/v1");
    /// Payment-channel vouchers ([`crate::voucher::SignedVoucher`]).
    pub const VOUCHER: Domain = Domain(b"agora/voucher/v1");
    /// Provider receipts ([`crate::receipt::SignedReceipt`]).
    pub const RECEIPT: Domain = Domain(b"agora/receipt/v1");
    /// Block proposals by a validator.
    pub const PROPOSAL: Domain = Domain(b"agora/proposal/v1");
    /// Verifier score commitments and reveals.
    pub const SCORES: Domain = Domain(b"agora/scores/v1");
    /// Dispute votes cast off-chain before submission.
    pub const DISPUTE: Domain = Domain(b"agora/dispute/v1");
}

impl Domain {
    /// The tag's bytes.
    pub fn tag(&self) -> &'static [u8] {
        self.0
    }
}

/// Longest chain id, in bytes.
pub const MAX_CHAIN_ID_LEN: usize = 64;

/// The id of a chain, e.g. `agora-devnet`: 1 to 64 characters from `[a-z0-9._-]`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize)]
pub struct ChainId(BoundedString<MAX_CHAIN_ID_LEN>);

/// Why a chain id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The chain id is empty, too long or has a character outside `[a-z0-9._-]`.
    #[error("chain id must be 1 to 64 characters from [a-z0-9._-]")]
    InvalidChainId,
}

impl ChainId {
    /// Validates and wraps `text`.
    pub fn new(text: &str) -> Result<Self, Error> {
        let valid_char =
            |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b);
        if text.is_empty() || !text.bytes().all(valid_char) {
            return Err(Error::InvalidChainId);
        }
        let bounded = BoundedString::new(text).map_err(|_| Error::InvalidChainId)?;
        Ok(ChainId(bounded))
    }

    /// The chain id's text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl BorshDeserialize for ChainId {
    fn deserialize_reader<R: std::io::Read>(reader: &mut R) -> std::io::Result<Self> {
        let text = BoundedString::<MAX_CHAIN_ID_LEN>::deserialize_reader(reader)?;
        ChainId::new(text.as_str())
            .map_err(|err| std::io::Error::new(std::io::ErrorKind::InvalidData, err.to_string()))
    }
}

impl fmt::Display for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainId({})", self.as_str())
    }
}

/// The bytes a signature covers: the domain tag, the chain id and the encoded body.
pub fn signing_bytes(domain: Domain, chain_id: &ChainId, body: &[u8]) -> Vec<u8> {
    let tag = domain.tag();
    let mut out = Vec::with_capacity(4 + tag.len() + 4 + MAX_CHAIN_ID_LEN + body.len());
    // The tag carries its length so that no tag is a prefix of another's signed bytes.
    out.extend_from_slice(&(tag.len() as u32).to_le_bytes());
    out.extend_from_slice(tag);
    encode_into(chain_id, &mut out);
    out.extend_from_slice(body);
    out
}
