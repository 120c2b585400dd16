//! The partition's side of compaction: which segments the cleaner may take, and putting a cleaned
//! segment in place of the one it was made from.

use super::*;

impl PartitionLog {
    /// The closed segments the cleaner may compact now, oldest first, when the partition is
    /// due (see `LogConfig::cleaning_due`).
    pub fn cleanable_segments(&self, now_ms: i64) -> Option<crate::log::segment::Cleanable> {
        let state = self.lock();
        if state.deleted || state.offline.is_some() || !state.config.compact {
            return None;
        }
        let config = state.config.clone();
        // Only what lies wholly below the first open transaction: every transactional batch
        // there is decided (committed or aborted), as Kafka's first uncleanable offset.
        let stable_end = state
            .producers
            .first_unstable_offset()
            .unwrap_or(state.log_end_offset);
        let segments: Vec<&Segment> = state.segments.values().collect();
        let candidates: Vec<crate::log::segment::CleanableSegment> = segments
            .windows(2)
            .map(|w| w[0])
            .zip(segments.iter().skip(1).map(|next| next.base_offset))
            .take_while(|(s, next_base)| {
                now_ms.saturating_sub(s.max_timestamp) >= config.min_compaction_lag_ms
                    && *next_base <= stable_end
            })
            .map(|(s, _)| crate::log::segment::CleanableSegment {
                base_offset: s.base_offset,
                size: s.size,
                max_timestamp: s.max_timestamp,
                slice: s.slice_from(0),
            })
            .collect();
        let total: u64 = candidates.iter().map(|s| s.size).sum();
        let dirty: u64 = candidates
            .iter()
            .filter(|s| s.base_offset >= state.cleaned_up_to)
            .map(|s| s.size)
            .sum();
        let end = candidates
            .last()
            .and_then(|last| state.segments.range(last.base_offset + 1..).next())
            .map_or(0, |(base, _)| *base);
        let first = candidates.first().map_or(0, |s| s.base_offset);
        let aborted = state.producers.aborted_between(first, end);
        config
            .cleaning_due(dirty, total)
            .then_some(crate::log::segment::Cleanable {
                config,
                segments: candidates,
                aborted,
            })
    }

    /// Puts a cleaned segment in place of the one at `base_offset`, if that one is still there
    /// unchanged; `None` deletes the segment (nothing in it survived).
    pub fn install_cleaned(
        &self,
        base_offset: i64,
        expected_size: u64,
        cleaned: Option<PathBuf>,
        config: &LogConfig,
        now_ms: i64,
    ) -> io::Result<()> {
        // Reading and indexing the cleaned copy, and the directory fsync after the rename,
        // happen outside the partition lock: appends and reads of the partition (on reactor
        // threads) wait only for the rename. Until the directory fsync a crash may bring back
        // the uncleaned segment, which holds every record the cleaned one does.
        let prepared = match &cleaned {
            Some(path) => {
                match Segment::open_cleaned(
                    &self.dir,
                    base_offset,
                    path,
                    config.index_interval_bytes,
                    now_ms,
                ) {
                    Ok(segment) => Some((path.clone(), segment)),
                    Err(e) => {
                        let _ = std::fs::remove_file(path);
                        return Err(e);
                    }
                }
            }
            None => None,
        };
        let mut state = self.lock();
        let unchanged = !state.deleted
            && state
                .segments
                .get(&base_offset)
                .is_some_and(|s| s.size == expected_size)
            && state.segments.keys().next_back() != Some(&base_offset);
        if !unchanged {
            if let Some(path) = cleaned {
                let _ = std::fs::remove_file(path);
            }
            return Ok(());
        }
        match prepared {
            Some((path, segment)) => {
                std::fs::rename(
                    &path,
                    self.dir.join(format!(
                        "{}.log",
                        crate::log::segment::file_stem(base_offset)
                    )),
                )?;
                state.segments.insert(base_offset, segment);
                drop(state);
                File::open(&self.dir)?.sync_all()?;
            }
            None => {
                if state.segments.keys().next() == Some(&base_offset) {
                    // The head keeps its base offset, which is the log start offset after a
                    // restart: compaction must never move it (only retention and
                    // DeleteRecords do, as in Kafka). The next closed segment takes its place.
                    return self.merge_into_emptied_head(&mut state, base_offset, config, now_ms);
                }
                if let Some(segment) = state.segments.remove(&base_offset) {
                    segment.delete_files()?;
                }
            }
        }
        Ok(())
    }

    /// The first segment lost every record to compaction: its files take the contents of the
    /// following closed segment under the head's name (`rename` replaces the head's `.log`
    /// atomically, so a crash leaves either the old head and its successor, or the merged
    /// head). Kafka gets the same effect by naming a group of cleaned segments after the first
    /// one's base offset. When the successor is the active segment the head is left as it
    /// was: a later pass merges it once the active segment has rolled.
    fn merge_into_emptied_head(
        &self,
        state: &mut LogState,
        head: i64,
        config: &LogConfig,
        now_ms: i64,
    ) -> io::Result<()> {
        let active = state.segments.keys().next_back().copied();
        let Some((next, next_end)) = state
            .segments
            .range(head + 1..)
            .next()
            .map(|(b, s)| (*b, s.next_offset))
        else {
            return Ok(());
        };
        // Relative offsets in the indexes are 32-bit; Kafka bounds a cleaner group the same way.
        if Some(next) == active || next_end - 1 - head > i64::from(i32::MAX) {
            return Ok(());
        }
        let stem = |base: i64| self.dir.join(crate::log::segment::file_stem(base));
        std::fs::rename(
            stem(next).with_extension("log"),
            stem(head).with_extension("log"),
        )?;
        File::open(&self.dir)?.sync_all()?;
        // Until the merged head is open, the old segments keep serving from their open files.
        let (mut segment, _) = Segment::open(
            &self.dir,
            head,
            false,
            config.index_interval_bytes,
            &mut ProducerStateManager::default(),
            now_ms,
        )?;
        segment.seal();
        state.segments.remove(&next);
        state.segments.insert(head, segment);
        for ext in ["index", "timeindex"] {
            match std::fs::remove_file(stem(next).with_extension(ext)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// Records that the closed segments up to `last_base_offset` were cleaned.
    pub fn mark_cleaned(&self, last_base_offset: i64) {
        let mut state = self.lock();
        state.cleaned_up_to = state.cleaned_up_to.max(last_base_offset + 1);
    }
}
