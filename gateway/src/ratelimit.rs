//! The gateway's request budgets, shared by every replica ([`hilo_kit::ratelimit`]): sign-in and
//! sign-up have one per client address ([`check`], AUTH_RATE_LIMIT); every other route has one
//! per route class, per user and per client address ([`limit`], RATE_LIMITS;
//! docs/security.md). WebSocket connects are counted by realtime, where every socket ends.

use std::net::{IpAddr, SocketAddr};

use axum::{
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, HeaderValue, Method, header::HeaderName},
    middleware::Next,
    response::{IntoResponse, Response},
};
use hilo_kit::{
    config::{RateLimit, named_budgets},
    ratelimit::{Window, count},
    session,
};

use crate::{
    app::AppState,
    auth::{Authed, request_id},
    error::{ApiError, ApiResult},
};

/// Counts one request of `ip` against `scope`'s sign-in budget; 429 with `Retry-After` when
/// spent.
pub async fn check(state: &AppState, scope: &str, ip: IpAddr) -> ApiResult<()> {
    let RateLimit::PerWindow { max, window_secs } = state.auth_rate_limit else {
        return Ok(());
    };
    let window = Window::now(window_secs);
    match count(&state.redis, &[window.key(scope, &ip.to_string())], window).await {
        Some(counts) if counts[0] > u64::from(max) => {
            Err(ApiError::too_many_requests(window.reset()))
        }
        _ => Ok(()),
    }
}

/// The classes of app routes, each with its own budget (in [`Class::ALL`]'s order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Reads,
    Writes,
    Uploads,
    Invites,
}

impl Class {
    const ALL: [(Self, &'static str); 4] = [
        (Self::Reads, "reads"),
        (Self::Writes, "writes"),
        (Self::Uploads, "uploads"),
        (Self::Invites, "invites"),
    ];

    fn name(self) -> &'static str {
        Self::ALL[self as usize].1
    }

    /// The class of a request; `None` for routes with no budget of this kind (probes, the
    /// documentation, `/api/auth`, which has its own, and `/ws`, counted by realtime).
    pub fn of(method: &Method, path: &str) -> Option<Self> {
        let rest = path.strip_prefix("/api/")?;
        if rest.starts_with("auth/") {
            return None;
        }
        if method.is_safe() {
            return Some(Self::Reads);
        }
        if rest.starts_with("uploads/") {
            return Some(Self::Uploads);
        }
        if rest.starts_with("channels/") && rest.ends_with("/invites") {
            return Some(Self::Invites);
        }
        Some(Self::Writes)
    }
}

/// The budget of each class (RATE_LIMITS). Each user has it; each client address has ten
/// times it, for the users behind one NAT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budgets([RateLimit; 4]);

/// Client addresses get this many times a user's budget.
const PER_ADDRESS: u32 = 10;

impl Budgets {
    fn of(&self, class: Class) -> RateLimit {
        self.0[class as usize]
    }
}

/// `writes=60/10s,reads=300/10s,...` (classes not named keep their default), or `off`.
impl std::str::FromStr for Budgets {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        named_budgets(s, Class::ALL.map(|(_, name)| name), DEFAULT_BUDGETS.0).map(Self)
    }
}

/// The default RATE_LIMITS: far above what a person types or a client app polls, well
/// below what a script can send.
const DEFAULT_BUDGETS: Budgets = Budgets([
    RateLimit::PerWindow {
        max: 300,
        window_secs: 10,
    },
    RateLimit::PerWindow {
        max: 60,
        window_secs: 10,
    },
    RateLimit::PerWindow {
        max: 30,
        window_secs: 60,
    },
    RateLimit::PerWindow {
        max: 20,
        window_secs: 60,
    },
]);

/// The default RATE_LIMITS, as the configuration help shows it.
pub const DEFAULT_RATE_LIMITS: &str = "reads=300/10s,writes=60/10s,uploads=30/60s,invites=20/60s";

