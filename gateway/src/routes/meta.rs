//! Routes about the service itself: the API root, probes, and the OpenAPI document and page.

use axum::{
    Router,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{Html, IntoResponse},
    routing::get,
};
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

use crate::app::AppState;

/// Probe and documentation routes (kept out of the OpenAPI document).
pub fn router(openapi: String) -> Router<AppState> {
    Router::new()
        .route("/api", get(|| async { "Hilo chat API" }))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route(
            "/openapi.json",
            get(move || async move { ([(header::CONTENT_TYPE, "application/json")], openapi) }),
        )
        .route("/docs", get(|| async { Html(DOCS_PAGE) }))
        .route("/frames/{name}", get(frame_schema))
}

/// The JSON Schemas of the WebSocket frames (linked from `/ws` in the OpenAPI document).
async fn frame_schema(Path(name): Path<String>) -> impl IntoResponse {
    let schema = match name.as_str() {
        "client.schema.json" => include_str!("../../../proto/frames/client.schema.json"),
        "server.schema.json" => include_str!("../../../proto/frames/server.schema.json"),
        "thread-events.schema.json" => {
            include_str!("../../../proto/frames/thread-events.schema.json")
        }
        _ => {
            return crate::error::ApiError::new(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "No such schema",
            )
            .into_response();
        }
    };
    ([(header::CONTENT_TYPE, "application/schema+json")], schema).into_response()
}

/// Ready when Redis answers and every service reports SERVING; 503 otherwise, naming what
/// is down.
async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let mut redis = state.redis.clone();
    let mut report = serde_json::Map::new();
    let redis_ok = redis::cmd("PING")
        .query_async::<String>(&mut redis)
        .await
        .is_ok();
    report.insert("redis".to_owned(), redis_ok.into());
    let mut all_ok = redis_ok;
    for (name, health) in &state.health {
        let serving = health
            .clone()
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .is_ok_and(|r| r.into_inner().status == ServingStatus::Serving as i32);
        all_ok &= serving;
        report.insert((*name).to_owned(), serving.into());
    }
    let status = if all_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(serde_json::Value::Object(report)))
}

/// An API reference page that renders `/openapi.json` (Scalar, loaded from its CDN).
const DOCS_PAGE: &str = r#"<!doctype html>
<html>
  <head>
    <title>Hilo API</title>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
  </head>
  <body>
    <script id="api-reference" data-url="/openapi.json"></script>
    <script src="https://cdn.jsdelivr.net/npm/@scalar/api-reference"></script>
  </body>
</html>
"#;
