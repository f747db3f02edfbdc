//! Agora ledger tests.
