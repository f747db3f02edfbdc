//! Agora's shared types: ids, keys, amounts, hashes, CIDs, canonical encoding and signed messages.
//!
//! Everything that is signed or hashed is encoded with borsh through this crate; JSON exists
//! only at the edges and is defined by the crates that own those edges.

pub mod cid;
pub mod hash;

pub use cid::Cid;
pub use hash::Hash;
