//! Uploads' errors and their one mapping to gRPC statuses. Reasons (`ErrorInfo.reason`) become
//! the `code` of the gateway's JSON error; PAYLOAD_TOO_LARGE and UNSUPPORTED_MEDIA_TYPE also
//! choose its 413 and 415.

use hilo_kit::grpc::{internal, invalid, status};
use tonic::{Code, Status};

/// A failed uploads operation. `field` is where the client put the file (`file`, `files.2`)
/// or the JSON field at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input that is not about a file's content.
    #[error("{message}")]
    Invalid {
        reason: &'static str,
        field: String,
        message: String,
    },
    /// The request carried no file.
    #[error("No file was provided in the request")]
    NoFile,
    /// A file over its kind's limit (or, for a presigned upload, of a declared size over it).
    #[error("{message}")]
    TooLarge { field: String, message: String },
    /// A file whose content is not of a type its kind allows.
    #[error("{message}")]
    Unsupported { field: String, message: String },
    /// A key that is not the caller's.
    #[error("not allowed")]
    Forbidden(String),
    #[error("File with key '{}' not found", hilo_kit::grpc::echo(.0))]
    NotFound(String),
    /// The stream ended without `done` or broke: the client gave up, nothing is kept.
    #[error("upload abandoned by the client")]
    Abandoned,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl Error {
    /// Bad input in `field`.
    pub fn invalid(reason: &'static str, field: &str, message: impl Into<String>) -> Self {
        Self::Invalid {
            reason,
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::Invalid {
                reason,
                field,
                message,
            } => invalid(reason, &message, &[(field.to_string(), message.clone())]),
            Error::NoFile => invalid("NO_FILE", &error.to_string(), &[]),
            Error::TooLarge { field, message } => invalid(
                "PAYLOAD_TOO_LARGE",
                &message,
                &[(field.to_string(), message.clone())],
            ),
            Error::Unsupported { field, message } => invalid(
                "UNSUPPORTED_MEDIA_TYPE",
                &message,
                &[(field.to_string(), message.clone())],
            ),
            Error::Forbidden(message) => status(Code::PermissionDenied, "FORBIDDEN", message),
            Error::NotFound(_) => status(Code::NotFound, "NOT_FOUND", error.to_string()),
            Error::Abandoned => Status::cancelled(error.to_string()),
            Error::Internal(error) => internal(format!("{error:#}")),
        }
    }
}

/// Results of uploads operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
