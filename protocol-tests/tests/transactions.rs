//! The transaction APIs at the wire level, with the input a real client never sends: unknown
//! transactional ids, wrong producer ids and epochs, timeouts past the maximum, transactional
//! batches for partitions not in the transaction, markers from an administrator (for an open
//! transaction, for an unknown producer, from an older epoch or coordinator) and TxnOffsetCommit
//! from a stale generation. Each answer is the code Kafka gives.

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use protocol_tests::{BrokerProcess, Client};

const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_TXN_STATE: i16 = 48;
const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
const TRANSACTION_COORDINATOR_FENCED: i16 = 52;
const CONCURRENT_TRANSACTIONS: i16 = 51;
const OPERATION_NOT_ATTEMPTED: i16 = 55;
const PRODUCER_FENCED: i16 = 90;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const ILLEGAL_GENERATION: i16 = 22;
const UNKNOWN_MEMBER_ID: i16 = 25;

fn str(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn txn_id(id: &str) -> TransactionalId {
    TransactionalId(str(id))
}

/// FindCoordinator for a transactional id until the coordinator answers (the first call creates
/// `__transaction_state`, which is then loaded).
fn find_txn_coordinator(client: &mut Client, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = client
            .call(
                3,
                &FindCoordinatorRequest::default()
                    .with_key(str(id))
                    .with_key_type(1),
            )
            .expect("find coordinator");
        if response.error_code == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no transaction coordinator: {response:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn init(client: &mut Client, id: &str, timeout_ms: i32) -> InitProducerIdResponse {
    client
        .call(
            4,
            &InitProducerIdRequest::default()
                .with_transactional_id(Some(txn_id(id)))
                .with_transaction_timeout_ms(timeout_ms)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        )
        .expect("init producer id")
}

/// AddPartitionsToTxn (client form, v3): the per-partition codes, in request order.
fn add_partitions(
    client: &mut Client,
    id: &str,
    producer: (i64, i16),
    partitions: &[(&str, i32)],
    version: i16,
) -> Vec<i16> {
    let topics = partitions
        .iter()
        .map(|(topic, p)| {
            add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                .with_name(TopicName(str(topic)))
                .with_partitions(vec![*p])
        })
        .collect();
    let response = client
        .call(
            version,
            &AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(txn_id(id))
                .with_v3_and_below_producer_id(ProducerId(producer.0))
                .with_v3_and_below_producer_epoch(producer.1)
                .with_v3_and_below_topics(topics),
        )
        .expect("add partitions");
    response
        .results_by_topic_v3_and_below
        .iter()
        .flat_map(|t| {
            t.results_by_partition
                .iter()
                .map(|p| p.partition_error_code)
        })
        .collect()
}

fn end_txn(client: &mut Client, id: &str, producer: (i64, i16), commit: bool) -> i16 {
    client
        .call(
            3,
            &EndTxnRequest::default()
                .with_transactional_id(txn_id(id))
                .with_producer_id(ProducerId(producer.0))
                .with_producer_epoch(producer.1)
                .with_committed(commit),
        )
        .expect("end txn")
        .error_code
}

/// Produces one transactional batch (acks=all, v9); the partition's code and base offset.
fn produce_txn(
    client: &mut Client,
    id: Option<&str>,
    topic: &str,
    partition: i32,
    producer: (i64, i16, i32),
) -> (i16, i64) {
    let records = strom::test_support::transactional_batch(
        &[b"one".as_slice(), b"two".as_slice()],
        producer,
        Compression::None,
    )
    .expect("encode batch");
    let response = client
        .call(
            9,
            &ProduceRequest::default()
                .with_transactional_id(id.map(txn_id))
                .with_acks(-1)
                .with_timeout_ms(10_000)
                .with_topic_data(vec![produce_request::TopicProduceData::default()
                    .with_name(TopicName(str(topic)))
                    .with_partition_data(vec![
                        produce_request::PartitionProduceData::default()
                            .with_index(partition)
                            .with_records(Some(records)),
                    ])]),
        )
        .expect("produce");
    let p = &response.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

fn write_marker(
    client: &mut Client,
    topic: &str,
    partition: i32,
    producer: (i64, i16),
    coordinator_epoch: i32,
    commit: bool,
) -> i16 {
    let response = client
        .call(
            1,
            &WriteTxnMarkersRequest::default().with_markers(vec![
                write_txn_markers_request::WritableTxnMarker::default()
                    .with_producer_id(ProducerId(producer.0))
                    .with_producer_epoch(producer.1)
                    .with_coordinator_epoch(coordinator_epoch)
                    .with_transaction_result(commit)
                    .with_topics(vec![
                        write_txn_markers_request::WritableTxnMarkerTopic::default()
                            .with_name(TopicName(str(topic)))
                            .with_partition_indexes(vec![partition]),
                    ]),
            ]),
        )
        .expect("write txn markers");
    response.markers[0].topics[0].partitions[0].error_code
}

fn producer_state(
    client: &mut Client,
    topic: &str,
    partition: i32,
    producer_id: i64,
) -> Option<describe_producers_response::ProducerState> {
    let response = client
        .call(
            0,
            &DescribeProducersRequest::default().with_topics(vec![
                describe_producers_request::TopicRequest::default()
                    .with_name(TopicName(str(topic)))
                    .with_partition_indexes(vec![partition]),
            ]),
        )
        .expect("describe producers");
    let p = &response.topics[0].partitions[0];
    assert_eq!(p.error_code, 0, "{response:?}");
    p.active_producers
        .iter()
        .find(|s| s.producer_id.0 == producer_id)
        .cloned()
}

/// The latest offset a read_committed (isolation 1) or read_uncommitted (0) consumer sees.
fn latest(client: &mut Client, topic: &str, partition: i32, isolation: i8) -> i64 {
    let response = client
        .call(
            5,
            &ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_isolation_level(isolation)
                .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
                    .with_name(TopicName(str(topic)))
                    .with_partitions(vec![
                        list_offsets_request::ListOffsetsPartition::default()
                            .with_partition_index(partition)
                            .with_timestamp(-1),
                    ])]),
        )
        .expect("list offsets");
    let p = &response.topics[0].partitions[0];
    assert_eq!(p.error_code, 0, "{response:?}");
    p.offset
}

#[test]
fn the_coordinator_refuses_unknown_ids_wrong_epochs_and_long_timeouts() {
    let broker = BrokerProcess::start(&[]);
    let mut client = broker.client();
    client.create_topic("txn-refusals", 2);
    find_txn_coordinator(&mut client, "refusals");

    // Past transaction.max.timeout.ms (15 minutes by default).
    let too_long = init(&mut client, "refusals", 15 * 60 * 1000 + 1);
    assert_eq!(
        too_long.error_code, INVALID_TRANSACTION_TIMEOUT,
        "{too_long:?}"
    );

    let first = init(&mut client, "refusals", 60_000);
    assert_eq!(first.error_code, 0, "{first:?}");
    let producer = (first.producer_id.0, first.producer_epoch);

    // An id the coordinator never saw, and a producer id that is not the id's.
    let unknown = add_partitions(
        &mut client,
        "never-initialised",
        producer,
        &[("txn-refusals", 0)],
        3,
    );
    assert_eq!(unknown, vec![INVALID_PRODUCER_ID_MAPPING]);
    let wrong_id = add_partitions(
        &mut client,
        "refusals",
        (producer.0 + 1000, producer.1),
        &[("txn-refusals", 0)],
        3,
    );
    assert_eq!(wrong_id, vec![INVALID_PRODUCER_ID_MAPPING]);
    assert_eq!(
        end_txn(&mut client, "never-initialised", producer, true),
        INVALID_PRODUCER_ID_MAPPING
    );

    // An unknown partition fails the whole request: the others are not attempted.
    let mixed = add_partitions(
        &mut client,
        "refusals",
        producer,
        &[("txn-refusals", 0), ("no-such-topic", 0)],
        3,
    );
    assert_eq!(
        mixed,
        vec![OPERATION_NOT_ATTEMPTED, UNKNOWN_TOPIC_OR_PARTITION]
    );

    // A transactional batch for a partition that is not in the transaction (KIP-890 part 1).
    let (code, _) = produce_txn(
        &mut client,
        Some("refusals"),
        "txn-refusals",
        1,
        (producer.0, producer.1, 0),
    );
    assert_eq!(code, INVALID_TXN_STATE);

    // A second InitProducerId bumps the epoch: the old one is fenced, with the code each
    // version knows.
    let second = init(&mut client, "refusals", 60_000);
    assert_eq!(second.error_code, 0, "{second:?}");
    assert_eq!(second.producer_id.0, producer.0);
    assert_eq!(second.producer_epoch, producer.1 + 1);
    let fenced_v3 = add_partitions(&mut client, "refusals", producer, &[("txn-refusals", 0)], 3);
    assert_eq!(fenced_v3, vec![PRODUCER_FENCED]);
    let fenced_v1 = add_partitions(&mut client, "refusals", producer, &[("txn-refusals", 0)], 1);
    assert_eq!(fenced_v1, vec![INVALID_PRODUCER_EPOCH]);
    assert_eq!(
        end_txn(&mut client, "refusals", producer, false),
        PRODUCER_FENCED
    );

    // EndTxn with nothing open is a state error; the producer itself still works.
    let current = (second.producer_id.0, second.producer_epoch);
    assert_eq!(
        end_txn(&mut client, "refusals", current, true),
        INVALID_TXN_STATE
    );
    assert_eq!(
        add_partitions(&mut client, "refusals", current, &[("txn-refusals", 0)], 3),
        vec![0]
    );
    let (code, _) = produce_txn(
        &mut client,
        Some("refusals"),
        "txn-refusals",
        0,
        (current.0, current.1, 0),
    );
    assert_eq!(code, 0);
    assert_eq!(end_txn(&mut client, "refusals", current, true), 0);
    let log = broker.log();
    assert!(!log.contains("panicked"), "{log}");
}

/// `Admin.abortTransaction` (and `kafka-transactions.sh abort`): DescribeProducers shows the
/// open transaction's start offset and the producer's coordinator epoch; WriteTxnMarkers with
/// them ends it at that partition, and the last stable offset moves past it. Markers from an
/// older producer epoch or coordinator epoch, or for an unknown partition, are refused; a marker
/// for a producer the partition never saw is written.
#[test]
fn an_administrator_aborts_a_hanging_transaction_with_write_txn_markers() {
    let mut broker = BrokerProcess::start(&[]);
    let mut client = broker.client();
    let topic = "txn-hanging";
    client.create_topic(topic, 1);
    find_txn_coordinator(&mut client, "hanging");
    let init_response = init(&mut client, "hanging", 60_000);
    assert_eq!(init_response.error_code, 0, "{init_response:?}");
    let producer = (init_response.producer_id.0, init_response.producer_epoch);

    // One committed transaction first, so the producer has a coordinator epoch here.
    assert_eq!(
        add_partitions(&mut client, "hanging", producer, &[(topic, 0)], 3),
        vec![0]
    );
    let (code, _) = produce_txn(
        &mut client,
        Some("hanging"),
        topic,
        0,
        (producer.0, producer.1, 0),
    );
    assert_eq!(code, 0);
    assert_eq!(end_txn(&mut client, "hanging", producer, true), 0);
    let wait_stable = |client: &mut Client| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while latest(client, topic, 0, 1) != latest(client, topic, 0, 0) {
            assert!(Instant::now() < deadline, "the commit marker never came");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_stable(&mut client);

    // The second transaction stays open. Until the first one is complete at the coordinator,
    // the client is told CONCURRENT_TRANSACTIONS and retries, as a producer does.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match add_partitions(&mut client, "hanging", producer, &[(topic, 0)], 3)[..] {
            [0] => break,
            [CONCURRENT_TRANSACTIONS] if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            ref other => panic!("add partitions: {other:?}"),
        }
    }
    let (code, start) = produce_txn(
        &mut client,
        Some("hanging"),
        topic,
        0,
        (producer.0, producer.1, 2),
    );
    assert_eq!(code, 0);
    assert_eq!(
        latest(&mut client, topic, 0, 1),
        start,
        "read_committed stops at the open transaction"
    );
    let state = producer_state(&mut client, topic, 0, producer.0).expect("the producer is listed");
    assert_eq!(state.current_txn_start_offset, start, "{state:?}");
    assert_eq!(state.producer_epoch, i32::from(producer.1));
    assert_eq!(state.coordinator_epoch, 0, "{state:?}");
    assert_eq!(state.last_sequence, 3, "{state:?}");

    // Refused: an older producer epoch, an older coordinator, a partition that does not exist.
    assert_eq!(
        write_marker(
            &mut client,
            topic,
            0,
            (producer.0, producer.1 - 1),
            0,
            false
        ),
        INVALID_PRODUCER_EPOCH
    );
    assert_eq!(
        write_marker(&mut client, topic, 0, producer, -1, false),
        TRANSACTION_COORDINATOR_FENCED
    );
    assert_eq!(
        write_marker(&mut client, "no-such-topic", 0, producer, 0, false),
        UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(
        latest(&mut client, topic, 0, 1),
        start,
        "nothing refused moved the LSO"
    );

    // The administrator's abort, with what DescribeProducers showed.
    assert_eq!(
        write_marker(
            &mut client,
            topic,
            0,
            producer,
            state.coordinator_epoch,
            false
        ),
        0
    );
    let end = latest(&mut client, topic, 0, 0);
    assert_eq!(
        latest(&mut client, topic, 0, 1),
        end,
        "the abort made everything stable"
    );
    let after = producer_state(&mut client, topic, 0, producer.0).expect("still listed");
    assert_eq!(after.current_txn_start_offset, -1, "{after:?}");

    // A marker for a producer the partition never saw is written, as in Kafka.
    assert_eq!(
        write_marker(&mut client, topic, 0, (987_654, 3), 0, true),
        0
    );
    assert_eq!(latest(&mut client, topic, 0, 0), end + 1);

    // The producer's own EndTxn still completes (its marker here ends nothing); the records
    // stay aborted for read_committed fetches, which a restart rebuilds from the log.
    assert_eq!(end_txn(&mut client, "hanging", producer, true), 0);
    wait_stable(&mut client);
    broker.kill_and_restart();
    let mut client = broker.client();
    let rebuilt = producer_state(&mut client, topic, 0, producer.0).expect("listed after restart");
    assert_eq!(rebuilt.current_txn_start_offset, -1, "{rebuilt:?}");
    assert_eq!(rebuilt.coordinator_epoch, 0, "{rebuilt:?}");
    let fetched = fetch_committed(&mut client, topic);
    assert_eq!(
        fetched.aborted,
        vec![(producer.0, start)],
        "the aborted transaction is listed for read_committed consumers"
    );
    let log = broker.log();
    assert!(!log.contains("panicked"), "{log}");
}

struct Fetched {
    /// (producer id, first offset) of each aborted transaction the fetch lists.
    aborted: Vec<(i64, i64)>,
}

fn fetch_committed(client: &mut Client, topic: &str) -> Fetched {
    let response = client
        .call(
            11,
            &FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(0)
                .with_min_bytes(1)
                .with_max_bytes(1 << 20)
                .with_isolation_level(1)
                .with_topics(vec![fetch_request::FetchTopic::default()
                    .with_topic(TopicName(str(topic)))
                    .with_partitions(vec![fetch_request::FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(1 << 20)])]),
        )
        .expect("fetch");
    let p = &response.responses[0].partitions[0];
    assert_eq!(p.error_code, 0, "{response:?}");
    Fetched {
        aborted: p
            .aborted_transactions
            .iter()
            .flatten()
            .map(|t| (t.producer_id.0, t.first_offset))
            .collect(),
    }
}

/// TxnOffsetCommit v3+ carries the consumer's generation and member id (KIP-447): a zombie from
/// an older generation, or an unknown member, is refused as OffsetCommit would be.
#[test]
fn txn_offset_commit_from_a_stale_generation_is_refused() {
    let broker = BrokerProcess::start(&[]);
    let mut client = broker.client();
    client.create_topic("txn-generation", 1);
    let group = "txn-generation-group";
    let found = client
        .call(3, &FindCoordinatorRequest::default().with_key(str(group)))
        .expect("find group coordinator");
    assert_eq!(found.error_code, 0, "{found:?}");
    let join = |client: &mut Client, member: &str| {
        client
            .call(
                5,
                &JoinGroupRequest::default()
                    .with_group_id(GroupId(str(group)))
                    .with_session_timeout_ms(30_000)
                    .with_rebalance_timeout_ms(30_000)
                    .with_member_id(str(member))
                    .with_protocol_type(str("consumer"))
                    .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
                    )
                    .with_name(str("range"))
                    .with_metadata(Bytes::from_static(b"subscription"))]),
            )
            .expect("join group")
    };
    let first = join(&mut client, "");
    let joined = join(&mut client, first.member_id.as_str());
    assert_eq!(joined.error_code, 0, "{joined:?}");
    let synced = client
        .call(
            3,
            &SyncGroupRequest::default()
                .with_group_id(GroupId(str(group)))
                .with_generation_id(joined.generation_id)
                .with_member_id(joined.member_id.clone())
                .with_assignments(vec![
                    sync_group_request::SyncGroupRequestAssignment::default()
                        .with_member_id(joined.member_id.clone())
                        .with_assignment(Bytes::from_static(b"all")),
                ]),
        )
        .expect("sync group");
    assert_eq!(synced.error_code, 0, "{synced:?}");

    find_txn_coordinator(&mut client, "offsets-txn");
    let init_response = init(&mut client, "offsets-txn", 60_000);
    let producer = (init_response.producer_id.0, init_response.producer_epoch);
    let added = client
        .call(
            3,
            &AddOffsetsToTxnRequest::default()
                .with_transactional_id(txn_id("offsets-txn"))
                .with_producer_id(ProducerId(producer.0))
                .with_producer_epoch(producer.1)
                .with_group_id(GroupId(str(group))),
        )
        .expect("add offsets");
    assert_eq!(added.error_code, 0, "{added:?}");

    let commit = |client: &mut Client, generation: i32, member: &str| {
        let response = client
            .call(
                3,
                &TxnOffsetCommitRequest::default()
                    .with_transactional_id(txn_id("offsets-txn"))
                    .with_group_id(GroupId(str(group)))
                    .with_producer_id(ProducerId(producer.0))
                    .with_producer_epoch(producer.1)
                    .with_generation_id(generation)
                    .with_member_id(str(member))
                    .with_topics(vec![
                        txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                            .with_name(TopicName(str("txn-generation")))
                            .with_partitions(vec![
                            txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
                                .with_partition_index(0)
                                .with_committed_offset(5),
                        ]),
                    ]),
            )
            .expect("txn offset commit");
        response.topics[0].partitions[0].error_code
    };
    let member = joined.member_id.to_string();
    assert_eq!(
        commit(&mut client, joined.generation_id - 1, &member),
        ILLEGAL_GENERATION
    );
    assert_eq!(
        commit(&mut client, joined.generation_id, "someone-else"),
        UNKNOWN_MEMBER_ID
    );
    assert_eq!(commit(&mut client, joined.generation_id, &member), 0);
    assert_eq!(end_txn(&mut client, "offsets-txn", producer, true), 0);

    // The committed offset becomes visible once the marker is written.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let fetched = client
            .call(
                7,
                &OffsetFetchRequest::default()
                    .with_group_id(GroupId(str(group)))
                    .with_require_stable(true)
                    .with_topics(Some(vec![
                        offset_fetch_request::OffsetFetchRequestTopic::default()
                            .with_name(TopicName(str("txn-generation")))
                            .with_partition_indexes(vec![0]),
                    ])),
            )
            .expect("offset fetch");
        let p = &fetched.topics[0].partitions[0];
        if p.error_code == 0 && p.committed_offset == 5 {
            break;
        }
        assert!(Instant::now() < deadline, "{fetched:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
