//! One table for status codes: gRPC code ⇄ Connect code string ⇄ HTTP status, and the
//! conversion of `grpc-status-details-bin` into protocol-neutral error details.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use http::StatusCode;
use prost::Message as _;
use serde::Serialize;
use tonic::Code;

/// Every code with its Connect name and the HTTP status the Connect protocol gives it.
const TABLE: [(Code, &str, u16); 17] = [
    (Code::Ok, "ok", 200),
    (Code::Cancelled, "canceled", 499),
    (Code::Unknown, "unknown", 500),
    (Code::InvalidArgument, "invalid_argument", 400),
    (Code::DeadlineExceeded, "deadline_exceeded", 504),
    (Code::NotFound, "not_found", 404),
    (Code::AlreadyExists, "already_exists", 409),
    (Code::PermissionDenied, "permission_denied", 403),
    (Code::ResourceExhausted, "resource_exhausted", 429),
    (Code::FailedPrecondition, "failed_precondition", 400),
    (Code::Aborted, "aborted", 409),
    (Code::OutOfRange, "out_of_range", 400),
    (Code::Unimplemented, "unimplemented", 501),
    (Code::Internal, "internal", 500),
    (Code::Unavailable, "unavailable", 503),
    (Code::DataLoss, "data_loss", 500),
    (Code::Unauthenticated, "unauthenticated", 401),
];

/// The code a service error ends its call with, as the stack's `Recover` layer answers it,
/// for the layers above that layer that record the outcome (call metrics): a status's own
/// code; tower's `Overloaded` `RESOURCE_EXHAUSTED`; a timeout `DEADLINE_EXCEEDED`; a
/// transport failure `UNAVAILABLE`; anything else `UNKNOWN`.
pub(crate) fn error_code(error: &(dyn std::error::Error + 'static)) -> tonic::Code {
    let chain = || std::iter::successors(Some(error), |e| e.source());
    if let Some(status) = chain().find_map(|e| e.downcast_ref::<tonic::Status>()) {
        return status.code();
    }
    if chain().any(|e| e.is::<tower::load_shed::error::Overloaded>()) {
        return Code::ResourceExhausted;
    }
    if chain().any(|e| e.is::<tower::timeout::error::Elapsed>()) {
        return Code::DeadlineExceeded;
    }
    let transport = chain().any(|e| {
        e.is::<tonic::transport::Error>()
            || e.is::<std::io::Error>()
            || e.is::<tower::buffer::error::Closed>()
            || e.is::<tower::buffer::error::ServiceError>()
    });
    if transport { Code::Unavailable } else { Code::Unknown }
}

/// The Connect protocol's name for `code` (`not_found`, ...).
pub fn connect_code(code: Code) -> &'static str {
    TABLE.iter().find(|(c, _, _)| *c == code).map_or("unknown", |(_, name, _)| name)
}

/// The code for a Connect code name, if it is one.
pub fn code_from_connect(name: &str) -> Option<Code> {
    TABLE.iter().find(|(_, n, _)| *n == name).map(|(c, _, _)| *c)
}

/// The HTTP status the Connect protocol uses for a unary error with `code`.
pub fn http_status(code: Code) -> StatusCode {
    let status = TABLE.iter().find(|(c, _, _)| *c == code).map_or(500, |(_, _, s)| *s);
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// The gRPC code for a non-200 HTTP response that carries no `grpc-status`, as the gRPC
/// spec's "HTTP to gRPC status code mapping" gives it.
pub fn code_from_http(status: StatusCode) -> Code {
    match status.as_u16() {
        400 => Code::Internal,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::Unimplemented,
        429 | 502 | 503 | 504 => Code::Unavailable,
        _ => Code::Unknown,
    }
}

/// One error detail: a protobuf `Any` as the Connect protocol renders it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorDetail {
    /// The fully-qualified type name, without the `type.googleapis.com/` prefix.
    #[serde(rename = "type")]
    pub type_name: String,
    /// The binary message, base64 without padding.
    pub value: String,
}

/// The details of `status` (from its `grpc-status-details-bin`, a `google.rpc.Status`).
/// Undecodable details are dropped rather than failing the call.
pub fn details(status: &tonic::Status) -> Vec<ErrorDetail> {
    let raw = status.details();
    if raw.is_empty() {
        return Vec::new();
    }
    let Ok(rpc) = crate::pb::google::rpc::Status::decode(raw) else {
        tracing::debug!("dropping undecodable grpc-status-details-bin");
        return Vec::new();
    };
    rpc.details
        .into_iter()
        .map(|any| ErrorDetail {
            type_name: any.type_url.rsplit('/').next().unwrap_or_default().to_string(),
            value: STANDARD_NO_PAD.encode(&any.value),
        })
        .collect()
}

/// The error object of the Connect protocol (and of WebSocket status frames):
/// `{"code": "not_found", "message": "...", "details": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorBody {
    /// The Connect code name.
    pub code: &'static str,
    /// The message, omitted when empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Error details, omitted when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<ErrorDetail>,
}

impl ErrorBody {
    /// The error object for a non-OK `status`.
    pub fn from_status(status: &tonic::Status) -> Self {
        Self { code: connect_code(status.code()), message: status.message().to_string(), details: details(status) }
    }
}

/// Decodes a base64 value of a `-bin` metadata entry, padded or not.
pub fn decode_bin_value(value: &str) -> Option<Vec<u8>> {
    let trimmed = value.trim_end_matches('=');
    STANDARD_NO_PAD.decode(trimmed).ok().or_else(|| STANDARD.decode(value).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_maps_both_ways() {
        for i in 0..=16 {
            let code = Code::from_i32(i);
            let name = connect_code(code);
            assert_eq!(code_from_connect(name), Some(code), "{name}");
        }
        assert_eq!(http_status(Code::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(http_status(Code::Unimplemented), StatusCode::NOT_IMPLEMENTED);
        assert_eq!(http_status(Code::Cancelled).as_u16(), 499);
        assert_eq!(http_status(Code::ResourceExhausted), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(code_from_connect("nope"), None);
    }

    #[test]
    fn details_round_trip() {
        let rpc = crate::pb::google::rpc::Status {
            code: 5,
            message: "gone".into(),
            details: vec![crate::protojson::Any {
                type_url: "type.googleapis.com/grpc.testing.Empty".into(),
                value: vec![1, 2, 3].into(),
            }],
        };
        let status = tonic::Status::with_details(Code::NotFound, "gone", rpc.encode_to_vec().into());
        let body = ErrorBody::from_status(&status);
        assert_eq!(body.code, "not_found");
        assert_eq!(body.details, vec![ErrorDetail { type_name: "grpc.testing.Empty".into(), value: "AQID".into() }]);
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"code":"not_found","message":"gone","details":[{"type":"grpc.testing.Empty","value":"AQID"}]}"#
        );
    }
}
