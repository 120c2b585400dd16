//! Helpers for wire-level tests against a running strom process.
