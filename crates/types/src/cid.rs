//! Content ids: CIDv1, codec raw (0x55), multihash BLAKE3 (0x1e), printed as base32 (`bafkr…`).
//!
//! The binary form is `0x01 0x55 0x1e 0x20 <32-byte digest>`; the text form is the multibase
//! prefix `b` followed by lowercase RFC 4648 base32 without padding, so Agora's ids are valid
//! IPFS CIDs.

use std::{fmt, str::FromStr};

use borsh::{BorshDeserialize, BorshSerialize};

use crate::Hash;

/// CID version 1.
const VERSION: u8 = 0x01;
/// Multicodec `raw`: the blob's bytes as they are.
const CODEC_RAW: u8 = 0x55;
/// Multihash code of BLAKE3 (256-bit output).
const MULTIHASH_BLAKE3: u8 = 0x1e;
/// Digest length in bytes.
const DIGEST_LEN: u8 = 0x20;
/// The fixed prefix of every Agora CID in binary form.
const PREFIX: [u8; 4] = [VERSION, CODEC_RAW, MULTIHASH_BLAKE3, DIGEST_LEN];

/// The content id of a blob: the BLAKE3 hash of its bytes, wrapped as a CIDv1.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize)]
pub struct Cid(Hash);

/// Why a text CID was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The text does not start with the base32 multibase prefix `b`.
    #[error("cid must start with the base32 multibase prefix 'b'")]
    Multibase,
    /// The text after the prefix is not lowercase base32.
    #[error("cid is not valid base32")]
    Base32,
    /// The bytes are not CIDv1 raw with a 32-byte BLAKE3 multihash.
    #[error("cid is not a CIDv1 raw BLAKE3 id")]
    Format,
}

impl Cid {
    /// The CID of a blob whose BLAKE3 digest is `hash`.
    pub fn from_hash(hash: Hash) -> Self {
        Cid(hash)
    }

    /// The CID of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Cid(Hash::of(bytes))
    }

    /// The BLAKE3 digest inside this CID.
    pub fn hash(&self) -> &Hash {
        &self.0
    }

    /// The binary CID: version, codec, multihash code, length, digest.
    pub fn to_bytes(&self) -> [u8; 36] {
        let mut out = [0u8; 36];
        out[..4].copy_from_slice(&PREFIX);
        out[4..].copy_from_slice(&self.0 .0);
        out
    }

    /// Parses the binary form, rejecting anything but CIDv1 raw BLAKE3.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() != 36 || bytes[..4] != PREFIX {
            return Err(Error::Format);
        }
        let mut digest = [0u8; 32];
        digest.copy_from_slice(&bytes[4..]);
        Ok(Cid(Hash(digest)))
    }
}

impl fmt::Display for Cid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = data_encoding::BASE32_NOPAD.encode(&self.to_bytes());
        write!(f, "b{}", text.to_ascii_lowercase())
    }
}

impl fmt::Debug for Cid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cid({self})")
    }
}

impl FromStr for Cid {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        let Some(body) = text.strip_prefix('b') else {
            return Err(Error::Multibase);
        };
        if body.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(Error::Base32);
        }
        let bytes = data_encoding::BASE32_NOPAD
            .decode(body.to_ascii_uppercase().as_bytes())
            .map_err(|_| Error::Base32)?;
        Cid::from_bytes(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default model's pinned id from DESIGN §8, and its BLAKE3 digest's ends.
    const DEFAULT_MODEL_CID: &str = "bafkr4ic7j6qtx7dn2sur7uaoekluvhcot3lcr7l5p4yhhgg56mbgbvvsym";

    #[test]
    fn default_model_cid_round_trips_and_wraps_its_digest() {
        let cid: Cid = DEFAULT_MODEL_CID.parse().unwrap();
        assert_eq!(cid.to_string(), DEFAULT_MODEL_CID);
        let hex = cid.hash().to_hex();
        assert!(hex.starts_with("5f4fa13b"), "{hex}");
        assert!(hex.ends_with("b2c3"), "{hex}");
    }

    #[test]
    fn cid_of_empty_blob_is_blake3_of_nothing() {
        let cid = Cid::of(b"");
        assert_eq!(
            cid.hash().to_hex(),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
        assert!(cid.to_string().starts_with("bafkr4i"));
    }

    #[test]
    fn parse_rejects_other_codecs_and_bad_text() {
        assert_eq!("zabc".parse::<Cid>(), Err(Error::Multibase));
        assert_eq!("b!!!".parse::<Cid>(), Err(Error::Base32));
        // A CIDv1 dag-pb sha2-256 id is a valid CID but not one of ours.
        assert_eq!(
            "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi".parse::<Cid>(),
            Err(Error::Format)
        );
        let upper = DEFAULT_MODEL_CID.to_ascii_uppercase().replacen('B', "b", 1);
        assert_eq!(upper.parse::<Cid>(), Err(Error::Base32));
    }
}