/// Counts an app request against its class's budget, for its user (when it carries a valid
/// session: resolved here once, and handed to the handler's [`Authed`]) and for its client
/// address. Over either budget it is 429 with `Retry-After`; every counted response says
/// `X-RateLimit-Limit`, `-Remaining` and `-Reset` (seconds) of the tighter one.
pub async fn limit(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(class) = Class::of(req.method(), req.uri().path()) else {
        return next.run(req).await;
    };
    let RateLimit::PerWindow { max, window_secs } = state.budgets.of(class) else {
        return next.run(req).await;
    };
    let ip = client_ip(req.headers(), peer, state.proxy_hops);
    let user = caller(&state, req.headers()).await;
    let window = Window::now(window_secs);
    let mut keys = vec![window.key(class.name(), &format!("ip:{ip}"))];
    let mut limits = vec![max.saturating_mul(PER_ADDRESS)];
    if let Some(authed) = user {
        keys.push(window.key(class.name(), &format!("user:{}", authed.user_id)));
        limits.push(max);
        req.extensions_mut().insert(authed);
    }
    let Some(counts) = count(&state.redis, &keys, window).await else {
        return next.run(req).await;
    };
    // The budget closest to being spent is the one reported.
    let (limit, used) = limits
        .iter()
        .zip(&counts)
        .map(|(limit, used)| (u64::from(*limit), *used))
        .max_by_key(|(limit, used)| used * 1000 / limit.max(&1))
        .unwrap_or((u64::from(max), 0));
    let mut response = if used > limit {
        ApiError::too_many_requests(window.reset()).into_response()
    } else {
        next.run(req).await
    };
    let headers = response.headers_mut();
    for (name, value) in [
        ("x-ratelimit-limit", limit),
        ("x-ratelimit-remaining", limit.saturating_sub(used)),
        ("x-ratelimit-reset", window.reset()),
    ] {
        headers.insert(HeaderName::from_static(name), HeaderValue::from(value));
    }
    response
}

/// The signed-in caller of a request, if it carries a live session (from the shared cache or
/// accounts). An outage of accounts counts the request by address only; the handler then
/// answers for the outage.
async fn caller(state: &AppState, headers: &HeaderMap) -> Option<Authed> {
    let token = state.cookies.token(headers)?;
    let request_id = request_id(headers);
    let (user_id, access_token) =
        session::access_token(&state.accounts, &state.redis, &token, request_id.as_deref())
            .await
            .ok()??;
    Some(Authed {
        user_id,
        access_token,
        session_token: token,
        request_id,
    })
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
    use super::{Budgets, Class, DEFAULT_BUDGETS, DEFAULT_RATE_LIMITS, client_ip};
    use axum::http::{HeaderMap, HeaderValue, Method};
    use hilo_kit::config::RateLimit;

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

    #[test]
    fn routes_fall_into_classes() {
        let class = |method: Method, path: &str| Class::of(&method, path);
        assert_eq!(class(Method::GET, "/api/channels"), Some(Class::Reads));
        assert_eq!(class(Method::POST, "/api/messages"), Some(Class::Writes));
        assert_eq!(class(Method::DELETE, "/api/threads/x"), Some(Class::Writes));
        assert_eq!(
            class(Method::POST, "/api/uploads/message/image"),
            Some(Class::Uploads)
        );
        assert_eq!(
            class(Method::POST, "/api/channels/c/invites"),
            Some(Class::Invites)
        );
        assert_eq!(class(Method::GET, "/ws"), None);
        assert_eq!(class(Method::POST, "/api/auth/sign-in/email"), None);
        assert_eq!(class(Method::GET, "/healthz"), None);
    }

    #[test]
    fn budgets_parse_by_class_with_defaults_for_the_rest() {
        assert_eq!(DEFAULT_RATE_LIMITS.parse(), Ok(DEFAULT_BUDGETS));
        let budgets: Budgets = "writes=5/1s".parse().unwrap();
        assert_eq!(
            budgets.of(Class::Writes),
            RateLimit::PerWindow {
                max: 5,
                window_secs: 1
            }
        );
        assert_eq!(budgets.of(Class::Reads), DEFAULT_BUDGETS.of(Class::Reads));
        let off: Budgets = "off".parse().unwrap();
        assert_eq!(off.of(Class::Uploads), RateLimit::Off);
        let partly: Budgets = "uploads=off".parse().unwrap();
        assert_eq!(partly.of(Class::Uploads), RateLimit::Off);
        assert!("posts=5/1s".parse::<Budgets>().is_err());
        assert!("writes".parse::<Budgets>().is_err());
    }
}
