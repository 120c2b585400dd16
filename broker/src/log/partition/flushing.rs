//! The partition's side of the flusher: what a sync must cover, and what it did.

use super::*;

impl PartitionLog {
    /// What must be synced to make everything appended so far durable; `Ok(None)` if it
    /// already is; `Err` (the reason) when the partition is offline, since nothing can be
    /// promised about data written after a failed fsync.
    pub fn flush_work(&self) -> Result<Option<FlushWork>, String> {
        let mut state = self.lock();
        if let Some(reason) = &state.offline {
            return Err(reason.clone());
        }
        if state.flushed_offset >= state.log_end_offset && !state.dir_needs_sync {
            return Ok(None);
        }
        let mut files = std::mem::take(&mut state.unflushed_files);
        if let Some(active) = state.segments.values().next_back() {
            files.push(active.log_file());
        }
        let dir = std::mem::take(&mut state.dir_needs_sync).then(|| self.dir.clone());
        state.messages_since_flush = 0;
        Ok(Some(FlushWork {
            files,
            dir,
            up_to: state.log_end_offset,
        }))
    }

    /// An fsync of `work` failed. After a failed fsync the kernel may have dropped the dirty
    /// pages and reports the error once, so a retry that succeeds proves nothing
    /// ("fsyncgate"): the partition goes offline and no offset past `flushed_offset` is ever
    /// acknowledged. A restart recovers from the last recovery point. The files stay listed,
    /// so nothing that needed a sync is forgotten.
    pub fn flush_failed(&self, work: FlushWork, error: &io::Error) {
        let mut state = self.lock();
        let reason = format!(
            "fsync failed ({error}); offsets from {} on are not known to be durable",
            state.flushed_offset
        );
        tracing::error!(partition = %self.topic_partition, "{reason}; partition offline until a restart recovers it");
        state.offline.get_or_insert(reason);
        let mut files = work.files;
        files.append(&mut state.unflushed_files);
        state.unflushed_files = files;
        state.dir_needs_sync |= work.dir.is_some();
    }

    pub fn mark_flushed(&self, up_to: i64) {
        let mut state = self.lock();
        state.flushed_offset = state.flushed_offset.max(up_to);
        if state.flushed_offset >= state.log_end_offset {
            state.dirty_since_ms = None;
        }
    }

    /// The log end offset to flush up to when data has been unflushed for `flush.ms` or more
    /// (Kafka's time-based flush policy); `None` when nothing is due.
    pub fn flush_due_by_time(&self, now_ms: i64) -> Option<i64> {
        let state = self.lock();
        let since = state.dirty_since_ms?;
        (state.offline.is_none() && now_ms.saturating_sub(since) >= state.config.flush_ms)
            .then_some(state.log_end_offset)
    }

    pub fn flushed_offset(&self) -> i64 {
        self.lock().flushed_offset
    }
}
