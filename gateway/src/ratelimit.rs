//! Per-IP request budgets shared by every gateway replica: a fixed window counted in Redis
//! (one INCR + EXPIRE per request). If Redis is unreachable the limit fails open, logged: an
//! outage of the cache must not lock everyone out of signing in.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use hilo_kit::auth::now_secs;

use crate::{
    app::AppState,
    config::RateLimit,
    error::{ApiError, ApiResult},
};

/// Counts one request of `ip` against `scope`'s budget; 429 with `Retry-After` when spent.
pub async fn check(state: &AppState, scope: &str, ip: IpAddr) -> ApiResult<()> {
    let RateLimit::PerWindow { max, window_secs } = state.auth_rate_limit else {
        return Ok(());
    };
    let now = now_secs();
    let window = u64::from(window_secs);
    let key = format!("hilo:rl:{scope}:{ip}:{}", now / window);
    let mut redis = state.redis.clone();
    let counted: redis::RedisResult<(u64,)> = redis::pipe()
        .atomic()
        .incr(&key, 1)
        .expire(&key, window as i64)
        .ignore()
        .query_async(&mut redis)
        .await;
    match counted {
        Ok((count,)) if count > u64::from(max) => {
            Err(ApiError::too_many_requests(window - now % window))
        }
        Ok(_) => Ok(()),
        Err(error) => {
            tracing::warn!(%error, "rate limiter unavailable; allowing the request");
            Ok(())
        }
    }
}

/// The client's IP: with `hops` trusted proxies in front, the `X-Forwarded-For` entry `hops`
/// places from the right (each proxy appends the address it was called from, so everything
/// further left was written by the client); otherwise, or when that entry is not an address,
/// the peer's.
pub fn client_ip(headers: &HeaderMap, peer: SocketAddr, hops: u8) -> IpAddr {
    if hops == 0 {
        return peer.ip();
    }
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    // Fewer entries than hops: every one was written by a trusted proxy; take the farthest.
    let at = entries.len().saturating_sub(usize::from(hops));
    entries
        .get(at)
        .and_then(|entry| entry.parse().ok())
        .unwrap_or_else(|| peer.ip())
}

#[cfg(test)]
mod tests {
    use super::client_ip;
    use axum::http::{HeaderMap, HeaderValue};

    #[test]
    fn the_client_is_counted_from_the_right() {
        let peer = "192.0.2.9:4000".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 203.0.113.7, 10.0.0.2"),
        );
        assert_eq!(client_ip(&headers, peer, 0).to_string(), "192.0.2.9");
        assert_eq!(client_ip(&headers, peer, 1).to_string(), "10.0.0.2");
        assert_eq!(client_ip(&headers, peer, 2).to_string(), "203.0.113.7");
        assert_eq!(client_ip(&headers, peer, 9).to_string(), "6.6.6.6");
        headers.append("x-forwarded-for", HeaderValue::from_static("198.51.100.1"));
        assert_eq!(client_ip(&headers, peer, 1).to_string(), "198.51.100.1");
        headers.insert("x-forwarded-for", HeaderValue::from_static("not-an-ip"));
        assert_eq!(client_ip(&headers, peer, 1).to_string(), "192.0.2.9");
    }
}
