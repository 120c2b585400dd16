//! Request versions Kafka 3.x served that the `kafka-protocol` crate no longer decodes (it is
//! generated from Kafka 4's schemas, which dropped them in KIP-896): DescribeConfigs v0,
//! CreateTopics v0-1, ListOffsets v0, Produce v0-2 and Fetch v0-3. Old clients still send them
//! (sarama 1.22's ClusterAdmin, kafka-go 0.2.1).
//!
//! Requests are turned into the next version the crate does decode: DescribeConfigs v0 and
//! CreateTopics v0 are v1/v2 without their last boolean (`include_synonyms`, `validate_only`),
//! so appending `false` makes them that version; CreateTopics v1 is laid out as v2. ListOffsets
//! v0 differs inside each partition (`max_num_offsets`), so it is read here. Handlers answer
//! with the newer response struct, and this module writes it in the old layout. Produce v0-2
//! and Fetch v0-3 are read here into the first version the crate decodes; their message sets
//! (formats v0/v1) are converted by `log::message_set`.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    BrokerId, CreateTopicsResponse, DescribeConfigsResponse, FetchRequest, FetchResponse,
    ListOffsetsRequest, ListOffsetsResponse, ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};

use super::{RequestContext, RequestError};

/// `ConfigSource.DEFAULT_CONFIG`: what DescribeConfigs v0 reports as `is_default`.
const DEFAULT_CONFIG_SOURCE: i8 = 5;
/// Bound on array lengths read here, before anything is allocated for them.
const MAX_ARRAY_LENGTH: usize = 100_000;

fn malformed(ctx: &RequestContext, reason: &str) -> RequestError {
    RequestError::Decode {
        api: ctx.api_key,
        version: ctx.version,
        reason: reason.to_string(),
    }
}

/// Decodes `body` as version `as_version` of `T` after appending `suffix` (the defaults of the
/// fields the old version lacks at its end).
pub fn decode_as<T: Decodable>(
    ctx: &RequestContext,
    body: Bytes,
    as_version: i16,
    suffix: &[u8],
) -> Result<T, RequestError> {
    let mut extended = BytesMut::with_capacity(body.len() + suffix.len());
    extended.put_slice(&body);
    extended.put_slice(suffix);
    let mut extended = extended.freeze();
    let decoded =
        T::decode(&mut extended, as_version).map_err(|e| malformed(ctx, &e.to_string()))?;
    if extended.has_remaining() {
        return Err(malformed(ctx, "bytes left after the request"));
    }
    Ok(decoded)
}

fn put_string(buf: &mut BytesMut, s: &str) {
    let bytes = s.as_bytes();
    buf.put_i16(bytes.len().min(i16::MAX as usize) as i16);
    buf.put_slice(&bytes[..bytes.len().min(i16::MAX as usize)]);
}

fn put_nullable_string(buf: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_string(buf, s),
        None => buf.put_i16(-1),
    }
}

fn put_length(buf: &mut BytesMut, n: usize) {
    buf.put_i32(i32::try_from(n).unwrap_or(i32::MAX));
}

/// DescribeConfigs v0: no synonyms, and `is_default` where later versions have a source.
pub fn describe_configs_v0(response: &DescribeConfigsResponse) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i32(response.throttle_time_ms);
    put_length(&mut buf, response.results.len());
    for result in &response.results {
        buf.put_i16(result.error_code);
        put_nullable_string(&mut buf, result.error_message.as_deref());
        buf.put_i8(result.resource_type);
        put_string(&mut buf, &result.resource_name);
        put_length(&mut buf, result.configs.len());
        for config in &result.configs {
            put_string(&mut buf, &config.name);
            put_nullable_string(&mut buf, config.value.as_deref());
            buf.put_u8(u8::from(config.read_only));
            buf.put_u8(u8::from(config.config_source == DEFAULT_CONFIG_SOURCE));
            buf.put_u8(u8::from(config.is_sensitive));
        }
    }
    buf.freeze()
}

/// CreateTopics v0 (name, error code per topic) and v1 (plus the error message).
pub fn create_topics_v0_v1(response: &CreateTopicsResponse, version: i16) -> Bytes {
    let mut buf = BytesMut::new();
    put_length(&mut buf, response.topics.len());
    for topic in &response.topics {
        put_string(&mut buf, &topic.name);
        buf.put_i16(topic.error_code);
        if version >= 1 {
            // Success carries null, as Kafka sends it (the crate's default is "").
            let message = topic.error_message.as_deref().filter(|m| !m.is_empty());
            put_nullable_string(&mut buf, message);
        }
    }
    buf.freeze()
}

