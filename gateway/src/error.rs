//! The gateway's one error type and THE table from gRPC codes to HTTP statuses. Every error
//! body is `{ code, message, details? }` (docs/api.md §2), which is also Better Auth's shape.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use tonic::Code;
use tonic_types::StatusExt as _;
use utoipa::ToSchema;

/// One failing field of a request.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct FieldError {
    /// Dotted path of the field (`profile.bio`), empty for the body as a whole.
    pub field: String,
    pub message: String,
}

/// The JSON body of every error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable UPPER_SNAKE machine code.
    pub code: String,
    /// Human-readable text.
    pub message: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<FieldError>,
    /// The request path, on 404s for unknown routes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// An error answer: status, body, and a `Retry-After` for 429s.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody {
                code: code.to_owned(),
                message: message.into(),
                details: Vec::new(),
                path: None,
            },
            retry_after: None,
        }
    }

    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "Unauthorized")
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
    }

    /// 400 with one entry per failing field.
    pub fn validation(details: Vec<FieldError>) -> Self {
        let mut error = Self::new(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            "Validation error",
        );
        error.body.details = details;
        error
    }

    /// 400 for one failing field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldError {
            field: field.to_owned(),
            message: message.into(),
        }])
    }

    /// 503 for a transient outage: the client may try again in a moment (`Retry-After`).
    pub fn unavailable() -> Self {
        let mut error = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVICE_UNAVAILABLE",
            "Service unavailable",
        );
        error.retry_after = Some(RETRY_AFTER_SECS);
        error
    }

    pub fn too_many_requests(retry_after: u64) -> Self {
        let mut error = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TOO_MANY_REQUESTS",
            "Too many requests. Please try again later.",
        );
        error.retry_after = Some(retry_after);
        error
    }

    /// 500 that says nothing; the cause is logged with the request's span (and so its id).
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_SERVER_ERROR",
            "Internal server error",
        )
    }

    /// Replaces the status, keeping code and message (for Better Auth's own choices, e.g. 422).
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }
}

/// `Retry-After` of a 503 or 504: an upstream outage or restart is usually over in seconds.
const RETRY_AFTER_SECS: u64 = 1;

/// gRPC code -> HTTP status. The one table; everything else derives from it.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        // A call cut off on the way (its connection closed) is as transient as an outage.
        Code::Unavailable | Code::Cancelled => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Reasons that pick a more precise status than their gRPC code's: a file over its limit (413)
/// or of a type not allowed (415) is bad input to gRPC, but HTTP has words for them.
pub fn reason_status(reason: &str) -> Option<StatusCode> {
    match reason {
        "PAYLOAD_TOO_LARGE" => Some(StatusCode::PAYLOAD_TOO_LARGE),
        "UNSUPPORTED_MEDIA_TYPE" => Some(StatusCode::UNSUPPORTED_MEDIA_TYPE),
        _ => None,
    }
}

/// The default `code` of an HTTP status, when a service gave no reason.
pub fn default_code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "BAD_REQUEST",
        StatusCode::UNAUTHORIZED => "UNAUTHORIZED",
        StatusCode::FORBIDDEN => "FORBIDDEN",
        StatusCode::NOT_FOUND => "NOT_FOUND",
        StatusCode::METHOD_NOT_ALLOWED => "METHOD_NOT_ALLOWED",
        StatusCode::CONFLICT => "CONFLICT",
        StatusCode::PAYLOAD_TOO_LARGE => "PAYLOAD_TOO_LARGE",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "UNSUPPORTED_MEDIA_TYPE",
        StatusCode::TOO_MANY_REQUESTS => "TOO_MANY_REQUESTS",
        StatusCode::SERVICE_UNAVAILABLE => "SERVICE_UNAVAILABLE",
        StatusCode::GATEWAY_TIMEOUT => "GATEWAY_TIMEOUT",
        StatusCode::REQUEST_TIMEOUT => "REQUEST_TIMEOUT",
        _ => "INTERNAL_SERVER_ERROR",
    }
}

impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> Self {
        let http = http_status(status.code());
        if http.is_server_error() {
            // Internal text stays in the log; the client gets the opaque default.
            tracing::error!(code = ?status.code(), message = status.message(), "service call failed");
            let code = default_code(http);
            if http == StatusCode::INTERNAL_SERVER_ERROR {
                return Self::new(http, code, "Internal server error");
            }
            // Transient: the client may try again in a moment.
            let mut error = Self::new(http, code, "Service unavailable");
            error.retry_after = Some(RETRY_AFTER_SECS);
            return error;
        }
        let details = status.get_error_details();
        let code = details
            .error_info()
            .map(|i| i.reason.clone())
            .unwrap_or_else(|| default_code(http).to_owned());
        let http = reason_status(&code).unwrap_or(http);
        let mut error = Self::new(http, &code, status.message());
        if let Some(bad) = details.bad_request() {
            error.body.details = bad
                .field_violations
                .iter()
                .map(|v| FieldError {
                    field: v.field.clone(),
                    message: v.description.clone(),
                })
                .collect();
        }
        error
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        if let Some(secs) = self.retry_after
            && let Ok(value) = HeaderValue::from_str(&secs.to_string())
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, value.clone());
            response.headers_mut().insert("x-retry-after", value);
        }
        response
    }
}

/// Results of handlers.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_grpc_code_has_a_status_and_only_failures_are_5xx() {
        assert_eq!(http_status(Code::InvalidArgument), StatusCode::BAD_REQUEST);
        assert_eq!(http_status(Code::Unauthenticated), StatusCode::UNAUTHORIZED);
        assert_eq!(http_status(Code::PermissionDenied), StatusCode::FORBIDDEN);
        assert_eq!(http_status(Code::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(http_status(Code::AlreadyExists), StatusCode::CONFLICT);
        assert_eq!(
            http_status(Code::ResourceExhausted),
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(
            http_status(Code::Unavailable),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            http_status(Code::Cancelled),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[test]
    fn transient_failures_say_when_to_retry() {
        for code in [Code::Unavailable, Code::Cancelled, Code::DeadlineExceeded] {
            let error = ApiError::from(tonic::Status::new(code, "pool timed out at 10.0.0.3"));
            assert!(error.status.is_server_error());
            assert_ne!(error.status, StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(error.retry_after, Some(RETRY_AFTER_SECS), "{code:?}");
            assert!(!error.body.message.contains("10.0.0.3"));
        }
        let internal = ApiError::from(tonic::Status::internal("boom"));
        assert_eq!(internal.retry_after, None);
    }

    #[test]
    fn internal_statuses_do_not_leak_their_message() {
        let error = ApiError::from(tonic::Status::internal(
            "relation users does not exist at 10.0.0.3",
        ));
        assert_eq!(error.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!error.body.message.contains("relation"));
    }

    #[test]
    fn reasons_and_field_violations_become_code_and_details() {
        let mut details =
            tonic_types::ErrorDetails::with_error_info("PASSWORD_TOO_SHORT", "hilo", []);
        details.add_bad_request_violation("password", "Password too short");
        let status =
            tonic::Status::with_error_details(Code::InvalidArgument, "Password too short", details);
        let error = ApiError::from(status);
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        assert_eq!(error.body.code, "PASSWORD_TOO_SHORT");
        assert_eq!(error.body.details[0].field, "password");
    }

    #[test]
    fn file_reasons_pick_413_and_415() {
        for (reason, http) in [
            ("PAYLOAD_TOO_LARGE", StatusCode::PAYLOAD_TOO_LARGE),
            ("UNSUPPORTED_MEDIA_TYPE", StatusCode::UNSUPPORTED_MEDIA_TYPE),
        ] {
            let details = tonic_types::ErrorDetails::with_error_info(reason, "hilo", []);
            let status = tonic::Status::with_error_details(Code::InvalidArgument, "no", details);
            let error = ApiError::from(status);
            assert_eq!((error.status, error.body.code.as_str()), (http, reason));
        }
    }
}
