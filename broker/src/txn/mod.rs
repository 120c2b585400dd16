//! Producer ids and per-partition producer state (idempotence). Transactions come later.
//!
//! Depends only on `log::batch` header views; never on `api`, `server` or wire types.

pub mod producer_ids;
pub mod producer_state;
