//! OffsetCommit (v0-1 read by hand), OffsetFetch and OffsetDelete.

use super::*;

pub fn offset_commit(broker: &Arc<Broker>, ctx: &RequestContext, body: Bytes) -> Reply {
    if ctx.version < 2 {
        // The crate decodes v2+; v0-1 (Debian's sarama 1.22 still sends v1) are read by hand.
        // Their response has v2's layout.
        return match legacy_offset_commit(ctx.version, body) {
            Some(request) => commit_offsets(broker, request, ctx.version, 2),
            None => Reply::Now(Err(crate::api::RequestError::Decode {
                api: ctx.api_key,
                version: ctx.version,
                reason: "truncated or malformed OffsetCommit".into(),
            })),
        };
    }
    let request: OffsetCommitRequest = decode_or_close!(ctx, body);
    commit_offsets(broker, request, ctx.version, ctx.version)
}

/// OffsetCommit v0 (group, topics) and v1 (+ generation, member id, and a commit timestamp per
/// partition, which Kafka stopped honouring and we ignore) as the v2 structure.
fn legacy_offset_commit(version: i16, mut body: Bytes) -> Option<OffsetCommitRequest> {
    use bytes::Buf;
    fn string(body: &mut Bytes) -> Option<StrBytes> {
        if body.remaining() < 2 {
            return None;
        }
        let len = body.get_i16();
        if len < 0 {
            return Some(StrBytes::default());
        }
        let len = len as usize;
        if body.remaining() < len {
            return None;
        }
        StrBytes::from_utf8(body.split_to(len)).ok()
    }
    fn count(body: &mut Bytes, min_item_bytes: usize) -> Option<usize> {
        if body.remaining() < 4 {
            return None;
        }
        let n = body.get_i32();
        // Bounded by what the frame can hold, so a hostile count allocates nothing.
        usize::try_from(n.max(0))
            .ok()
            .filter(|n| n.saturating_mul(min_item_bytes) <= body.remaining())
    }
    let group_id = string(&mut body)?;
    let mut request = OffsetCommitRequest::default()
        .with_group_id(GroupId(group_id))
        .with_generation_id_or_member_epoch(-1)
        .with_retention_time_ms(-1);
    if version >= 1 {
        if body.remaining() < 4 {
            return None;
        }
        request.generation_id_or_member_epoch = body.get_i32();
        request.member_id = string(&mut body)?;
    }
    let partition_bytes = if version >= 1 { 22 } else { 14 };
    let topics = count(&mut body, 6)?;
    for _ in 0..topics {
        let name = string(&mut body)?;
        let partitions = count(&mut body, partition_bytes)?;
        let mut topic =
            offset_commit_request::OffsetCommitRequestTopic::default().with_name(TopicName(name));
        for _ in 0..partitions {
            if body.remaining() < partition_bytes {
                return None;
            }
            let partition_index = body.get_i32();
            let committed_offset = body.get_i64();
            if version >= 1 {
                let _commit_timestamp = body.get_i64();
            }
            let metadata = string(&mut body)?;
            topic.partitions.push(
                offset_commit_request::OffsetCommitRequestPartition::default()
                    .with_partition_index(partition_index)
                    .with_committed_offset(committed_offset)
                    .with_committed_leader_epoch(-1)
                    .with_committed_metadata(Some(metadata)),
            );
        }
        request.topics.push(topic);
    }
    body.is_empty().then_some(request)
}

