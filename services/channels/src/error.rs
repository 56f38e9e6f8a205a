//! Channels' errors and their one mapping to gRPC statuses.

use hilo_kit::{
    grpc::{db_error, echo, internal, status},
    validate::Invalid,
};
use tonic::{Code, Status};

/// A failed channels operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// Unknown, malformed, or private and not the caller's: all look the same.
    #[error("channel {0} not found")]
    ChannelNotFound(String),
    #[error("not a member")]
    MemberNotFound,
    #[error("user not found")]
    UserNotFound,
    #[error("already a member")]
    AlreadyMember,
    #[error("the last admin")]
    LastAdmin,
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::Invalid(invalid) => invalid.into(),
            Error::ChannelNotFound(id) => status(
                Code::NotFound,
                "CHANNEL_NOT_FOUND",
                format!("Channel '{}' not found", echo(&id)),
            ),
            Error::MemberNotFound => status(Code::NotFound, "MEMBER_NOT_FOUND", "Member not found"),
            Error::UserNotFound => status(Code::NotFound, "USER_NOT_FOUND", "User not found"),
            Error::AlreadyMember => status(
                Code::AlreadyExists,
                "ALREADY_MEMBER",
                "User is already a member of this channel",
            ),
            // A conflict with the channel's state: 409 at the gateway.
            Error::LastAdmin => status(
                Code::Aborted,
                "LAST_ADMIN",
                "The last admin cannot leave or be demoted; promote another admin first",
            ),
            Error::Forbidden(message) => status(Code::PermissionDenied, "FORBIDDEN", message),
            Error::Db(error) => db_error(error),
            Error::Internal(error) => internal(format!("{error:#}")),
        }
    }
}

/// Results of channels operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
