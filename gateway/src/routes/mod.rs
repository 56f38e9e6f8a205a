//! The gateway's routes, one module per resource; each returns an `OpenApiRouter` so a handler
//! is registered once for both routing and the OpenAPI document.

pub mod auth;
pub mod meta;
mod presign;
pub mod uploads;
pub mod users;

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::app::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Hilo", description = "Real-time team chat: REST API (errors are `{ code, message, details? }`)."),
    tags(
        (name = "auth", description = "Better Auth compatible sign-up, sign-in and sessions"),
        (name = "users", description = "Users and their profiles"),
        (name = "uploads", description = "Files: streamed through the gateway or presigned straight to S3; types decided by content"),
    )
)]
struct ApiDoc;

/// Every documented route, and the OpenAPI document that describes them.
pub fn api() -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(auth::router())
        .merge(users::router())
        .merge(uploads::router())
        .split_for_parts()
}
