//! Integration tests of the ledger node, over real loopback HTTP.

mod node;
