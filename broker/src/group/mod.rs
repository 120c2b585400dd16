//! The group coordinator: Kafka's classic consumer-group protocol (JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup), committed offsets, and their persistence in the internal compacted
//! topic `__consumer_offsets`, replayed at start.
//!
//! - `state`: the sans-IO state machine (time passed in, effects returned).
//! - `records`: the offsets topic's key/value layout, the same as Kafka's.
//! - `coordinator`: shards (one per offsets-topic partition), persistence, waiting requests.
//!
//! Must not depend on `server`, `api` or `kafka_protocol::messages`; it speaks domain types.
//! It uses `kafka_protocol::records` only to write and read its own record batches.

pub mod coordinator;
pub mod records;
pub mod state;

pub use coordinator::GroupCoordinator;
pub use state::{GroupError, GroupState};

/// The internal topic holding committed offsets and group metadata, as Kafka names it.
pub use crate::config::OFFSETS_TOPIC;
