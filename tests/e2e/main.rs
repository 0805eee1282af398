//! End-to-end tests across pushsync parts.
