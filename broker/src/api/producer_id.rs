//! InitProducerId: a fresh producer id for an idempotent producer; for a transactional id, the
//! transaction coordinator's id and epoch (bumped at each call, fencing older producers).

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::{blocking, decode, encode, errors, Reply, RequestContext};
use crate::broker::Broker;
use crate::txn::state::TxnError;

pub fn handle(broker: &Arc<Broker>, ctx: &RequestContext, body: Bytes) -> Reply {
    let request: InitProducerIdRequest = match decode(ctx, body) {
        Ok(r) => r,
        Err(e) => return Reply::Now(Err(e)),
    };
    let version = ctx.version;
    if request
        .transactional_id
        .as_ref()
        .is_some_and(|id| id.is_empty())
    {
        // Kafka's TransactionCoordinator: an empty transactional id is an invalid request.
        let response = InitProducerIdResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        return Reply::Now(encode(&response, version));
    }
    if let Some(transactional_id) = request.transactional_id.clone() {
        // KIP-360 (v3+): a producer recovering sends its current id and epoch; exactly one of
        // them unset is an invalid request.
        let expected = match (request.producer_id.0, request.producer_epoch) {
            (-1, -1) => None,
            (-1, _) | (_, -1) => {
                let response = InitProducerIdResponse::default()
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1);
                return Reply::Now(encode(&response, version));
            }
            (id, epoch) => Some((id, epoch)),
        };
        let timeout_ms = request.transaction_timeout_ms;
        let broker = broker.clone();
        return Reply::Apply(Box::pin(async move {
            let outcome = match broker.txn_coordinator().cloned() {
                Some(c) => {
                    c.init_producer_id(transactional_id.as_str(), timeout_ms, expected)
                        .await
                }
                None => Err(TxnError::NotAvailable),
            };
            let response = match outcome {
                Ok((id, epoch)) => InitProducerIdResponse::default()
                    .with_producer_id(ProducerId(id))
                    .with_producer_epoch(epoch),
                Err(e) => InitProducerIdResponse::default()
                    .with_error_code(super::txn::error_for(e, version, 4).code())
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1),
            };
            encode(&response, version)
        }));
    }
    let broker = broker.clone();
    Reply::Apply(Box::pin(async move {
        let id = blocking(move || broker.next_producer_id()).await;
        let response = match id {
            Some(Ok(id)) => InitProducerIdResponse::default()
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(0),
            Some(Err(e)) => {
                tracing::error!(error = %e, "cannot reserve producer ids");
                InitProducerIdResponse::default()
                    .with_error_code(errors::metadata_error(&e).code())
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1)
            }
            None => InitProducerIdResponse::default()
                .with_error_code(ResponseError::UnknownServerError.code())
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        };
        encode(&response, version)
    }))
}