fn commit_offsets(
    broker: &Arc<Broker>,
    request: OffsetCommitRequest,
    version: i16,
    response_version: i16,
) -> Reply {
    let offsets: Vec<CommitOffset> = request
        .topics
        .iter()
        .flat_map(|topic| {
            topic.partitions.iter().map(move |p| CommitOffset {
                topic: topic.name.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: if version >= 6 {
                    p.committed_leader_epoch
                } else {
                    -1
                },
                metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
            })
        })
        .collect();
    let order: Vec<(String, Vec<i32>)> = request
        .topics
        .iter()
        .map(|t| {
            (
                t.name.to_string(),
                t.partitions.iter().map(|p| p.partition_index).collect(),
            )
        })
        .collect();
    let commit = CommitRequest {
        group_id: request.group_id.to_string(),
        generation_id: request.generation_id_or_member_epoch,
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.as_ref().map(|i| i.to_string()),
        retention_time_ms: if (2..=4).contains(&version) {
            request.retention_time_ms
        } else {
            -1
        },
        offsets,
    };
    // The topic check and the commit happen in one step, under the group's shard lock (see
    // `GroupCoordinator::commit`), so a topic deleted meanwhile is refused, never resurrected.
    let (refused, stored) = match coordinator(broker) {
        Ok(c) => {
            let (unknown, stored) = c.commit(commit, |topic, partition| {
                broker
                    .metadata
                    .image()
                    .topic(topic)
                    .is_some_and(|t| (0..t.partitions).contains(&partition))
            });
            let refused: Vec<(String, i32, i16)> = unknown
                .into_iter()
                .map(|(t, p)| (t, p, ResponseError::UnknownTopicOrPartition.code()))
                .collect();
            (refused, futures_util::future::Either::Left(stored))
        }
        Err(e) => (
            Vec::new(),
            futures_util::future::Either::Right(std::future::ready(Err(e))),
        ),
    };
    Reply::Wait(Box::pin(async move {
        let outcome = stored.await;
        let error_of = |topic: &str, partition: i32| -> i16 {
            if let Some((_, _, c)) = refused
                .iter()
                .find(|(t, p, _)| t == topic && *p == partition)
            {
                return *c;
            }
            match &outcome {
                Err(e) => code(*e),
                Ok(errors) => errors
                    .iter()
                    .find(|(t, p, _)| t == topic && *p == partition)
                    .map_or(0, |(_, _, e)| code(*e)),
            }
        };
        let response = OffsetCommitResponse::default().with_topics(
            order
                .iter()
                .map(|(topic, partitions)| {
                    OffsetCommitResponseTopic::default()
                        .with_name(TopicName(s(topic.clone())))
                        .with_partitions(
                            partitions
                                .iter()
                                .map(|p| {
                                    OffsetCommitResponsePartition::default()
                                        .with_partition_index(*p)
                                        .with_error_code(error_of(topic, *p))
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
        encode(&response, response_version)
    }))
}

type Partitions = Vec<(String, Vec<i32>)>;
/// (partition, committed offset, leader epoch, metadata) by topic.
type FetchedTopics = Vec<(String, Vec<(i32, i64, i32, String)>)>;

/// One group's offsets for OffsetFetch: the partitions asked for, or all when `None`.
fn fetch_group(
    coordinator: &Result<Arc<GroupCoordinator>, GroupError>,
    group_id: &str,
    wanted: Option<&[(String, Vec<i32>)]>,
) -> Result<FetchedTopics, GroupError> {
    let found = match coordinator {
        Ok(c) => c.fetch_offsets(group_id, wanted)?,
        // No offsets topic yet: nothing was ever committed.
        Err(_) => match wanted {
            Some(wanted) => wanted
                .iter()
                .flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p, None)))
                .collect(),
            None => Vec::new(),
        },
    };
    let mut topics: FetchedTopics = Vec::new();
    for (topic, partition, value) in found {
        let entry = match value {
            Some(v) => (partition, v.offset, v.leader_epoch, v.metadata),
            // Kafka answers partitions without a commit with offset -1 and empty metadata.
            None => (partition, -1, -1, String::new()),
        };
        match topics.iter_mut().find(|(t, _)| *t == topic) {
            Some((_, partitions)) => partitions.push(entry),
            None => topics.push((topic, vec![entry])),
        }
    }
    Ok(topics)
}

/// With `require_stable` (OffsetFetch v7+, KIP-447), the partitions whose offsets are in an open
/// transaction: they answer UNSTABLE_OFFSET_COMMIT, which the consumer retries.
fn unstable(
    coordinator: &Result<Arc<GroupCoordinator>, GroupError>,
    group_id: &str,
    require_stable: bool,
) -> std::collections::HashSet<(String, i32)> {
    match coordinator {
        Ok(c) if require_stable => c.unstable_partitions(group_id).unwrap_or_default(),
        _ => Default::default(),
    }
}

pub fn offset_fetch(broker: &Arc<Broker>, ctx: &RequestContext, body: Bytes) -> Reply {
    let request: OffsetFetchRequest = decode_or_close!(ctx, body);
    let version = ctx.version;
    let coordinator = coordinator(broker);
    if version >= 8 {
        let groups = request
            .groups
            .into_iter()
            .map(|g| {
                let wanted: Option<Partitions> = g.topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| (t.name.to_string(), t.partition_indexes))
                        .collect()
                });
                let group_id = g.group_id.to_string();
                let unstable = unstable(&coordinator, &group_id, request.require_stable);
                match fetch_group(&coordinator, &group_id, wanted.as_deref()) {
                    Ok(topics) => OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id)
                        .with_topics(
                            topics
                                .into_iter()
                                .map(|(topic, partitions)| {
                                    OffsetFetchResponseTopics::default()
                                        .with_name(TopicName(s(topic.clone())))
                                        .with_partitions(
                                            partitions
                                                .into_iter()
                                                .map(|(p, offset, epoch, metadata)| {
                                                    let partition =
                                                        OffsetFetchResponsePartitions::default()
                                                            .with_partition_index(p)
                                                            .with_committed_offset(offset)
                                                            .with_committed_leader_epoch(epoch)
                                                            .with_metadata(Some(s(metadata)));
                                                    if unstable.contains(&(topic.clone(), p)) {
                                                        partition
                                                            .with_committed_offset(-1)
                                                            .with_error_code(
                                                                ResponseError::UnstableOffsetCommit
                                                                    .code(),
                                                            )
                                                    } else {
                                                        partition
                                                    }
                                                })
                                                .collect(),
                                        )
                                })
                                .collect(),
                        ),
                    Err(e) => OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id)
                        .with_error_code(code(e)),
                }
            })
            .collect();
        let response = OffsetFetchResponse::default().with_groups(groups);
        return Reply::Now(encode(&response, version));
    }
    let wanted: Option<Partitions> = request.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.to_string(), t.partition_indexes))
            .collect()
    });
    let unstable = unstable(&coordinator, &request.group_id, request.require_stable);
    let (topics, error) = match fetch_group(&coordinator, &request.group_id, wanted.as_deref()) {
        Ok(topics) => (topics, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let mut response = OffsetFetchResponse::default().with_topics(
        topics
            .into_iter()
            .map(|(topic, partitions)| {
                OffsetFetchResponseTopic::default()
                    .with_name(TopicName(s(topic.clone())))
                    .with_partitions(
                        partitions
                            .into_iter()
                            .map(|(p, offset, epoch, metadata)| {
                                let partition = OffsetFetchResponsePartition::default()
                                    .with_partition_index(p)
                                    .with_committed_offset(offset)
                                    .with_committed_leader_epoch(epoch)
                                    .with_metadata(Some(s(metadata)));
                                if unstable.contains(&(topic.clone(), p)) {
                                    partition
                                        .with_committed_offset(-1)
                                        .with_error_code(ResponseError::UnstableOffsetCommit.code())
                                } else {
                                    partition
                                }
                            })
                            .collect(),
                    )
            })
            .collect(),
    );
    if let Some(e) = error {
        // v2+ has a top-level error; v1 can only say it per partition, and has none to say it
        // on, so the client sees an empty answer and retries on its timer.
        response.error_code = if version >= 2 { code(e) } else { 0 };
    }
    Reply::Now(encode(&response, version))
}

pub fn offset_delete(broker: &Arc<Broker>, ctx: &RequestContext, body: Bytes) -> Reply {
    let request: OffsetDeleteRequest = decode_or_close!(ctx, body);
    let version = ctx.version;
    let partitions: Vec<(String, i32)> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.to_string(), p.partition_index))
        })
        .collect();
    let coordinator = coordinator(broker);
    let group_id = request.group_id.to_string();
    Reply::Apply(Box::pin(async move {
        let outcome = match &coordinator {
            Ok(c) => c.delete_offsets(&group_id, &partitions).await,
            Err(_) => Err(GroupError::GroupIdNotFound),
        };
        let response = match outcome {
            Err(e) => OffsetDeleteResponse::default().with_error_code(code(e)),
            Ok(results) => {
                let mut topics: Vec<OffsetDeleteResponseTopic> = Vec::new();
                for ((topic, partition), result) in partitions.into_iter().zip(results) {
                    let entry = OffsetDeleteResponsePartition::default()
                        .with_partition_index(partition)
                        .with_error_code(result.err().map_or(0, code));
                    match topics.iter_mut().find(|t| t.name.as_str() == topic) {
                        Some(t) => t.partitions.push(entry),
                        None => topics.push(
                            OffsetDeleteResponseTopic::default()
                                .with_name(TopicName(s(topic)))
                                .with_partitions(vec![entry]),
                        ),
                    }
                }
                OffsetDeleteResponse::default().with_topics(topics)
            }
        };
        encode(&response, version)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};

    #[test]
    fn legacy_offset_commit_parses_and_never_panics() {
        let mut body = BytesMut::new();
        body.put_i16(1);
        body.put_slice(b"g");
        body.put_i32(7); // generation
        body.put_i16(1);
        body.put_slice(b"m");
        body.put_i32(1);
        body.put_i16(1);
        body.put_slice(b"t");
        body.put_i32(1);
        body.put_i32(3);
        body.put_i64(99);
        body.put_i64(-1);
        body.put_i16(2);
        body.put_slice(b"md");
        let body = body.freeze();
        let parsed = legacy_offset_commit(1, body.clone()).expect("parses");
        assert_eq!(parsed.generation_id_or_member_epoch, 7);
        assert_eq!(parsed.member_id.as_str(), "m");
        let p = &parsed.topics[0].partitions[0];
        assert_eq!((p.partition_index, p.committed_offset), (3, 99));
        assert_eq!(p.committed_metadata.as_deref(), Some("md"));
        for cut in 0..body.len() {
            assert!(
                legacy_offset_commit(1, body.slice(..cut)).is_none(),
                "cut at {cut}"
            );
        }
        // A count far beyond the frame is refused before anything is allocated.
        let mut hostile = BytesMut::new();
        hostile.put_i16(0);
        hostile.put_i32(i32::MAX);
        assert!(legacy_offset_commit(0, hostile.freeze()).is_none());
    }
}
