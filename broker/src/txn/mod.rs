//! Producer ids: the blocks InitProducerId hands out. The transaction coordinator comes here.
//! (Per-partition producer state, which the log keeps, is `log::producer_state`.)
//!
//! Never depends on `api`, `server` or wire types.

pub mod coordinator;
pub mod producer_ids;
pub mod records;
pub mod state;
