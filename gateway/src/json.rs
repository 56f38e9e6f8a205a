//! Request bodies: JSON up to 1 MiB, parsed whatever the `Content-Type` (the original never
//! checked it), with a 400 that names the failing field instead of a 500 or a bare 422.

use axum::{
    body::to_bytes,
    extract::{FromRequest, Request},
    http::StatusCode,
};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, FieldError};

/// Largest JSON body accepted (API.md §5).
pub const JSON_LIMIT: usize = 1024 * 1024;

/// A JSON body parsed into `T`.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        let bytes = to_bytes(req.into_body(), JSON_LIMIT)
            .await
            .map_err(|_| too_large())?;
        parse(&bytes).map(Json)
    }
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "PAYLOAD_TOO_LARGE",
        "Request body is larger than 1 MiB",
    )
}

/// Parses `bytes`, reporting the dotted path of the first failing field.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_JSON",
            "Request body must be a JSON object",
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|error| {
        let field = error.path().to_string();
        let inner = error.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "INVALID_JSON",
                format!("Malformed JSON: {inner}"),
            );
        }
        // serde reports a missing field at its parent's path; name the field itself.
        let message = inner.to_string();
        let field = match message
            .strip_prefix("missing field `")
            .and_then(|m| m.split('`').next())
        {
            Some(missing) if field == "." => missing.to_owned(),
            Some(missing) => format!("{field}.{missing}"),
            None if field == "." => String::new(),
            None => field,
        };
        let message = message
            .split(" at line ")
            .next()
            .unwrap_or_default()
            .to_owned();
        ApiError::validation(vec![FieldError { field, message }])
    })
}