fn get_i32(ctx: &RequestContext, body: &mut Bytes) -> Result<i32, RequestError> {
    if body.remaining() < 4 {
        return Err(malformed(ctx, "truncated"));
    }
    Ok(body.get_i32())
}

fn get_i64(ctx: &RequestContext, body: &mut Bytes) -> Result<i64, RequestError> {
    if body.remaining() < 8 {
        return Err(malformed(ctx, "truncated"));
    }
    Ok(body.get_i64())
}

fn get_array_length(ctx: &RequestContext, body: &mut Bytes) -> Result<usize, RequestError> {
    let n = get_i32(ctx, body)?;
    let n = usize::try_from(n).map_err(|_| malformed(ctx, "negative array length"))?;
    if n > MAX_ARRAY_LENGTH || n > body.remaining() {
        return Err(malformed(ctx, "array longer than the request"));
    }
    Ok(n)
}

fn get_string(ctx: &RequestContext, body: &mut Bytes) -> Result<String, RequestError> {
    if body.remaining() < 2 {
        return Err(malformed(ctx, "truncated"));
    }
    let n = usize::try_from(body.get_i16()).map_err(|_| malformed(ctx, "null string"))?;
    if body.remaining() < n {
        return Err(malformed(ctx, "truncated string"));
    }
    String::from_utf8(body.split_to(n).to_vec()).map_err(|_| malformed(ctx, "string not UTF-8"))
}

/// ListOffsets v0: as v1, plus `max_num_offsets` per partition (returned alongside, in the
/// request's order of topics and partitions).
pub fn list_offsets_v0_request(
    ctx: &RequestContext,
    mut body: Bytes,
) -> Result<(ListOffsetsRequest, Vec<Vec<i32>>), RequestError> {
    let replica_id = get_i32(ctx, &mut body)?;
    let topic_count = get_array_length(ctx, &mut body)?;
    let mut topics = Vec::with_capacity(topic_count);
    let mut max_offsets = Vec::with_capacity(topic_count);
    for _ in 0..topic_count {
        let name = get_string(ctx, &mut body)?;
        let partition_count = get_array_length(ctx, &mut body)?;
        let mut partitions = Vec::with_capacity(partition_count);
        let mut maxes = Vec::with_capacity(partition_count);
        for _ in 0..partition_count {
            let partition_index = get_i32(ctx, &mut body)?;
            let timestamp = get_i64(ctx, &mut body)?;
            maxes.push(get_i32(ctx, &mut body)?);
            partitions.push(
                ListOffsetsPartition::default()
                    .with_partition_index(partition_index)
                    .with_timestamp(timestamp),
            );
        }
        topics.push(
            ListOffsetsTopic::default()
                .with_name(topic_name(name))
                .with_partitions(partitions),
        );
        max_offsets.push(maxes);
    }
    if body.has_remaining() {
        return Err(malformed(ctx, "bytes left after the request"));
    }
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(replica_id))
        .with_topics(topics);
    Ok((request, max_offsets))
}

/// ListOffsets v0's answer: a list of offsets per partition (Kafka's legacy "offsets before"),
/// here the one offset found, if `max_num_offsets` allows one.
pub fn list_offsets_v0_response(response: &ListOffsetsResponse, max_offsets: &[Vec<i32>]) -> Bytes {
    let mut buf = BytesMut::new();
    put_length(&mut buf, response.topics.len());
    for (t, topic) in response.topics.iter().enumerate() {
        put_string(&mut buf, &topic.name);
        put_length(&mut buf, topic.partitions.len());
        for (p, partition) in topic.partitions.iter().enumerate() {
            buf.put_i32(partition.partition_index);
            buf.put_i16(partition.error_code);
            let allowed = max_offsets
                .get(t)
                .and_then(|m| m.get(p))
                .copied()
                .unwrap_or(1);
            if partition.error_code == 0 && partition.offset >= 0 && allowed > 0 {
                buf.put_i32(1);
                buf.put_i64(partition.offset);
            } else {
                buf.put_i32(0);
            }
        }
    }
    buf.freeze()
}

/// A nullable `bytes` field (i32 length, -1 null).
fn get_nullable_bytes(
    ctx: &RequestContext,
    body: &mut Bytes,
) -> Result<Option<Bytes>, RequestError> {
    let n = get_i32(ctx, body)?;
    if n == -1 {
        return Ok(None);
    }
    let n = usize::try_from(n).map_err(|_| malformed(ctx, "negative length"))?;
    if body.remaining() < n {
        return Err(malformed(ctx, "truncated bytes"));
    }
    Ok(Some(body.split_to(n)))
}

fn topic_name(name: String) -> TopicName {
    TopicName(StrBytes::from_string(name))
}

