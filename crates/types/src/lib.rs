//! Agora's shared types: ids, keys, amounts, hashes, CIDs, canonical encoding and signed messages.
//!
//! Everything that is signed or hashed is encoded with borsh through [`encoding`]; JSON exists
//! only at the edges and is defined by the crates that own those edges.
//!
//! # Signatures
//!
//! Every signature covers [`signing::signing_bytes`]: a domain tag from [`signing::domain`],
//! the chain id and the body's canonical bytes.
//! A signature made for one message kind or one chain never verifies for another.
//!
//! # Decoding untrusted bytes
//!
//! [`encoding::decode`] bounds the input's length per type and rejects trailing bytes;
//! variable-length fields of signed messages are [`bounded`] types, so hostile length
//! prefixes cannot make it allocate without limit.
//!
//! # Example
//!
//! ```
//! use agora_types::{ChainId, Keypair, SignedTx, TxBody, UNITS_PER_AGR};
//!
//! let chain = ChainId::new("agora-devnet").unwrap();
//! let alice = Keypair::from_seed(b"alice");
//! let bob = Keypair::from_seed(b"bob").account_id();
//! let tx = SignedTx::sign(&alice, &chain, 0, 1_000, TxBody::Transfer { to: bob, amount: UNITS_PER_AGR });
//! assert!(tx.verify(&chain).is_ok());
//! let bytes = tx.to_bytes();
//! assert_eq!(SignedTx::from_bytes(&bytes).unwrap(), tx);
//! assert!(bob.to_string().starts_with("agora1"));
//! ```

pub mod amount;
pub mod block;
pub mod bounded;
pub mod cid;
pub mod encoding;
pub mod genesis;
pub mod governance;
pub mod hash;
pub mod keys;
pub mod merkle;
pub mod params;
pub mod receipt;
pub mod registry;
pub mod signing;
pub mod transcript;
pub mod tx;
pub mod voucher;

pub use amount::{Amount, UNITS_PER_AGR};
pub use block::{tx_root, Block, Header};
pub use bounded::{BoundedString, BoundedVec};
pub use cid::Cid;
pub use encoding::{decode, encode, DecodeError, Wire, MAX_BLOCK_BYTES, MAX_TX_BYTES};
pub use genesis::{Genesis, GenesisProvider, GenesisValidator};
pub use governance::{ProposalKind, Vote};
pub use hash::Hash;
pub use keys::{AccountId, Keypair, Signature};
pub use merkle::MerkleProof;
pub use params::Params;
pub use receipt::{Receipt, SamplingParams, SignedReceipt};
pub use registry::{ModelInfo, ModelOffer, ProviderInfo};
pub use signing::{domain, ChainId, Domain};
pub use transcript::Transcript;
pub use tx::{score_commitment, ModelTotals, ProviderScore, ReceiptTotals, SignedTx, TxBody};
pub use voucher::{SignedVoucher, Voucher};
