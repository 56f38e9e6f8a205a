//! Who is calling: Better Auth's signed session cookie or a bearer token, exchanged with
//! accounts for a short-lived access token that the gateway forwards to services. The exchange
//! is cached in Redis (shared by every replica) for at most a minute, so a revoked session
//! stops working within that minute everywhere, and at once on the replica that signed out.

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, HeaderValue, header, request::Parts},
};
use base64::{Engine as _, engine::general_purpose::STANDARD};
use hilo_kit::{auth::now_secs, grpc};
use hilo_proto::accounts::v1 as pb;
use hmac::{Hmac, Mac};
use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use redis::AsyncCommands as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

use crate::{
    app::AppState,
    error::{ApiError, ApiResult},
};

const COOKIE_NAME: &str = "better-auth.session_token";
const DONT_REMEMBER: &str = "better-auth.dont_remember";
const SESSION_MAX_AGE: u64 = 7 * 24 * 3600;
/// Longest time a session -> access-token exchange is reused from the cache.
const CACHE_SECS: u64 = 60;

/// Makes and reads Better Auth's cookies: `<token>.<base64 HMAC-SHA256(secret, token)>`,
/// URL-encoded, named `better-auth.session_token` (`__Secure-` prefixed on https).
#[derive(Clone)]
pub struct Cookies {
    secret: Vec<u8>,
    prefix: &'static str,
    attributes: &'static str,
}

impl Cookies {
    pub fn new(secret: &str, secure_prefix: bool, production: bool) -> Self {
        Self {
            secret: secret.as_bytes().to_vec(),
            prefix: if secure_prefix { "__Secure-" } else { "" },
            attributes: match (production, secure_prefix) {
                (true, _) => "; Path=/; HttpOnly; Secure; SameSite=None",
                (false, true) => "; Path=/; HttpOnly; Secure; SameSite=Lax",
                (false, false) => "; Path=/; HttpOnly; SameSite=Lax",
            },
        }
    }

    fn mac(&self, value: &str) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes keys of any length");
        mac.update(value.as_bytes());
        STANDARD.encode(mac.finalize().into_bytes())
    }

    /// `value.signature`, as Better Auth signs cookie values.
    pub fn sign(&self, value: &str) -> String {
        format!("{value}.{}", self.mac(value))
    }

    /// The value of a signed string when its signature is right (compared in constant time).
    pub fn verify(&self, signed: &str) -> Option<String> {
        let (value, signature) = signed.rsplit_once('.')?;
        let expected = self.mac(value);
        bool::from(expected.as_bytes().ct_eq(signature.as_bytes())).then(|| value.to_owned())
    }

    /// `Set-Cookie` values that start a session; without `remember` the cookie lasts for the
    /// browser session and a `dont_remember` marker is set, as Better Auth does.
    pub fn start(&self, token: &str, remember: bool) -> Vec<HeaderValue> {
        let value = utf8_percent_encode(&self.sign(token), NON_ALPHANUMERIC).to_string();
        let name = format!("{}{COOKIE_NAME}", self.prefix);
        let mut cookies = Vec::new();
        if remember {
            cookies.push(format!(
                "{name}={value}; Max-Age={SESSION_MAX_AGE}{}",
                self.attributes
            ));
        } else {
            cookies.push(format!("{name}={value}{}", self.attributes));
            let marker = utf8_percent_encode(&self.sign("true"), NON_ALPHANUMERIC).to_string();
            cookies.push(format!(
                "{}{DONT_REMEMBER}={marker}{}",
                self.prefix, self.attributes
            ));
        }
        cookies
            .into_iter()
            .filter_map(|c| HeaderValue::from_str(&c).ok())
            .collect()
    }

    /// `Set-Cookie` values that expire every auth cookie.
    pub fn clear(&self) -> Vec<HeaderValue> {
        [COOKIE_NAME, DONT_REMEMBER]
            .iter()
            .filter_map(|name| {
                HeaderValue::from_str(&format!(
                    "{}{name}=; Max-Age=0{}",
                    self.prefix, self.attributes
                ))
                .ok()
            })
            .collect()
    }

    /// The session token a request carries: `Authorization: Bearer <token or signed token>`,
    /// else the signed session cookie. A cookie with a bad signature counts as none.
    pub fn token(&self, headers: &HeaderMap) -> Option<String> {
        if let Some(bearer) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        {
            let bearer = percent_decode_str(bearer.trim()).decode_utf8().ok()?;
            return if bearer.contains('.') {
                self.verify(&bearer)
            } else {
                Some(bearer.into_owned())
            };
        }
        let name = format!("{}{COOKIE_NAME}", self.prefix);
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| {
                percent_decode_str(v)
                    .decode_utf8()
                    .ok()
                    .and_then(|v| self.verify(&v))
            })
    }
}

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

fn cache_key(token: &str) -> String {
    format!("hilo:gw:session:{}", hex_digest(token))
}

