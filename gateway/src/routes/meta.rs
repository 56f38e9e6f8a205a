//! Routes about the service itself: the API root, probes, and the OpenAPI document and page.

use axum::{
    Router,
    extract::State,
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
}

/// Ready when Redis answers and accounts reports SERVING; 503 otherwise, naming what is down.
async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let mut redis = state.redis.clone();
    let redis_ok = redis::cmd("PING")
        .query_async::<String>(&mut redis)
        .await
        .is_ok();
    let accounts_ok = state
        .health
        .clone()
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .is_ok_and(|r| r.into_inner().status == ServingStatus::Serving as i32);
    let status = if redis_ok && accounts_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(serde_json::json!({ "redis": redis_ok, "accounts": accounts_ok })),
    )
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
