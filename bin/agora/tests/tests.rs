//! Integration tests of the `agora` binary, run as real processes.

mod devnet;
mod gateway;
mod network;
mod node_crash;
mod verification;
