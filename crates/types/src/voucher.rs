//! Payment-channel vouchers: the payer's signed promise of a cumulative amount.

use borsh::{BorshDeserialize, BorshSerialize};

use crate::{
    encoding::{encode, Wire, MAX_MESSAGE_BYTES},
    keys::{self, AccountId, Keypair, Signature},
    signing::{domain, ChainId},
    Amount, Hash,
};

/// The cumulative amount a payer owes a payee on one channel.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Voucher {
    /// Chain the channel lives on.
    pub chain_id: ChainId,
    /// The channel.
    pub channel_id: Hash,
    /// Who pays and signs.
    pub payer: AccountId,
    /// Who is paid.
    pub payee: AccountId,
    /// Total owed on the channel so far; redeeming pays the increase since the last redeem.
    pub cumulative: Amount,
}

/// A voucher with the payer's signature (domain [`domain::VOUCHER`]).
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SignedVoucher {
    /// The voucher.
    pub voucher: Voucher,
    /// The payer's signature.
    pub signature: Signature,
}

impl Voucher {
    /// Signs the voucher with the payer's key.
    pub fn sign(self, payer: &Keypair) -> SignedVoucher {
        let signature = payer.sign(domain::VOUCHER, &self.chain_id, &encode(&self));
        SignedVoucher {
            voucher: self,
            signature,
        }
    }
}

impl SignedVoucher {
    /// Checks the payer's signature for the voucher's own chain id.
    pub fn verify(&self) -> Result<(), keys::Error> {
        let voucher = &self.voucher;
        voucher.payer.verify(
            domain::VOUCHER,
            &voucher.chain_id,
            &encode(voucher),
            &self.signature,
        )
    }
}

impl Wire for SignedVoucher {
    const MAX_BYTES: usize = MAX_MESSAGE_BYTES;
}
