//! Governance proposals and votes as carried in transactions.

use borsh::{BorshDeserialize, BorshSerialize};

use crate::{bounded::BoundedString, registry::ModelInfo, Cid};

/// Longest parameter name, in bytes.
pub const MAX_PARAM_NAME_LEN: usize = 64;
/// Longest text proposal, in bytes.
pub const MAX_PROPOSAL_TEXT_LEN: usize = 8 * 1024;

/// What a proposal does if it passes.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum ProposalKind {
    /// Make a new model servable.
    AddModel(ModelInfo),
    /// Retire `old` and make `new` servable in its place.
    ReplaceModel {
        /// The active model to retire.
        old: Cid,
        /// The model that takes its place.
        new: ModelInfo,
    },
    /// Stop a model from being servable.
    RetireModel {
        /// The active model to retire.
        cid: Cid,
    },
    /// Change one parameter (see `Params::set`).
    SetParam {
        /// Parameter name, e.g. `min_fee`.
        name: BoundedString<MAX_PARAM_NAME_LEN>,
        /// New value.
        value: u128,
    },
    /// Adopt the safety policy document with this content id.
    SetSafetyPolicy {
        /// Content id of the policy document.
        cid: Cid,
    },
    /// A text-only resolution with no on-chain effect.
    Text {
        /// The text.
        text: BoundedString<MAX_PROPOSAL_TEXT_LEN>,
    },
}

/// A vote on a proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Vote {
    /// In favour.
    Yes,
    /// Against.
    No,
    /// Counts toward quorum only.
    Abstain,
}
