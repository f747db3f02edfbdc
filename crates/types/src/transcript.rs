//! Transcripts: a receipt together with what it attests, as a verifier checks it.
//!
//! A transcript is stored and shared as a blob (its [`Transcript::cid`]), so a challenge on the
//! ledger can name it and every committee member fetches the same bytes.

use borsh::{BorshDeserialize, BorshSerialize};

use crate::{
    encoding::{decode, encode, DecodeError, Wire},
    receipt::{response_hash, SignedReceipt},
    Cid, Hash,
};

/// Largest encoded transcript accepted (a request body plus its answer).
pub const MAX_TRANSCRIPT_BYTES: usize = 4 * 1024 * 1024;

/// A signed receipt with the request it answered and the answer.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Transcript {
    /// The provider's signed receipt.
    pub receipt: SignedReceipt,
    /// The request body the provider served: BLAKE3 of it is the receipt's `request_hash`.
    pub request: Vec<u8>,
    /// The output token ids.
    pub output_tokens: Vec<u32>,
    /// The raw logit of each output token under the provider's model, in thousandths.
    pub output_logits: Vec<i32>,
    /// The output text.
    pub output_text: String,
}

/// Why a transcript does not stand for its receipt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranscriptError {
    /// The receipt's signature does not verify.
    #[error("the receipt's signature does not verify")]
    BadSignature,
    /// The request does not hash to the receipt's `request_hash`.
    #[error("the request does not hash to the receipt's request_hash")]
    RequestMismatch,
    /// The output does not hash to the receipt's `response_hash`.
    #[error("the output does not hash to the receipt's response_hash")]
    ResponseMismatch,
}

impl Transcript {
    /// Checks the receipt's signature and that request and output hash to it.
    pub fn check(&self) -> Result<(), TranscriptError> {
        let receipt = &self.receipt.receipt;
        self.receipt
            .verify()
            .map_err(|_| TranscriptError::BadSignature)?;
        if Hash::of(&self.request) != receipt.request_hash {
            return Err(TranscriptError::RequestMismatch);
        }
        if response_hash(&self.output_tokens, &self.output_logits, &self.output_text)
            != receipt.response_hash
        {
            return Err(TranscriptError::ResponseMismatch);
        }
        Ok(())
    }

    /// The canonical encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decodes a transcript, refusing more than [`MAX_TRANSCRIPT_BYTES`] and trailing bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode(bytes)
    }

    /// The content id of the canonical encoding, under which the transcript is shared.
    pub fn cid(&self) -> Cid {
        Cid::of(&self.to_bytes())
    }
}

impl Wire for Transcript {
    const MAX_BYTES: usize = MAX_TRANSCRIPT_BYTES;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        receipt::{Receipt, SamplingParams},
        ChainId, Keypair,
    };

    fn transcript() -> Transcript {
        let provider = Keypair::from_seed(b"provider");
        let request = br#"{"model":"m","messages":[]}"#.to_vec();
        let (tokens, logits, text) = (vec![1, 2, 3], vec![15_250, -300, 9_001], "abc".to_string());
        let receipt = Receipt {
            chain_id: ChainId::new("agora-test").unwrap(),
            provider: provider.account_id(),
            request_hash: Hash::of(&request),
            response_hash: response_hash(&tokens, &logits, &text),
            model: Cid::of(b"model"),
            prompt_tokens: 5,
            completion_tokens: 3,
            sampling: SamplingParams {
                temperature_milli: 0,
                top_p_milli: 1000,
                top_k: 40,
                seed: 1,
            },
            price_in: 1,
            price_out: 2,
            payer: Keypair::from_seed(b"payer").account_id(),
            voucher_amount: 10,
            timestamp_ms: 0,
        }
        .sign(&provider);
        Transcript {
            receipt,
            request,
            output_tokens: tokens,
            output_logits: logits,
            output_text: text,
        }
    }

    #[test]
    fn an_honest_transcript_checks_and_round_trips() {
        let t = transcript();
        assert_eq!(t.check(), Ok(()));
        assert_eq!(Transcript::from_bytes(&t.to_bytes()).unwrap(), t);
        assert_eq!(t.cid(), Cid::of(&t.to_bytes()));
    }

    #[test]
    fn any_change_breaks_it() {
        let mut t = transcript();
        t.request.push(b' ');
        assert_eq!(t.check(), Err(TranscriptError::RequestMismatch));
        let mut t = transcript();
        t.output_tokens.pop();
        assert_eq!(t.check(), Err(TranscriptError::ResponseMismatch));
        let mut t = transcript();
        t.output_logits[1] += 1;
        assert_eq!(t.check(), Err(TranscriptError::ResponseMismatch));
        let mut t = transcript();
        t.output_text.push('!');
        assert_eq!(t.check(), Err(TranscriptError::ResponseMismatch));
        let mut t = transcript();
        t.receipt.receipt.completion_tokens += 1;
        assert_eq!(t.check(), Err(TranscriptError::BadSignature));
    }
}
