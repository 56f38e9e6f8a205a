//! `GET /ws`: the upgrade. In order: no upgrade -> 426; a `Sec-WebSocket-Key` that is missing
//! or not 16 bytes in base64, or a version other than 13 -> 400 (RFC 6455 4.2.1); an untrusted `Origin` -> 403 (no `Origin` at
//! all is a native app and allowed); no valid session -> 401; the user's connect budget spent
//! -> 429; then the socket is accepted with small buffers and handed to [`crate::session`].

use axum::{
    extract::{
        State,
        ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection},
    },
    http::{HeaderMap, StatusCode, header},
    response::Response,
};
use hilo_kit::session::is_trusted;

use crate::{app::AppState, error::error, session};

/// The upgrade handler.
pub async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let ws = match ws {
        Ok(ws)
            if headers
                .get(header::SEC_WEBSOCKET_KEY)
                .is_some_and(|key| is_websocket_key(key.as_bytes())) =>
        {
            ws
        }
        // An upgrade to WebSocket with a broken handshake.
        Ok(_)
        | Err(
            WebSocketUpgradeRejection::WebSocketKeyHeaderMissing(_)
            | WebSocketUpgradeRejection::InvalidWebSocketVersionHeader(_),
        ) => {
            return error(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                "Invalid WebSocket handshake: Sec-WebSocket-Key must be 16 bytes in base64 and Sec-WebSocket-Version 13",
            );
        }
        Err(_) => {
            return error(
                StatusCode::UPGRADE_REQUIRED,
                "UPGRADE_REQUIRED",
                "Expected websocket",
            );
        }
    };
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or_default();
        if !is_trusted(origin, &state.trusted_origins) {
            return error(StatusCode::FORBIDDEN, "FORBIDDEN", "Origin not allowed");
        }
    }
    if state.shutdown.is_cancelled() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "UNAVAILABLE",
            "Shutting down",
        );
    }
    let Some(token) = state.cookies.token(&headers) else {
        return unauthorized();
    };
    let request_id = headers.get("x-request-id").and_then(|v| v.to_str().ok());
    let (user_id, access_token) = match crate::sessions::lookup(&state, &token, request_id).await {
        Ok(Some(found)) => found,
        Ok(None) => return unauthorized(),
        Err(status) => {
            tracing::warn!(code = ?status.code(), "session exchange failed");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                "Try again later",
            );
        }
    };
    tracing::Span::current().record("user_id", user_id.as_str());
    if let Some((limit, reset)) = over_connect_budget(&state, &user_id).await {
        let mut refused = error(
            StatusCode::TOO_MANY_REQUESTS,
            "TOO_MANY_REQUESTS",
            "Too many connections. Please try again later.",
        );
        let headers = refused.headers_mut();
        headers.insert(header::RETRY_AFTER, reset.into());
        headers.insert("x-ratelimit-limit", limit.into());
        headers.insert("x-ratelimit-remaining", 0.into());
        headers.insert("x-ratelimit-reset", reset.into());
        return refused;
    }
    let session_id = hilo_kit::auth::unverified_session_id(&access_token).unwrap_or_default();
    // The socket's commands continue this request's trace (and so the gateway's, when the
    // upgrade came through it), as children of the upgrade request span.
    let who = session::Who {
        trace: hilo_kit::telemetry::Parent::current(),
        user_id: user_id.into(),
        session_id: session_id.into(),
        session_token: token,
        access_token,
    };
    let config = &state.config;
    // Frames above the limit are read (up to 4x) and answered with close 1009 by the session.
    let cap = config.max_frame_bytes.saturating_mul(4);
    let guard = state.sockets.token();
    ws.read_buffer_size(config.ws_read_buffer)
        .write_buffer_size(config.ws_write_buffer)
        .max_message_size(cap)
        .max_frame_size(cap)
        .on_upgrade(move |socket| async move {
            let _guard = guard;
            session::run(socket, state, who).await;
        })
}

/// `(budget, seconds to wait)` when `user_id` has spent its connect budget
/// (CONNECT_RATE_LIMIT, counted for all replicas in Redis); `None` while it has not, or when
/// Redis cannot say.
async fn over_connect_budget(state: &AppState, user_id: &str) -> Option<(u32, u64)> {
    use hilo_kit::{config::RateLimit, ratelimit};
    let RateLimit::PerWindow { max, window_secs } = state.config.connect_rate_limit else {
        return None;
    };
    let window = ratelimit::Window::now(window_secs);
    let key = window.key("connects", &format!("user:{user_id}"));
    let counts = ratelimit::count(&state.redis, &[key], window).await?;
    (counts.first().copied().unwrap_or_default() > u64::from(max)).then(|| (max, window.reset()))
}

/// A nonce of 16 bytes in base64: 22 characters of the alphabet, the last of them with its
/// low 4 bits zero (they would be a 17th byte), then `==`.
fn is_websocket_key(key: &[u8]) -> bool {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let Some((digits, b"==")) = key.split_at_checked(22) else {
        return false;
    };
    digits.iter().all(|c| ALPHABET.contains(c)) && b"AQgw".contains(&digits[21])
}

fn unauthorized() -> Response {
    error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "Unauthorized")
}

#[cfg(test)]
mod tests {
    use super::is_websocket_key;

    #[test]
    fn websocket_keys_are_16_bytes_of_base64() {
        // RFC 6455's example, and the 16 bytes 0xff.
        assert!(is_websocket_key(b"dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(is_websocket_key(b"/////////////////////w=="));
        for bad in [
            &b""[..],
            b"dGhlIHNhbXBsZSBub25jZQ",
            b"dGhlIHNhbXBsZSBub25jZR==",
            b"dGhlIHNhbXBsZSBub25jZQ=",
            b"dGhlIHNhbXBsZSBub25jZQ===",
            b"dGhlIHNhbXBsZSBub25j*Q==",
            b"not a key",
        ] {
            assert!(!is_websocket_key(bad), "{}", String::from_utf8_lossy(bad));
        }
    }
}
