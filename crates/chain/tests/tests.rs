//! Integration tests of the ledger node, over real loopback HTTP.

mod follower;
mod node;
