//! Ledger integration tests.
