//! Request bodies: JSON up to 1 MiB, one value and nothing after it, no NUL character in any
//! string, with a 400 that names the failing field instead of a 500 or a bare 422.

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
    use super::{nul_field, parse};

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