fn hex_digest(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `(user id, access token)` for a session token, from the cache or from accounts.
async fn access_token(
    state: &AppState,
    token: &str,
    request_id: Option<&str>,
) -> ApiResult<(String, String)> {
    let key = cache_key(token);
    let mut redis = state.redis.clone();
    match redis.get::<_, Option<String>>(&key).await {
        Ok(Some(cached)) => {
            if let Some((user_id, jwt)) = cached.split_once('\n') {
                return Ok((user_id.to_owned(), jwt.to_owned()));
            }
        }
        Ok(None) => {}
        Err(error) => tracing::warn!(%error, "session cache unavailable"),
    }
    let exchanged = exchange(state, token, request_id)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    let user_id = exchanged.user.map(|u| u.id).unwrap_or_default();
    let exp = exchanged
        .access_token_expire_time
        .map(|t| t.seconds as u64)
        .unwrap_or_default();
    // Never cache a token past its own expiry (minus slack for the callee's clock).
    let ttl = CACHE_SECS.min(exp.saturating_sub(now_secs() + 10));
    if ttl > 0 {
        let value = format!("{user_id}\n{}", exchanged.access_token);
        if let Err(error) = redis.set_ex::<_, _, ()>(&key, value, ttl).await {
            tracing::warn!(%error, "session cache unavailable");
        }
    }
    Ok((user_id, exchanged.access_token))
}

/// Exchanges a session token with accounts; `None` when the session is unknown or expired.
pub async fn exchange(
    state: &AppState,
    token: &str,
    request_id: Option<&str>,
) -> ApiResult<Option<pb::ExchangeSessionResponse>> {
    let request = grpc::request(
        pb::ExchangeSessionRequest {
            session_token: token.to_owned(),
        },
        None,
        request_id,
    );
    match state.accounts.clone().exchange_session(request).await {
        Ok(response) => Ok(Some(response.into_inner())),
        Err(status) if status.code() == tonic::Code::Unauthenticated => Ok(None),
        Err(status) => Err(status.into()),
    }
}

/// Drops a session's cached exchange (sign-out, user deleted).
pub async fn forget(state: &AppState, token: &str) {
    let mut redis = state.redis.clone();
    if let Err(error) = redis.del::<_, ()>(cache_key(token)).await {
        tracing::warn!(%error, "could not drop a cached session");
    }
}

/// Better Auth's CSRF defence for `/api/auth` POSTs that carry a cookie: their `Origin`
/// (or `expo-origin`, or the `Referer`'s origin) must be trusted.
pub fn check_origin(headers: &HeaderMap, trusted: &[String]) -> ApiResult<()> {
    if !headers.contains_key(header::COOKIE) {
        return Ok(());
    }
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
    let Some(origin) = origin else {
        return Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "MISSING_OR_NULL_ORIGIN",
            "Missing or null Origin",
        ));
    };
    if is_trusted(&origin, trusted) {
        Ok(())
    } else {
        Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "INVALID_ORIGIN",
            "Invalid origin",
        ))
    }
}

/// Exact origin match, or a scheme-only entry (`exp://`) matching any origin of that scheme.
pub fn is_trusted(origin: &str, trusted: &[String]) -> bool {
    let origin = origin.trim_end_matches('/');
    trusted
        .iter()
        .any(|t| t == origin || (t.ends_with("://") && origin.starts_with(t.as_str())))
}

/// A callback URL must be a relative path on this site or on a trusted origin (403 otherwise),
/// so sign-in cannot be turned into an open redirect.
pub fn check_callback(field: &str, value: Option<&str>, trusted: &[String]) -> ApiResult<()> {
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return Ok(());
    };
    let relative = value.starts_with('/') && !value.starts_with("//") && !value.contains('\\');
    let trusted_absolute = url::Url::parse(value).is_ok_and(|u| {
        is_trusted(&u.origin().ascii_serialization(), trusted)
            || is_trusted(&format!("{}://", u.scheme()), trusted)
    });
    if relative || trusted_absolute {
        return Ok(());
    }
    Err(ApiError::new(
        axum::http::StatusCode::FORBIDDEN,
        &format!("INVALID_{}", field.to_uppercase()),
        format!("Invalid {field}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookies() -> Cookies {
        Cookies::new("a-test-secret-of-some-length", false, false)
    }

    #[test]
    fn signed_values_round_trip_and_tampering_is_refused() {
        let c = cookies();
        let signed = c.sign("abc123");
        assert_eq!(signed.len(), "abc123.".len() + 44);
        assert_eq!(c.verify(&signed).as_deref(), Some("abc123"));
        assert_eq!(c.verify(&signed.replace("abc123", "abc124")), None);
        assert_eq!(
            Cookies::new("another-secret-entirely", false, false).verify(&signed),
            None
        );
    }

    #[test]
    fn the_session_cookie_is_read_back_and_bearer_wins() {
        let c = cookies();
        let set = c.start("tok", true)[0].to_str().unwrap().to_owned();
        let pair = set.split(';').next().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("other=1; {pair}")).unwrap(),
        );
        assert_eq!(c.token(&headers).as_deref(), Some("tok"));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer raw-token"),
        );
        assert_eq!(c.token(&headers).as_deref(), Some("raw-token"));
    }

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
    }
}
