//! Retention (`retention.ms`, `retention.bytes`) and DeleteRecords: what moves the log start offset.

use super::*;

impl PartitionLog {
    /// Deletes whole segments past `retention_ms` (by their largest timestamp) or beyond
    /// `retention_bytes`, oldest first, and advances the log start offset to the first segment
    /// left. As in Kafka (`UnifiedLog.deleteOldSegments`), the active segment is deleted too
    /// when it is due and holds data: a new empty one is rolled at the log end offset first,
    /// so the log end offset stays put and earliest = latest.
    pub fn apply_retention(&self, now_ms: i64) -> io::Result<usize> {
        let doomed: Vec<Segment> = {
            let mut state = self.lock();
            if state.deleted || state.offline.is_some() {
                // An offline partition is left as found, for the operator.
                return Ok(0);
            }
            let config = state.config.clone();
            let mut total: i64 = state.segments.values().map(|s| s.size as i64).sum();
            let mut doomed_bases = Vec::new();
            for segment in state.segments.values() {
                if segment.is_empty() {
                    // Only the active segment can be empty.
                    break;
                }
                let newest = if segment.max_timestamp >= 0 {
                    segment.max_timestamp
                } else {
                    segment.created_ms
                };
                let expired = config.retention_ms >= 0 && now_ms - newest > config.retention_ms;
                let too_big = config.retention_bytes >= 0
                    && total - segment.size as i64 >= config.retention_bytes;
                if !(expired || too_big) {
                    break;
                }
                total -= segment.size as i64;
                doomed_bases.push(segment.base_offset);
            }
            if doomed_bases.len() == state.segments.len() {
                let log_end_offset = state.log_end_offset;
                let segment = Segment::create(&self.dir, log_end_offset, now_ms)?;
                if let Some(active) = state.segments.values_mut().next_back() {
                    active.seal();
                }
                state.dir_needs_sync = true;
                state.segments.insert(log_end_offset, segment);
            }
            let doomed: Vec<Segment> = doomed_bases
                .iter()
                .filter_map(|b| state.segments.remove(b))
                .collect();
            // Only deleting segments moves the start (to the new first segment): a head that
            // compaction thinned out keeps it.
            if !doomed.is_empty() {
                if let Some(first) = state.segments.keys().next().copied() {
                    state.log_start_offset = state.log_start_offset.max(first);
                }
                let start = state.log_start_offset;
                state.producers.forget_below(start);
            }
            doomed
        };
        for segment in &doomed {
            segment.delete_files()?;
        }
        if !doomed.is_empty() {
            tracing::info!(
                partition = %self.topic_partition,
                segments = doomed.len(),
                log_start_offset = self.offsets().log_start_offset,
                "retention deleted segments"
            );
        }
        Ok(doomed.len())
    }

    /// Puts back a log start offset recorded before a restart (DeleteRecords moves it inside
    /// a segment, which the segment files alone do not show).
    /// A checkpointed offset past the log end cannot be right (the checkpoint is damaged or
    /// from another log): it is ignored with a warning rather than hiding every record.
    pub fn restore_log_start_offset(&self, offset: i64) {
        let mut state = self.lock();
        if offset > state.log_end_offset {
            tracing::warn!(
                partition = %self.topic_partition,
                checkpoint = offset,
                log_end_offset = state.log_end_offset,
                "log-start-offset-checkpoint is past the end of the log; ignored"
            );
            return;
        }
        state.log_start_offset = state.log_start_offset.max(offset);
    }

    /// DeleteRecords: moves the log start offset up to `offset` (-1: the high watermark) and
    /// deletes the segments wholly below it, never the active one. Returns the new log start
    /// offset (the low watermark).
    pub fn delete_records(&self, offset: i64) -> Result<i64, DeleteRecordsError> {
        let (doomed, low_watermark) = {
            let mut state = self.lock();
            if state.deleted {
                return Err(DeleteRecordsError::Deleted);
            }
            if let Some(reason) = &state.offline {
                return Err(DeleteRecordsError::Offline(reason.clone()));
            }
            if !state.config.delete {
                return Err(DeleteRecordsError::PolicyViolation);
            }
            let target = if offset == -1 {
                state.log_end_offset
            } else {
                offset
            };
            if target < 0 || target > state.log_end_offset {
                return Err(DeleteRecordsError::OffsetOutOfRange {
                    offset,
                    high_watermark: state.log_end_offset,
                });
            }
            state.log_start_offset = state.log_start_offset.max(target);
            let start = state.log_start_offset;
            state.producers.forget_below(start);
            let bases: Vec<i64> = state.segments.keys().copied().collect();
            let mut doomed = Vec::new();
            for pair in bases.windows(2) {
                // A segment ends where the next begins.
                if pair[1] <= state.log_start_offset {
                    if let Some(segment) = state.segments.remove(&pair[0]) {
                        doomed.push(segment);
                    }
                }
            }
            (doomed, state.log_start_offset)
        };
        for segment in &doomed {
            segment.delete_files()?;
        }
        tracing::info!(partition = %self.topic_partition, log_start_offset = low_watermark, segments = doomed.len(), "records deleted");
        Ok(low_watermark)
    }
}
