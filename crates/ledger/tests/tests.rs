//! Integration tests of agora-ledger, one binary with a module per area.

mod tests {
    pub(crate) mod harness;

    mod bad_input;
    mod blocks;
    mod channels;
    mod disputes;
    mod governance;
    mod proofs;
    mod properties;
    mod registry;
    mod scores;
    mod staking;
    mod tidy;
    mod transfers;
    mod validators;
}
