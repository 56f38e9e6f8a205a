//! Routes about the service itself: the API root, probes, and the OpenAPI document and page.

use axum::{
    Router,
    extract::{Path, State},
    http::{StatusCode, header},
    response::IntoResponse,
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
        .route(
            "/docs",
            get(|| async { docs_asset("text/html; charset=utf-8", DOCS_PAGE) }),
        )
        .route(
            "/docs/docs.js",
            get(|| async { docs_asset("text/javascript; charset=utf-8", DOCS_SCRIPT) }),
        )
        .route(
            "/docs/docs.css",
            get(|| async { docs_asset("text/css; charset=utf-8", DOCS_STYLE) }),
        )
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

/// The API reference page: the gateway's own small renderer of `/openapi.json`, served from
/// the binary (no CDN: it works offline, in air-gapped clusters, and under the strict CSP it is
/// sent with).
const DOCS_PAGE: &str = include_str!("docs/index.html");
const DOCS_SCRIPT: &str = include_str!("docs/docs.js");
const DOCS_STYLE: &str = include_str!("docs/docs.css");

/// A docs file with its type, a CSP that allows nothing from elsewhere, and a short cache.
fn docs_asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
            ),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
}
