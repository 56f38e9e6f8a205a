//! Request bodies: JSON up to 1 MiB, declared as JSON, one value and nothing after it, no NUL
//! character in any string, with a 400 that names the failing field instead of a 500 or a bare
//! 422.

use axum::{
    body::to_bytes,
    extract::{FromRequest, Request},
    http::{HeaderMap, StatusCode, header},
};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, FieldError};

/// Largest JSON body accepted (docs/api.md §5).
pub const JSON_LIMIT: usize = 1024 * 1024;

/// A JSON body parsed into `T`.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        // No body at all says nothing of its type: that is the 400 of `parse`.
        let bytes = read(req).await?.unwrap_or_default();
        parse(&bytes).map(Json)
    }
}

/// The body, up to [`JSON_LIMIT`]; `None` when there is none (or only whitespace), else only
/// when it is declared as JSON.
async fn read(req: Request) -> Result<Option<axum::body::Bytes>, ApiError> {
    let declared = require_json(req.headers());
    let bytes = to_bytes(req.into_body(), JSON_LIMIT)
        .await
        .map_err(|_| too_large())?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    declared?;
    Ok(Some(bytes))
}

/// An optional JSON body: none (or only whitespace) is `T::default()`; one that is sent obeys
/// every rule of [`Json`].
pub struct OptionalJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        match read(req).await? {
            Some(bytes) => parse(&bytes).map(OptionalJson),
            None => Ok(Self(T::default())),
        }
    }
}

/// A body is read as JSON only when it says it is one (`application/json` or a `+json` type):
/// anything else is 415. This is also the CSRF line for JSON routes: a cross-site form or
/// `no-cors` fetch can only send `text/plain`, form or multipart bodies, and a JSON type
/// makes the browser ask first (CORS preflight), which untrusted origins fail.
fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let essence = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    let json = essence.as_deref().is_some_and(|t| {
        t == "application/json" || (t.starts_with("application/") && t.ends_with("+json"))
    });
    if json {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UNSUPPORTED_MEDIA_TYPE",
        "Content-Type must be application/json",
    ))
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "PAYLOAD_TOO_LARGE",
        "Request body is larger than 1 MiB",
    )
}

/// Parses `bytes`, reporting the dotted path of the first failing field.
fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_JSON",
            "Request body must be a JSON object",
        ));
    }
    // PostgreSQL stores no NUL character in text: refused here, with the field's path,
    // rather than failing the statement deep inside a service.
    if let Some(field) = nul_field(bytes) {
        return Err(ApiError::field(&field, "must not contain NUL characters"));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let parsed = serde_path_to_error::deserialize(&mut *de).map_err(|error| {
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
    })?;
    // One JSON value and nothing after it (`{...} garbage` is not a body).
    de.end().map_err(|inner| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_JSON",
            format!("Malformed JSON: {inner}"),
        )
    })?;
    Ok(parsed)
}

/// The path (`content`, `attachments[0].name`) of the first string, or key, holding a NUL
/// character (written `\u0000` in JSON), if the body has one. The raw scan is the fast path;
/// the body is only walked when it finds an escape that is not itself escaped.
fn nul_field(bytes: &[u8]) -> Option<String> {
    // A backslash preceded by an even number of backslashes starts an escape.
    let is_escape = |at: usize| {
        bytes[..at]
            .iter()
            .rev()
            .take_while(|b| **b == b'\\')
            .count()
            % 2
            == 0
    };
    if !memchr::memmem::find_iter(bytes, br"\u0000").any(is_escape) {
        return None;
    }
    fn walk(value: &serde_json::Value, path: String) -> Option<String> {
        match value {
            serde_json::Value::String(text) => text.contains('\0').then_some(path),
            serde_json::Value::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, item)| walk(item, format!("{path}[{i}]"))),
            serde_json::Value::Object(fields) => fields.iter().find_map(|(key, item)| {
                let path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                if key.contains('\0') {
                    Some(path)
                } else {
                    walk(item, path)
                }
            }),
            _ => None,
        }
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    walk(&value, String::new())
}

#[cfg(test)]
mod tests {
    use super::{nul_field, parse, require_json};
    use axum::http::{HeaderMap, HeaderValue, header};

    #[test]
    fn only_json_types_are_read_as_json() {
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
            require_json(&headers).is_ok()
        };
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=utf-8"));
        assert!(with("application/merge-patch+json"));
        assert!(!with("text/plain"));
        assert!(!with("application/x-www-form-urlencoded"));
        assert!(!with("multipart/form-data; boundary=x"));
        assert!(!with("text/json+plain"));
        assert!(require_json(&HeaderMap::new()).is_err());
    }

    #[test]
    fn nul_characters_are_found_with_their_path() {
        assert_eq!(
            nul_field(br#"{"content":"a\u0000b"}"#),
            Some("content".into())
        );
        assert_eq!(
            nul_field(br#"{"a":[{"n":"x"},{"n":"\u0000"}]}"#),
            Some("a[1].n".into())
        );
        // An escaped backslash followed by "u0000" is text, not a NUL.
        assert_eq!(nul_field(br#"{"content":"a\\u0000"}"#), None);
        assert_eq!(nul_field(br#"{"content":"plain"}"#), None);
    }

    #[test]
    fn one_value_and_nothing_after_it() {
        assert!(parse::<serde_json::Value>(b" {\"a\": 1} \n").is_ok());
        assert!(parse::<serde_json::Value>(b"{\"a\": 1} garbage").is_err());
        assert!(parse::<serde_json::Value>(b"{\"a\": 1}{}").is_err());
    }
}
