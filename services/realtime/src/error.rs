//! HTTP errors of the upgrade, in the API's one error shape (docs/api.md §2).

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

/// `{ code, message }` with `status`.
pub fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({"code": code, "message": message}))).into_response()
}

/// Unknown routes: 404 with the path, as the gateway answers them.
pub async fn not_found(uri: axum::http::Uri) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"code": "NOT_FOUND", "message": "Not Found", "path": uri.path()})),
    )
        .into_response()
}
