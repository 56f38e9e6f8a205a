//! Who is calling: Better Auth's signed session cookie or a bearer token, exchanged with
//! accounts for a short-lived access token that the gateway forwards to services. The exchange
//! is cached in Redis (shared by every replica) for at most a minute, so a revoked session
//! stops working within that minute everywhere, and at once on the replica that signed out.

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, header, request::Parts},
};
pub use hilo_kit::session::{Cookies, is_trusted};
use hilo_kit::{grpc, session};
use hilo_proto::accounts::v1 as pb;

use crate::{
    app::AppState,
    error::{ApiError, ApiResult},
};

/// A signed-in caller, with the access token to call services as them.
#[derive(Clone, Debug)]
pub struct Authed {
    pub user_id: String,
    pub access_token: String,
    pub session_token: String,
    pub request_id: Option<String>,
}

impl Authed {
    /// A gRPC request on behalf of this caller, carrying their token and the trace.
    pub fn call<T>(&self, message: T) -> tonic::Request<T> {
        grpc::request(
            message,
            Some(&self.access_token),
            self.request_id.as_deref(),
        )
    }
}

impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        // Already resolved by the rate limiter.
        if let Some(authed) = parts.extensions.get::<Self>() {
            tracing::Span::current().record("user_id", authed.user_id.as_str());
            return Ok(authed.clone());
        }
        let token = state
            .cookies
            .token(&parts.headers)
            .ok_or_else(ApiError::unauthorized)?;
        let request_id = request_id(&parts.headers);
        let (user_id, access_token) = access_token(state, &token, request_id.as_deref()).await?;
        tracing::Span::current().record("user_id", user_id.as_str());
        Ok(Self {
            user_id,
            access_token,
            session_token: token,
            request_id,
        })
    }
}

/// The request id set by the request-id layer.
pub fn request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// `(user id, access token)` for a session token, from the cache or from accounts.
async fn access_token(
    state: &AppState,
    token: &str,
    request_id: Option<&str>,
) -> ApiResult<(String, String)> {
    session::access_token(&state.accounts, &state.redis, token, request_id)
        .await?
        .ok_or_else(ApiError::unauthorized)
}

/// Exchanges a session token with accounts; `None` when the session is unknown or expired.
pub async fn exchange(
    state: &AppState,
    token: &str,
    request_id: Option<&str>,
) -> ApiResult<Option<pb::ExchangeSessionResponse>> {
    Ok(session::exchange(&state.accounts, token, request_id).await?)
}

/// Drops a session's cached exchange (sign-out, user deleted).
pub async fn forget(state: &AppState, token: &str) {
    session::forget(&state.redis, token).await;
}

/// The CSRF defence of every unsafe request (any method but GET, HEAD, OPTIONS), Better
/// Auth's origin check applied to every route: an `Origin` (or `expo-origin`, or the
/// `Referer`'s origin) that is sent must be trusted, and a request a browser could send on its
/// own with the session cookie (a `Cookie` header and no `Authorization`) must send one.
pub fn check_origin(headers: &HeaderMap, trusted: &[String]) -> ApiResult<()> {
    let origin = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get("expo-origin"))
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| {
            let referer = headers.get(header::REFERER)?.to_str().ok()?;
            Some(
                url::Url::parse(referer)
                    .ok()?
                    .origin()
                    .ascii_serialization(),
            )
        })
        .filter(|o| !o.is_empty() && o != "null");
    let by_cookie =
        headers.contains_key(header::COOKIE) && !headers.contains_key(header::AUTHORIZATION);
    let forbidden = |code: &str, message: &str| {
        Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            code,
            message.to_owned(),
        ))
    };
    match origin {
        Some(origin) if is_trusted(&origin, trusted) => Ok(()),
        Some(_) => forbidden("INVALID_ORIGIN", "Invalid origin"),
        None if by_cookie => forbidden("MISSING_OR_NULL_ORIGIN", "Missing or null Origin"),
        None => Ok(()),
    }
}

/// A callback URL must be a relative path on this site or on a trusted origin (403 otherwise),
/// so sign-in cannot be turned into an open redirect ([`session::callback_allowed`]).
pub fn check_callback(field: &str, value: Option<&str>, trusted: &[String]) -> ApiResult<()> {
    match value.filter(|v| !v.is_empty()) {
        Some(value) if !session::callback_allowed(value, trusted) => Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            &format!("INVALID_{}", field.to_uppercase()),
            format!("Invalid {field}"),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_and_callbacks_must_be_trusted() {
        let trusted = vec!["http://localhost:8081".to_owned(), "exp://".to_owned()];
        assert!(is_trusted("http://localhost:8081", &trusted));
        assert!(is_trusted("exp://192.168.1.2:8081", &trusted));
        assert!(!is_trusted("http://evil.example", &trusted));
        assert!(check_callback("callbackURL", Some("/home"), &trusted).is_ok());
        assert!(check_callback("callbackURL", Some("//evil.example/x"), &trusted).is_err());
        assert!(check_callback("callbackURL", Some("https://evil.example/x"), &trusted).is_err());
        assert!(
            check_callback("callbackURL", Some("http://localhost:8081/done"), &trusted).is_ok()
        );
        for open in [
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r\n/evil.example",
            "/\\evil.example",
            "/%2F/evil.example",
            "/%5cevil.example",
            "/ /evil.example",
            "http://localhost:8081\t.evil.example/",
        ] {
            assert!(
                check_callback("callbackURL", Some(open), &trusted).is_err(),
                "{open:?}"
            );
        }
        assert!(check_callback("callbackURL", Some("/c/1?tab=a&b=%20#x"), &trusted).is_ok());
    }

    #[test]
    fn unsafe_requests_need_a_trusted_origin_when_sent_by_cookie() {
        let trusted = vec!["http://localhost:8081".to_owned()];
        let headers = |pairs: &[(header::HeaderName, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(name.clone(), header::HeaderValue::from_static(value));
            }
            map
        };
        let cookie = (header::COOKIE, "better-auth.session_token=x");
        let bearer = (header::AUTHORIZATION, "Bearer x");
        let good = (header::ORIGIN, "http://localhost:8081");
        let evil = (header::ORIGIN, "http://evil.example");
        assert!(check_origin(&headers(&[]), &trusted).is_ok());
        assert!(check_origin(&headers(&[bearer.clone(), cookie.clone()]), &trusted).is_ok());
        assert!(check_origin(&headers(&[cookie.clone(), good]), &trusted).is_ok());
        assert!(check_origin(&headers(std::slice::from_ref(&cookie)), &trusted).is_err());
        assert!(check_origin(&headers(std::slice::from_ref(&evil)), &trusted).is_err());
        assert!(check_origin(&headers(&[bearer, evil]), &trusted).is_err());
        let referer = (header::REFERER, "http://evil.example/page");
        assert!(check_origin(&headers(&[cookie, referer]), &trusted).is_err());
    }
}
