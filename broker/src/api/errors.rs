//! The one place where domain errors become Kafka error codes.

use kafka_protocol::error::ResponseError;

use crate::group::GroupError;
use crate::log::batch::{self, BatchError};
use crate::log::message_set::ConvertError;
use crate::log::partition::{AppendError, ReadError};
use crate::log::producer_state::SequenceError;
use crate::metadata::MetadataError;
use crate::txn::state::TxnError;

pub fn append_error(e: &AppendError) -> ResponseError {
    match e {
        // As Kafka answers each: a CRC mismatch or a length below any batch's is a corrupt
        // record (CorruptRecordException); an incomplete batch is no batch at all, and bad
        // magic, counts or records are invalid records (InvalidRecordException, from
        // `ProduceRequest.validateRecords` and `LogValidator.validateBatch`).
        AppendError::Corrupt(BatchError::CrcMismatch { .. }) => ResponseError::CorruptMessage,
        AppendError::Corrupt(BatchError::BadLength(length))
            if *length < (batch::HEADER_BYTES - batch::LOG_OVERHEAD) as i32 =>
        {
            ResponseError::CorruptMessage
        }
        AppendError::Corrupt(_) => ResponseError::InvalidRecord,
        AppendError::NonZeroBaseOffset | AppendError::InvalidSequence => {
            ResponseError::InvalidRecord
        }
        AppendError::NotOneBatch => ResponseError::InvalidRecord,
        AppendError::TooLarge { .. } => ResponseError::MessageTooLarge,
        AppendError::ControlBatch => ResponseError::InvalidRecord,
        AppendError::NoKey { .. } => ResponseError::InvalidRecord,
        AppendError::InvalidTimestamp { .. } => ResponseError::InvalidTimestamp,
        // Kafka's RecordTooLargeException, code 10 (MESSAGE_TOO_LARGE on the wire).
        AppendError::DecompressedTooLarge { .. } => ResponseError::MessageTooLarge,
        AppendError::Sequence(SequenceError::InvalidProducerEpoch { .. }) => {
            ResponseError::InvalidProducerEpoch
        }
        AppendError::Sequence(SequenceError::OutOfOrderSequence { .. }) => {
            ResponseError::OutOfOrderSequenceNumber
        }
        AppendError::Sequence(SequenceError::TransactionOpen { .. }) => {
            ResponseError::InvalidTxnState
        }
        AppendError::Sequence(SequenceError::CoordinatorFenced { .. }) => {
            ResponseError::TransactionCoordinatorFenced
        }
        AppendError::Deleted => ResponseError::UnknownTopicOrPartition,
        AppendError::Io(_) | AppendError::Offline(_) => ResponseError::KafkaStorageError,
    }
}

/// A produced message set (formats v0/v1) that could not be up-converted, as Kafka's
/// `LogValidator` answers it: damaged bytes are a corrupt record, zstd needs format v2.
pub fn convert_error(e: &ConvertError) -> ResponseError {
    match e {
        ConvertError::Malformed(_) | ConvertError::CrcMismatch => ResponseError::CorruptMessage,
        ConvertError::UnsupportedCodec(_) => ResponseError::UnsupportedCompressionType,
        ConvertError::TooLarge { .. } => ResponseError::MessageTooLarge,
    }
}

pub fn txn_error(e: TxnError) -> ResponseError {
    match e {
        TxnError::UnknownProducerIdMapping => ResponseError::InvalidProducerIdMapping,
        TxnError::ProducerFenced => ResponseError::ProducerFenced,
        TxnError::ConcurrentTransactions => ResponseError::ConcurrentTransactions,
        TxnError::InvalidTxnState => ResponseError::InvalidTxnState,
        TxnError::InvalidTransactionTimeout => ResponseError::InvalidTransactionTimeout,
        TxnError::LoadInProgress => ResponseError::CoordinatorLoadInProgress,
        TxnError::TransactionalIdNotFound => ResponseError::TransactionalIdNotFound,
        TxnError::NotAvailable => ResponseError::CoordinatorNotAvailable,
    }
}

pub fn read_error(e: &ReadError) -> ResponseError {
    match e {
        ReadError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        ReadError::Deleted => ResponseError::UnknownTopicOrPartition,
        ReadError::Io(_) | ReadError::Offline(_) => ResponseError::KafkaStorageError,
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
        // Not retriable, and the message says which limit: as a broker-side policy would.
        MetadataError::ResourceLimit(_) => ResponseError::PolicyViolation,
        MetadataError::Io(_)
        | MetadataError::Corrupt(_)
        | MetadataError::ClusterIdMismatch { .. }
        | MetadataError::DirsOfTwoClusters { .. } => ResponseError::KafkaStorageError,
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
