//! Integration tests of the `agora` binary, run as real processes.

mod devnet;
mod gateway;
mod models;
mod network;
mod node_crash;
#[path = "../../../crates/store/tests/peers.rs"]
mod peers;
mod validators;
mod verification;
