//! Messaging's errors and their one mapping to gRPC statuses.

use hilo_kit::{
    grpc::{db_error, echo, internal, status, upstream_error},
    validate::Invalid,
};
use tonic::{Code, Status};

/// A failed messaging operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// Unknown, malformed, or in a channel invisible to the caller: all look the same.
    #[error("thread {0} not found")]
    ThreadNotFound(String),
    #[error("message {0} not found")]
    MessageNotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("thread archived")]
    Archived,
    #[error("idempotency key reused with another request")]
    KeyReused,
    /// Channels or accounts refused or failed: its status is passed on when the caller can act
    /// on it (signed out; try again later).
    #[error("upstream: {0}")]
    Upstream(Status),
    /// The database is unreachable or too busy: try again later (503).
    #[error("database unavailable")]
    Unavailable,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::Invalid(invalid) => invalid.into(),
            Error::ThreadNotFound(id) => status(
                Code::NotFound,
                "THREAD_NOT_FOUND",
                format!("Thread '{}' not found", echo(&id)),
            ),
            Error::MessageNotFound(id) => status(
                Code::NotFound,
                "MESSAGE_NOT_FOUND",
                format!("Message '{}' not found", echo(&id)),
            ),
            Error::Forbidden(message) => status(Code::PermissionDenied, "FORBIDDEN", message),
            // A conflict with the thread's state: 409 at the gateway.
            Error::Archived => status(
                Code::Aborted,
                "THREAD_ARCHIVED",
                "The thread is archived; unarchive it to post",
            ),
            Error::KeyReused => status(
                Code::InvalidArgument,
                "IDEMPOTENCY_KEY_REUSED",
                "This Idempotency-Key was used for a different request",
            ),
            Error::Upstream(status) => upstream_error(status),
            Error::Unavailable => Status::unavailable("database busy, try again"),
            Error::Db(error) => db_error(error),
            Error::Internal(error) => internal(format!("{error:#}")),
        }
    }
}

/// Results of messaging operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
