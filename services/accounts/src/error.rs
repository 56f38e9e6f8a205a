//! Accounts' errors and their one mapping to gRPC statuses. Reasons (`ErrorInfo.reason`) are
//! Better Auth's codes where a Better Auth route surfaces them, so the gateway passes them on.

use hilo_kit::{
    grpc::{db_error, echo, internal, status},
    validate::Invalid,
};
use tonic::{Code, Status};

/// A failed accounts operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input, with every failing field.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("email already taken")]
    EmailTaken,
    #[error("user already exists")]
    UserExists,
    #[error("invalid email or password")]
    InvalidCredentials,
    #[error("user {0} not found")]
    UserNotFound(String),
    #[error("not allowed")]
    Forbidden(String),
    #[error("session not found or expired")]
    NoSession,
    /// The OAuth provider asked for is unknown or has no credentials configured.
    #[error("provider not found")]
    ProviderNotFound,
    /// A social sign-in was refused; the text is Better Auth's error code (`state_mismatch`,
    /// `account_not_linked`, ...), which ends up in the error redirect.
    #[error("social sign-in refused: {0}")]
    OAuth(String),
    #[error("cannot unlink the last identity")]
    LastIdentity,
    #[error("identity not found")]
    IdentityNotFound,
    /// Too many sign-ins or sign-ups for an email or from a caller (AUTH_THROTTLE).
    #[error("too many attempts")]
    Throttled,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::Invalid(invalid) => invalid.into(),
            Error::EmailTaken => status(
                Code::AlreadyExists,
                "EMAIL_ALREADY_IN_USE",
                "Email is already in use",
            ),
            Error::UserExists => status(
                Code::AlreadyExists,
                "USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL",
                "User already exists. Use another email.",
            ),
            Error::InvalidCredentials => status(
                Code::Unauthenticated,
                "INVALID_EMAIL_OR_PASSWORD",
                "Invalid email or password",
            ),
            Error::UserNotFound(id) => status(
                Code::NotFound,
                "USER_NOT_FOUND",
                format!("User with id '{}' not found", echo(&id)),
            ),
            Error::Forbidden(message) => status(Code::PermissionDenied, "FORBIDDEN", message),
            Error::NoSession => status(Code::Unauthenticated, "UNAUTHORIZED", "Unauthorized"),
            Error::ProviderNotFound => {
                status(Code::NotFound, "PROVIDER_NOT_FOUND", "Provider not found")
            }
            Error::OAuth(code) => status(
                Code::FailedPrecondition,
                &code.to_uppercase(),
                "Social sign-in failed; please restart it",
            ),
            // Better Auth answers both with 400.
            Error::LastIdentity => status(
                Code::FailedPrecondition,
                "FAILED_TO_UNLINK_LAST_ACCOUNT",
                "You can't unlink your last account",
            ),
            Error::IdentityNotFound => status(
                Code::FailedPrecondition,
                "ACCOUNT_NOT_FOUND",
                "Account not found",
            ),
            Error::Throttled => status(
                Code::ResourceExhausted,
                "TOO_MANY_REQUESTS",
                "Too many requests. Please try again later.",
            ),
            Error::Db(error) => db_error(error),
            Error::Internal(error) => internal(format!("{error:#}")),
        }
    }
}

/// Results of accounts operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
