//! Integration tests of the `agora` binary, run as real processes.

mod node_crash;
