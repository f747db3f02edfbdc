//! The one canonical encoding of Agora: borsh, decoded with explicit bounds.
//!
//! Everything that is signed or hashed is encoded with [`encode`].
//! [`decode`] refuses inputs longer than the type's [`Wire::MAX_BYTES`] and refuses trailing
//! bytes.
//! Variable-length fields inside signed messages are [`crate::bounded`] types, which refuse a
//! declared length above their bound before reading anything.
//! The few plain `Vec`s (a block's transactions, genesis lists) rely on borsh's cautious
//! preallocation (at most 4 KiB up front, then growth only as items actually decode), so
//! allocation stays proportional to the input, which is itself bounded.

use borsh::{BorshDeserialize, BorshSerialize};

/// Largest encoded signed transaction, in bytes.
pub const MAX_TX_BYTES: usize = 64 * 1024;
/// Largest encoded block, in bytes.
pub const MAX_BLOCK_BYTES: usize = 16 * 1024 * 1024;
/// Largest encoded genesis, in bytes.
pub const MAX_GENESIS_BYTES: usize = 16 * 1024 * 1024;
/// Largest encoded small message (voucher, receipt, header), in bytes.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;

/// A type with a canonical byte form and a bound on its encoded size.
pub trait Wire: BorshSerialize + BorshDeserialize {
    /// The largest encoding [`decode`] accepts for this type.
    const MAX_BYTES: usize;
}

/// Why bytes did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input is longer than the type allows.
    #[error("input of {len} bytes exceeds the bound of {max} bytes")]
    TooLong {
        /// The input's length.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// The bytes are not a valid encoding (truncated, bad tag, trailing bytes, over a bound).
    #[error("invalid encoding: {0}")]
    Invalid(String),
}

/// Encodes `value` canonically.
pub fn encode<T: BorshSerialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(value, &mut out);
    out
}

/// Appends the canonical encoding of `value` to `out`.
pub fn encode_into<T: BorshSerialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    // Writing into a Vec cannot fail, and every length in Agora's types is bounded far below
    // u32::MAX, the only other way borsh serialization can fail.
    value
        .serialize(out)
        .expect("invariant: borsh encoding into a Vec cannot fail");
}

/// Decodes `bytes` as a `T`, refusing oversized input and trailing bytes.
pub fn decode<T: Wire>(bytes: &[u8]) -> Result<T, DecodeError> {
    decode_bounded(bytes, T::MAX_BYTES)
}

/// Decodes `bytes` as a `T` under an explicit byte bound, refusing trailing bytes.
pub fn decode_bounded<T: BorshDeserialize>(bytes: &[u8], max: usize) -> Result<T, DecodeError> {
    if bytes.len() > max {
        return Err(DecodeError::TooLong {
            len: bytes.len(),
            max,
        });
    }
    borsh::from_slice(bytes).map_err(|err| DecodeError::Invalid(err.to_string()))
}
