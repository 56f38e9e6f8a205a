//! The Better Auth session as every HTTP entry reads it (the gateway and realtime): the signed
//! cookie or a bearer token, and the session -> access-token exchange with accounts, cached in
//! Redis (shared by every replica of every entry) for at most a minute. Sign-out drops the
//! cached entry, so a revoked session stops working at once for the next lookup everywhere.

use crate::grpc::RetryingChannel;
use base64::{Engine as _, engine::general_purpose::STANDARD};
use hilo_proto::accounts::v1 as pb;
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderValue, header};
use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use redis::AsyncCommands as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

use crate::{auth::now_secs, grpc};

const COOKIE_NAME: &str = "better-auth.session_token";
const DONT_REMEMBER: &str = "better-auth.dont_remember";
const OAUTH_STATE: &str = "better-auth.state";
/// How long a started social sign-in stays bound to its browser (accounts keeps its state as
/// long).
const OAUTH_STATE_MAX_AGE: u64 = 600;
const SESSION_MAX_AGE: u64 = 7 * 24 * 3600;
/// Longest time a session -> access-token exchange is reused from the cache.
pub const CACHE_SECS: u64 = 60;

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
            .and_then(crate::auth::bearer)
        {
            let bearer = percent_decode_str(bearer).decode_utf8().ok()?;
            return if bearer.contains('.') {
                self.verify(&bearer)
            } else {
                Some(bearer.into_owned())
            };
        }
        self.signed_cookie(headers, COOKIE_NAME)
    }

    /// `Set-Cookie` that binds a started social sign-in to this browser: the OAuth `state`,
    /// signed, for as long as the state lives. The callback must come with it, so a callback
    /// URL opened in another browser signs nobody in there (login CSRF).
    pub fn bind_oauth_state(&self, state: &str) -> Option<HeaderValue> {
        let value = utf8_percent_encode(&self.sign(state), NON_ALPHANUMERIC).to_string();
        HeaderValue::from_str(&format!(
            "{}{OAUTH_STATE}={value}; Max-Age={OAUTH_STATE_MAX_AGE}{}",
            self.prefix, self.attributes
        ))
        .ok()
    }

    /// `Set-Cookie` that removes the OAuth state cookie (the callback used it).
    pub fn clear_oauth_state(&self) -> Option<HeaderValue> {
        HeaderValue::from_str(&format!(
            "{}{OAUTH_STATE}=; Max-Age=0{}",
            self.prefix, self.attributes
        ))
        .ok()
    }

    /// The OAuth state this browser started, when its cookie's signature is right.
    pub fn oauth_state(&self, headers: &HeaderMap) -> Option<String> {
        self.signed_cookie(headers, OAUTH_STATE)
    }

    /// The verified value of one of Better Auth's signed cookies.
    fn signed_cookie(&self, headers: &HeaderMap, name: &str) -> Option<String> {
        let name = format!("{}{name}", self.prefix);
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

/// Connects to Redis as the gateway and realtime share it (session cache, presence, budgets):
/// one multiplexed connection that reconnects by itself, watched for `/metrics`.
pub async fn connect_redis(url: &str) -> anyhow::Result<redis::aio::ConnectionManager> {
    use anyhow::Context as _;
    let client = redis::Client::open(url).context("parsing REDIS_URL")?;
    let redis = redis::aio::ConnectionManager::new(client)
        .await
        .context("connecting to Redis")?;
    crate::admin::watch_redis(&redis);
    Ok(redis)
}

/// Accounts' client, as the exchange needs it.
pub type AccountsClient = pb::accounts_service_client::AccountsServiceClient<RetryingChannel>;

/// The Redis key of a session's cached exchange (the token itself is never stored).
pub fn cache_key(token: &str) -> String {
    format!("hilo:gw:session:{}", hex_digest(token))
}

/// SHA-256 of a token in hex: how sessions are named in caches and logs.
pub fn hex_digest(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Exchanges a session token with accounts; `None` when the session is unknown or expired.
pub async fn exchange(
    accounts: &AccountsClient,
    token: &str,
    request_id: Option<&str>,
) -> Result<Option<pb::ExchangeSessionResponse>, tonic::Status> {
    let request = grpc::request(
        pb::ExchangeSessionRequest {
            session_token: token.to_owned(),
        },
        None,
        request_id,
    );
    match accounts.clone().exchange_session(request).await {
        Ok(response) => Ok(Some(response.into_inner())),
        Err(status) if status.code() == tonic::Code::Unauthenticated => Ok(None),
        Err(status) => Err(status),
    }
}

/// `(user id, access token)` for a session token, from the Redis cache or from accounts;
/// `None` when the session is unknown, expired or revoked. A Redis outage only costs a call.
pub async fn access_token(
    accounts: &AccountsClient,
    redis: &redis::aio::ConnectionManager,
    token: &str,
    request_id: Option<&str>,
) -> Result<Option<(String, String)>, tonic::Status> {
    let key = cache_key(token);
    let mut redis = redis.clone();
    match redis.get::<_, Option<String>>(&key).await {
        Ok(Some(cached)) => {
            if let Some((user_id, jwt)) = cached.split_once('\n') {
                return Ok(Some((user_id.to_owned(), jwt.to_owned())));
            }
        }
        Ok(None) => {}
        Err(error) => tracing::warn!(%error, "session cache unavailable"),
    }
    let Some(exchanged) = exchange(accounts, token, request_id).await? else {
        return Ok(None);
    };
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
    Ok(Some((user_id, exchanged.access_token)))
}

/// Drops a session's cached exchange (sign-out, user deleted).
pub async fn forget(redis: &redis::aio::ConnectionManager, token: &str) {
    let mut redis = redis.clone();
    if let Err(error) = redis.del::<_, ()>(cache_key(token)).await {
        tracing::warn!(%error, "could not drop a cached session");
    }
}

/// Exact origin match, or a scheme-only entry (`exp://`) matching any origin of that scheme.
pub fn is_trusted(origin: &str, trusted: &[String]) -> bool {
    let origin = origin.trim_end_matches('/');
    trusted
        .iter()
        .any(|t| t == origin || (t.ends_with("://") && origin.starts_with(t.as_str())))
}

/// May sign-in send the browser to `value` afterwards? A path on this site, or an absolute URL
/// of a trusted origin; anything else would make sign-in an open redirect.
pub fn callback_allowed(value: &str, trusted: &[String]) -> bool {
    // The URL parser drops tabs and line breaks, and browsers do too: none is allowed.
    let printable = value.bytes().all(|b| b.is_ascii_graphic());
    is_relative_path(value)
        || (printable
            && url::Url::parse(value).is_ok_and(|u| {
                is_trusted(&u.origin().ascii_serialization(), trusted)
                    || is_trusted(&format!("{}://", u.scheme()), trusted)
            }))
}

/// A path on this site, spelled with a strict set of characters, as Better Auth accepts them:
/// a browser drops tabs and line breaks (`/\t/evil.example` is `//evil.example`, another
/// site) and reads `\` as `/`, so none of them, nor an escaped `/` or `\` at the start,
/// can turn it into a link elsewhere.
fn is_relative_path(value: &str) -> bool {
    let Some(rest) = value.strip_prefix('/') else {
        return false;
    };
    let lowered = rest.to_ascii_lowercase();
    let escapes_out =
        rest.starts_with('/') || lowered.starts_with("%2f") || lowered.starts_with("%5c");
    !escapes_out
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~/?=&%+@:#,!*;".contains(&b))
}

/// The Redis sorted set saying on which realtime replicas a user has open sockets (members:
/// replica ids; scores: expiry, seconds since the epoch). Written by realtime only.
pub fn presence_key(user_id: &str) -> String {
    format!("hilo:presence:{user_id}")
}

/// Which of `user_ids` have an open socket on some realtime replica (an unexpired entry).
/// A Redis outage answers "offline" for everyone rather than failing the caller.
pub async fn online(redis: &redis::aio::ConnectionManager, user_ids: &[&str]) -> Vec<bool> {
    if user_ids.is_empty() {
        return Vec::new();
    }
    let mut pipe = redis::pipe();
    let now = now_secs();
    for user in user_ids {
        pipe.cmd("ZCOUNT")
            .arg(presence_key(user))
            .arg(now)
            .arg("+inf");
    }
    let mut redis = redis.clone();
    match pipe.query_async::<Vec<u64>>(&mut redis).await {
        Ok(counts) => counts.into_iter().map(|c| c > 0).collect(),
        Err(error) => {
            tracing::warn!(%error, "presence unavailable");
            vec![false; user_ids.len()]
        }
    }
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
        // The scheme's name in any case (RFC 9110), spaces around the credentials ignored.
        for value in ["bearer raw-token", "BEARER  raw-token ", "BeArEr raw-token"] {
            headers.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
            assert_eq!(c.token(&headers).as_deref(), Some("raw-token"), "{value}");
        }
        for value in ["Basic raw-token", "Bearer", "Bearer  ", "Bearerraw-token"] {
            headers.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
            assert_eq!(
                c.token(&headers).as_deref(),
                Some("tok"),
                "{value}: the cookie"
            );
        }
    }
}