/// Produce v0-2 (acks, timeout, each partition's message set) in the v3 form, the message sets
/// still in formats v0/v1: the caller converts them.
pub fn produce_request(
    ctx: &RequestContext,
    mut body: Bytes,
) -> Result<ProduceRequest, RequestError> {
    if body.remaining() < 6 {
        return Err(malformed(ctx, "truncated"));
    }
    let acks = body.get_i16();
    let timeout_ms = get_i32(ctx, &mut body)?;
    let topic_count = get_array_length(ctx, &mut body)?;
    let mut topics = Vec::with_capacity(topic_count);
    for _ in 0..topic_count {
        let name = get_string(ctx, &mut body)?;
        let partition_count = get_array_length(ctx, &mut body)?;
        let mut partitions = Vec::with_capacity(partition_count);
        for _ in 0..partition_count {
            let index = get_i32(ctx, &mut body)?;
            let records = get_nullable_bytes(ctx, &mut body)?;
            partitions.push(
                PartitionProduceData::default()
                    .with_index(index)
                    .with_records(records),
            );
        }
        topics.push(
            TopicProduceData::default()
                .with_name(topic_name(name))
                .with_partition_data(partitions),
        );
    }
    if body.has_remaining() {
        return Err(malformed(ctx, "bytes left after the request"));
    }
    Ok(ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(timeout_ms)
        .with_topic_data(topics))
}

/// Produce v0 (base offset per partition), v1 (plus the throttle time, last) and v2 (plus
/// the log append time per partition).
pub fn produce_response(response: &ProduceResponse, version: i16) -> Bytes {
    let mut buf = BytesMut::new();
    put_length(&mut buf, response.responses.len());
    for topic in &response.responses {
        put_string(&mut buf, &topic.name);
        put_length(&mut buf, topic.partition_responses.len());
        for partition in &topic.partition_responses {
            buf.put_i32(partition.index);
            buf.put_i16(partition.error_code);
            buf.put_i64(partition.base_offset);
            if version >= 2 {
                buf.put_i64(partition.log_append_time_ms);
            }
        }
    }
    if version >= 1 {
        buf.put_i32(response.throttle_time_ms);
    }
    buf.freeze()
}

/// Fetch v0-3 in the v4 form (read_uncommitted, no session). Before v3 a response had no
/// overall limit, only the partitions' (Kafka's `Integer.MAX_VALUE`).
pub fn fetch_request(ctx: &RequestContext, mut body: Bytes) -> Result<FetchRequest, RequestError> {
    let replica_id = get_i32(ctx, &mut body)?;
    let max_wait_ms = get_i32(ctx, &mut body)?;
    let min_bytes = get_i32(ctx, &mut body)?;
    let max_bytes = if ctx.version >= 3 {
        get_i32(ctx, &mut body)?
    } else {
        i32::MAX
    };
    let topic_count = get_array_length(ctx, &mut body)?;
    let mut topics = Vec::with_capacity(topic_count);
    for _ in 0..topic_count {
        let name = get_string(ctx, &mut body)?;
        let partition_count = get_array_length(ctx, &mut body)?;
        let mut partitions = Vec::with_capacity(partition_count);
        for _ in 0..partition_count {
            let partition = get_i32(ctx, &mut body)?;
            let fetch_offset = get_i64(ctx, &mut body)?;
            let partition_max_bytes = get_i32(ctx, &mut body)?;
            partitions.push(
                FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(fetch_offset)
                    .with_partition_max_bytes(partition_max_bytes),
            );
        }
        topics.push(
            FetchTopic::default()
                .with_topic(topic_name(name))
                .with_partitions(partitions),
        );
    }
    if body.has_remaining() {
        return Err(malformed(ctx, "bytes left after the request"));
    }
    Ok(FetchRequest::default()
        .with_replica_id(BrokerId(replica_id))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(min_bytes)
        .with_max_bytes(max_bytes)
        .with_topics(topics))
}

/// Fetch v0 (per partition: error, high watermark, records) and v1-3 (plus the throttle time,
/// first). The records must already be message sets of the version's format.
pub fn fetch_response(response: &FetchResponse, version: i16) -> Bytes {
    let mut buf = BytesMut::new();
    if version >= 1 {
        buf.put_i32(response.throttle_time_ms);
    }
    put_length(&mut buf, response.responses.len());
    for topic in &response.responses {
        put_string(&mut buf, &topic.topic);
        put_length(&mut buf, topic.partitions.len());
        for partition in &topic.partitions {
            buf.put_i32(partition.partition_index);
            buf.put_i16(partition.error_code);
            buf.put_i64(partition.high_watermark);
            match &partition.records {
                Some(records) => {
                    put_length(&mut buf, records.len());
                    buf.put_slice(records);
                }
                None => buf.put_i32(-1),
            }
        }
    }
    buf.freeze()
}
