//! Ed25519 keys, account ids (bech32m `agora1…`) and signatures.
//!
//! An account is its ed25519 public key.
//! Every signature is made over [`crate::signing::signing_bytes`], which binds a domain tag and
//! the chain id, so a signature for one purpose or chain never verifies for another.

use std::{fmt, str::FromStr};

use bech32::{primitives::decode::CheckedHrpstring, Bech32m, Hrp};
use borsh::{BorshDeserialize, BorshSerialize};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

use crate::signing::{signing_bytes, ChainId, Domain};

/// The human-readable prefix of account ids.
pub const ACCOUNT_HRP: &str = "agora";

const HRP: Hrp = Hrp::parse_unchecked(ACCOUNT_HRP);

/// An account: a 32-byte ed25519 public key, shown as bech32m `agora1…`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize)]
pub struct AccountId(pub [u8; 32]);

/// A 64-byte ed25519 signature.
#[derive(Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Signature(pub [u8; 64]);

/// An ed25519 signing key and its account id.
#[derive(Clone)]
pub struct Keypair {
    signing: SigningKey,
    account: AccountId,
}

/// Why a key, account id or signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The text is not bech32m.
    #[error("account id is not bech32m: {0}")]
    Bech32(String),
    /// The bech32m prefix is not `agora`.
    #[error("account id prefix is {0}, expected agora")]
    Prefix(String),
    /// The decoded account id is not 32 bytes.
    #[error("account id has {0} bytes, expected 32")]
    Length(usize),
    /// The account id is not a usable ed25519 public key.
    #[error("account id is not a valid ed25519 public key")]
    InvalidKey,
    /// The signature does not verify.
    #[error("invalid signature")]
    BadSignature,
}

impl Keypair {
    /// The keypair whose secret key is `secret` (32 bytes, e.g. from a key file or an RNG).
    pub fn from_bytes(secret: &[u8; 32]) -> Self {
        let signing = SigningKey::from_bytes(secret);
        let account = AccountId(signing.verifying_key().to_bytes());
        Keypair { signing, account }
    }

    /// A deterministic keypair for tests and devnets: the secret is BLAKE3 of `seed`.
    pub fn from_seed(seed: &[u8]) -> Self {
        Self::from_bytes(blake3::hash(seed).as_bytes())
    }

    /// The 32 secret bytes, for a key file.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }

    /// The account this key controls.
    pub fn account_id(&self) -> AccountId {
        self.account
    }

    /// Signs `message` (the canonical encoding of a body) for `domain` on `chain_id`.
    pub fn sign(&self, domain: Domain, chain_id: &ChainId, message: &[u8]) -> Signature {
        self.sign_raw(&signing_bytes(domain, chain_id, message))
    }

    /// Signs already-assembled signing bytes from [`signing_bytes`].
    pub fn sign_raw(&self, signing_bytes: &[u8]) -> Signature {
        Signature(self.signing.sign(signing_bytes).to_bytes())
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keypair({})", self.account)
    }
}

impl AccountId {
    /// The ed25519 public key, refusing bytes that are not a point or are of small order.
    pub fn verifying_key(&self) -> Result<VerifyingKey, Error> {
        let key = VerifyingKey::from_bytes(&self.0).map_err(|_| Error::InvalidKey)?;
        if key.is_weak() {
            return Err(Error::InvalidKey);
        }
        Ok(key)
    }

    /// Checks `signature` over `message` for `domain` on `chain_id`.
    pub fn verify(
        &self,
        domain: Domain,
        chain_id: &ChainId,
        message: &[u8],
        signature: &Signature,
    ) -> Result<(), Error> {
        self.verify_raw(&signing_bytes(domain, chain_id, message), signature)
    }

    /// Checks `signature` over already-assembled signing bytes.
    pub fn verify_raw(&self, signing_bytes: &[u8], signature: &Signature) -> Result<(), Error> {
        let key = self.verifying_key()?;
        let signature = ed25519_dalek::Signature::from_bytes(&signature.0);
        key.verify_strict(signing_bytes, &signature)
            .map_err(|_| Error::BadSignature)
    }
}

/// Verifies many signatures at once, about twice as fast as one by one.
///
/// `items` are `(signer, signing bytes, signature)`.
/// Returns `true` only when every signature is valid; on `false`, check them one by one with
/// [`AccountId::verify_raw`] to find the bad ones.
/// The batch's random coefficients come from a transcript of its inputs, so the result is
/// deterministic.
pub fn verify_batch(items: &[(AccountId, &[u8], Signature)]) -> bool {
    let mut keys = Vec::with_capacity(items.len());
    let mut messages = Vec::with_capacity(items.len());
    let mut signatures = Vec::with_capacity(items.len());
    for (account, message, signature) in items {
        let Ok(key) = account.verifying_key() else {
            return false;
        };
        keys.push(key);
        messages.push(*message);
        signatures.push(ed25519_dalek::Signature::from_bytes(&signature.0));
    }
    ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok()
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Encoding 32 bytes under a valid, short prefix cannot exceed bech32's length limit.
        let text = bech32::encode::<Bech32m>(HRP, &self.0).map_err(|_| fmt::Error)?;
        f.write_str(&text)
    }
}

impl fmt::Debug for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccountId({self})")
    }
}

impl FromStr for AccountId {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        let checked =
            CheckedHrpstring::new::<Bech32m>(text).map_err(|err| Error::Bech32(err.to_string()))?;
        if checked.hrp() != HRP {
            return Err(Error::Prefix(checked.hrp().to_string()));
        }
        let bytes: Vec<u8> = checked.byte_iter().collect();
        let array: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| Error::Length(bytes.len()))?;
        Ok(AccountId(array))
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", data_encoding::HEXLOWER.encode(&self.0))
    }
}
