//! The gateway's routes, one module per resource; each returns an `OpenApiRouter` so a handler
//! is registered once for both routing and the OpenAPI document.

pub mod accounts;
pub mod auth;
pub mod meta;
pub mod oauth;
pub mod users;

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::app::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Hilo", description = "Real-time team chat: REST API (errors are `{ code, message, details? }`)."),
    tags(
        (name = "auth", description = "Better Auth compatible sign-up, sign-in (email, GitHub, Google), sessions and linked accounts"),
        (name = "users", description = "Users and their profiles"),
    )
)]
struct ApiDoc;

/// Every documented route, and the OpenAPI document that describes them.
pub fn api() -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(auth::router())
        .merge(oauth::router())
        .merge(accounts::router())
        .merge(users::router())
        .split_for_parts()
}
