//! Arbitrary bytes through transaction decoding.

#![no_main]

use agora_types::{encode, ChainId, SignedTx};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(tx) = SignedTx::from_bytes(data) {
        assert_eq!(encode(&tx), data, "decoding must be canonical");
        if let Ok(chain) = ChainId::new("agora-fuzz") {
            let _ = tx.verify(&chain);
        }
        let _ = tx.hash();
    }
});
