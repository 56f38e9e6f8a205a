//! The gateway's routes, one module per resource; each returns an `OpenApiRouter` so a handler
//! is registered once for both routing and the OpenAPI document.

pub mod accounts;
pub mod auth;
pub mod channels;
pub mod members;
pub mod messages;
pub mod meta;
pub mod oauth;
pub mod openapi;
mod presign;
pub mod threads;
pub mod uploads;
pub mod users;

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::{
    app::AppState,
    error::{ApiError, ApiResult},
};

/// Largest page of any list (larger requests are clamped).
pub const LIMIT_MAX: i64 = 100;

/// A numeric query parameter: absent or empty means `default`; anything but a non-negative
/// integer is a 400 naming the parameter (never a database error, as in the original).
pub fn query_number(field: &str, raw: Option<&str>, default: i64) -> ApiResult<i64> {
    match raw.map(str::trim) {
        None | Some("") => Ok(default),
        Some(text) => text.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            ApiError::field(field, format!("{field} must be a non-negative integer"))
        }),
    }
}

/// The object a service reply must carry (`what`, for the log), as the client's JSON; a reply
/// without it is a broken service, a 500.
pub fn present<P, J: From<P>>(part: Option<P>, what: &str) -> ApiResult<axum::Json<J>> {
    let part = part.ok_or_else(|| ApiError::internal(format!("reply without a {what}")))?;
    Ok(axum::Json(part.into()))
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Hilo", description = "Real-time team chat: REST API (errors are `{ code, message, details? }`)."),
    tags(
        (name = "auth", description = "Better Auth compatible sign-up, sign-in (email, GitHub, Google), sessions and linked accounts"),
        (name = "users", description = "Users and their profiles"),
        (name = "channels", description = "Channels and invites"),
        (name = "members", description = "Channel membership and roles"),
        (name = "threads", description = "Threads of a channel"),
        (name = "messages", description = "Messages of a thread"),
        (name = "uploads", description = "Files: streamed through the gateway or presigned straight to S3; types decided by content"),
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
        .merge(channels::router())
        .merge(members::router())
        .merge(threads::router())
        .merge(messages::router())
        .merge(uploads::router())
        .split_for_parts()
}

/// A JSON field that may be absent (leave it), `null` (clear it) or a value:
/// use with `#[serde(default, deserialize_with = "nullable")]` on an `Option<Option<T>>`.
pub fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    serde::Deserialize::deserialize(d).map(Some)
}
