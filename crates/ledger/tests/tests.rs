//! Integration tests of agora-ledger, one binary with a module per area.

mod tests {
    pub(crate) mod harness;

    mod bad_input;
    mod blocks;
    mod channels;
    mod governance;
    mod proofs;
    mod properties;
    mod registry;
    mod staking;
    mod tidy;
    mod transfers;
}
