//! Provider receipts: what was asked, what was answered, with which model and at what price.

use borsh::{BorshDeserialize, BorshSerialize};

use crate::{
    encoding::{encode, Wire, MAX_MESSAGE_BYTES},
    keys::{self, AccountId, Keypair, Signature},
    signing::{domain, ChainId},
    Amount, Cid, Hash,
};

/// Sampling parameters in integers: no floats in signed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SamplingParams {
    /// Temperature in thousandths (`700` = 0.7); `0` means greedy.
    pub temperature_milli: u32,
    /// Top-p in thousandths (`1000` = no nucleus cut).
    pub top_p_milli: u32,
    /// Top-k (`0` = no cut).
    pub top_k: u32,
    /// Sampler seed.
    pub seed: u64,
}

/// One served request, as the provider attests it.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Receipt {
    /// Chain the payment lives on.
    pub chain_id: ChainId,
    /// The provider that served and signs.
    pub provider: AccountId,
    /// BLAKE3 of the canonical request.
    pub request_hash: Hash,
    /// BLAKE3 of the canonical response.
    pub response_hash: Hash,
    /// Model that answered.
    pub model: Cid,
    /// Prompt tokens.
    pub prompt_tokens: u32,
    /// Completion tokens.
    pub completion_tokens: u32,
    /// Sampling rule and seed.
    pub sampling: SamplingParams,
    /// Price per million prompt tokens.
    pub price_in: Amount,
    /// Price per million completion tokens.
    pub price_out: Amount,
    /// Who paid.
    pub payer: AccountId,
    /// Cumulative voucher amount that covered this request.
    pub voucher_amount: Amount,
    /// When it was served, in milliseconds since the Unix epoch (provider's clock).
    pub timestamp_ms: u64,
}

/// A receipt with the provider's signature (domain [`domain::RECEIPT`]).
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SignedReceipt {
    /// The receipt.
    pub receipt: Receipt,
    /// The provider's signature.
    pub signature: Signature,
}

impl Receipt {
    /// Signs the receipt with the provider's key.
    pub fn sign(self, provider: &Keypair) -> SignedReceipt {
        let signature = provider.sign(domain::RECEIPT, &self.chain_id, &encode(&self));
        SignedReceipt {
            receipt: self,
            signature,
        }
    }

    /// The receipt's id: BLAKE3 of its canonical encoding.
    pub fn id(&self) -> Hash {
        Hash::of(&encode(self))
    }

    /// What the request cost: prompt and completion tokens at the receipt's prices, each
    /// rounded up to a whole base unit. The voucher covered a quoted maximum; the payee claims
    /// only this, so the rest is refunded.
    pub fn charge(&self) -> Result<Amount, crate::amount::Error> {
        crate::amount::token_cost(
            u64::from(self.prompt_tokens),
            u64::from(self.completion_tokens),
            self.price_in,
            self.price_out,
        )
    }
}

/// The `response_hash` of an answer: BLAKE3 of the borsh encoding of its output token ids,
/// the raw logit the provider's model gave each of them (in thousandths, [`logit_milli`]) and
/// its text, so a checker holding the transcript recomputes it exactly.
///
/// The logits commit the provider to its model's numbers, not only to its choices: a cheaper
/// model that happens to pick the governed model's tokens still gives them other logits.
pub fn response_hash(tokens: &[u32], logits_milli: &[i32], text: &str) -> Hash {
    Hash::of(&encode(&(
        tokens.to_vec(),
        logits_milli.to_vec(),
        text.to_owned(),
    )))
}

/// A raw logit in thousandths, as receipts commit to it (no floats in signed data): rounded,
/// saturating at the `i32` range, NaN as 0.
pub fn logit_milli(logit: f32) -> i32 {
    (f64::from(logit) * 1000.0).round() as i32
}

impl SignedReceipt {
    /// Checks the provider's signature for the receipt's own chain id.
    pub fn verify(&self) -> Result<(), keys::Error> {
        let receipt = &self.receipt;
        receipt.provider.verify(
            domain::RECEIPT,
            &receipt.chain_id,
            &encode(receipt),
            &self.signature,
        )
    }
}

impl Wire for SignedReceipt {
    const MAX_BYTES: usize = MAX_MESSAGE_BYTES;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logits_commit_in_thousandths() {
        assert_eq!(logit_milli(12.3456), 12_346);
        assert_eq!(logit_milli(-0.0004), 0);
        assert_eq!(logit_milli(-2.5), -2_500);
        assert_eq!(logit_milli(f32::NAN), 0);
        assert_eq!(logit_milli(1e12), i32::MAX);
        // The hash covers every part: tokens, logits and text.
        let base = response_hash(&[1, 2], &[10, 20], "ab");
        assert_ne!(base, response_hash(&[1, 3], &[10, 20], "ab"));
        assert_ne!(base, response_hash(&[1, 2], &[10, 21], "ab"));
        assert_ne!(base, response_hash(&[1, 2], &[10, 20], "abc"));
    }
}
