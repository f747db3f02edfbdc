//! Integration tests of the `agora` binary, run as real processes.

mod devnet;
mod node_crash;
