//! The one place where domain errors become Kafka error codes.

use kafka_protocol::error::ResponseError;

use crate::group::GroupError;
use crate::log::partition::{AppendError, ReadError};
use crate::metadata::MetadataError;
use crate::txn::producer_state::SequenceError;

pub fn append_error(e: &AppendError) -> ResponseError {
    match e {
        AppendError::Corrupt(_) => ResponseError::CorruptMessage,
        AppendError::NotOneBatch => ResponseError::InvalidRecord,
        AppendError::TooLarge { .. } => ResponseError::MessageTooLarge,
        AppendError::ControlBatch => ResponseError::InvalidRecord,
        AppendError::Transactional => ResponseError::InvalidTxnState,
        AppendError::NoKey { .. } => ResponseError::InvalidRecord,
        AppendError::Sequence(SequenceError::InvalidProducerEpoch { .. }) => {
            ResponseError::InvalidProducerEpoch
        }
        AppendError::Sequence(SequenceError::OutOfOrderSequence { .. }) => {
            ResponseError::OutOfOrderSequenceNumber
        }
        AppendError::Deleted => ResponseError::UnknownTopicOrPartition,
        AppendError::Io(_) => ResponseError::KafkaStorageError,
    }
}

pub fn read_error(e: &ReadError) -> ResponseError {
    match e {
        ReadError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        ReadError::Deleted => ResponseError::UnknownTopicOrPartition,
        ReadError::Io(_) => ResponseError::KafkaStorageError,
    }
}

pub fn metadata_error(e: &MetadataError) -> ResponseError {
    match e {
        MetadataError::TopicExists(_) => ResponseError::TopicAlreadyExists,
        MetadataError::UnknownTopic(_) => ResponseError::UnknownTopicOrPartition,
        MetadataError::InvalidTopicName { .. } => ResponseError::InvalidTopicException,
        MetadataError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
        MetadataError::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor,
        MetadataError::InvalidConfig { .. } => ResponseError::InvalidConfig,
        MetadataError::Io(_)
        | MetadataError::Corrupt(_)
        | MetadataError::ClusterIdMismatch { .. } => ResponseError::KafkaStorageError,
    }
}

pub fn group_error(e: GroupError) -> ResponseError {
    match e {
        GroupError::InvalidGroupId => ResponseError::InvalidGroupId,
        GroupError::CoordinatorNotAvailable => ResponseError::CoordinatorNotAvailable,
        GroupError::CoordinatorLoadInProgress => ResponseError::CoordinatorLoadInProgress,
        GroupError::UnknownMemberId => ResponseError::UnknownMemberId,
        GroupError::IllegalGeneration => ResponseError::IllegalGeneration,
        GroupError::RebalanceInProgress => ResponseError::RebalanceInProgress,
        GroupError::MemberIdRequired => ResponseError::MemberIdRequired,
        GroupError::FencedInstanceId => ResponseError::FencedInstanceId,
        GroupError::InconsistentGroupProtocol => ResponseError::InconsistentGroupProtocol,
        GroupError::InvalidSessionTimeout => ResponseError::InvalidSessionTimeout,
        GroupError::GroupMaxSizeReached => ResponseError::GroupMaxSizeReached,
        GroupError::NonEmptyGroup => ResponseError::NonEmptyGroup,
        GroupError::GroupIdNotFound => ResponseError::GroupIdNotFound,
        GroupError::GroupSubscribedToTopic => ResponseError::GroupSubscribedToTopic,
        GroupError::OffsetMetadataTooLarge => ResponseError::OffsetMetadataTooLarge,
        // Kafka answers a failed offsets-topic write with a retriable coordinator error.
        GroupError::Storage => ResponseError::CoordinatorNotAvailable,
    }
}

pub fn code(error: Option<ResponseError>) -> i16 {
    error.map_or(0, |e| e.code())
}
