//! InitProducerId for idempotent producers. Transactional ids need the transaction
//! coordinator, which does not exist yet, so they are refused.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::{blocking, decode, encode, errors, Reply, RequestContext};
use crate::broker::Broker;

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
    if request.transactional_id.is_some() {
        tracing::warn!(
            connection = ctx.connection_id,
            client_id = ctx.client_id(),
            "transactional producer refused: transactions are not supported yet"
        );
        let response = InitProducerIdResponse::default()
            .with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        return Reply::Now(encode(&response, version));
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
