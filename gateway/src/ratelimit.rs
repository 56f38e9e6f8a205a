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

/// The client's IP: the peer address, or the first `X-Forwarded-For` entry when the gateway
/// is configured to trust its proxy.
pub fn client_ip(headers: &HeaderMap, peer: SocketAddr, trust_forwarded_for: bool) -> IpAddr {
    if trust_forwarded_for
        && let Some(ip) = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse().ok())
    {
        return ip;
    }
    peer.ip()
}
