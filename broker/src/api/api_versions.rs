//! ApiVersions (KIP-35, KIP-511): advertises `SUPPORTED_APIS`, nothing else.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

use super::{decode, encode, Reply, RequestContext, ResponseBody, SUPPORTED_APIS};
use crate::broker::Broker;

fn advertised() -> Vec<ApiVersion> {
    SUPPORTED_APIS
        .iter()
        .map(|spec| {
            ApiVersion::default()
                .with_api_key(spec.key as i16)
                .with_min_version(spec.min_version)
                .with_max_version(spec.max_version)
        })
        .collect()
}

pub fn handle(_broker: &Arc<Broker>, ctx: &RequestContext, body: Bytes) -> Reply {
    let request: ApiVersionsRequest = match decode(ctx, body) {
        Ok(r) => r,
        Err(e) => return Reply::Now(Err(e)),
    };
    tracing::debug!(
        connection = ctx.connection_id,
        client_id = ctx.client_id(),
        software = request.client_software_name.as_str(),
        software_version = request.client_software_version.as_str(),
        "api versions"
    );
    // Tagged fields stay at their defaults so they are left out of v3+ responses, as Kafka
    // does: librdkafka 2.0.x misreads them otherwise.
    let response = ApiVersionsResponse::default().with_api_keys(advertised());
    Reply::Now(encode(&response, ctx.version))
}

/// KIP-511: a client asking with a version we do not serve gets a v0 response carrying
/// UNSUPPORTED_VERSION and our ranges, so it can retry with one we do.
pub fn unsupported_version_response() -> ResponseBody {
    let response = ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(advertised());
    encode(&response, 0)
}
